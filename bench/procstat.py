"""CPU time of process trees, read from /proc (Linux)."""

from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # fields after "pid (comm)"


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _all() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def tree(root: int) -> list[int]:
    """``root`` and all its descendants."""
    parents: dict[int, list[int]] = {}
    for pid in _all():
        fields = _stat(pid)
        if fields:
            parents.setdefault(int(fields[1]), []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def named(*names: str) -> list[int]:
    return [pid for pid in _all() if _comm(pid) in names]


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = _stat(pid)
        if fields:
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / TICKS


def user_system_seconds(pids: list[int]) -> tuple[float, float]:
    user = system = 0
    for pid in pids:
        fields = _stat(pid)
        if fields:
            user += int(fields[11])
            system += int(fields[12])
    return user / TICKS, system / TICKS
