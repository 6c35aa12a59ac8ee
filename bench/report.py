"""``latest.md`` from ``latest.json``."""

from __future__ import annotations

from typing import Any

from bench import user_listing

TARGETS = {
    "logins_per_second": 400.0,  # SQLite, serve --workers 2
    "cpu_ms_per_login": 2.2,
    "p99_ms_at_half_load": 50.0,
    "postgres_within": 0.30,
}


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _login_row(name: str, run: dict[str, Any]) -> str:
    logins = run.get("logins", {})
    peak, half = logins.get("peak", {}), logins.get("half_load", {})
    cpu = logins.get("cpu_ms_per_login", {})
    writes = run.get("writes", {})
    per_login = writes.get("commits_per_login", writes.get("fsyncs_per_login"))
    return (
        f"| {name} | {_fmt(run['users'], 0)} | {_fmt(peak.get('per_second'))} "
        f"| {_fmt(peak.get('p50_ms'))} / {_fmt(peak.get('p99_ms'))} "
        f"| {_fmt(half.get('offered_per_second'))} "
        f"| {_fmt(half.get('p50_ms'))} / {_fmt(half.get('p95_ms'))} / {_fmt(half.get('p99_ms'))} "
        f"| {_fmt(cpu.get('server'), 2)} | {_fmt(cpu.get('database'), 2)} "
        f"| {_fmt(per_login, 2)} | {_fmt(peak.get('errors', 0) + half.get('errors', 0), 0)} |"
    )


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        "# nopass benchmark — latest run",
        "",
        f"{results['when']} · {m['cpus']} cores ({m['cpu_model']}) · Python {m['python']} · "
        f"load average at start {m['load_average_at_start']} · generator pinned to CPU "
        f"{m['generator_cpu']} · {'SMOKE RUN (figures meaningless)' if results['smoke'] else ''}"
        f" · wall time {results.get('wall_seconds', '?')} s",
        "",
    ]
    if not results["nopass"] and results.get("user_listing"):  # python -m bench --only-listing
        return "\n".join([*lines, user_listing.markdown(results["user_listing"])])
    lines += [
        "## Whole email-code logins (start → code over SMTP → OTP token exchange)",
        "",
        "| server | users | peak logins/s | peak p50 / p99 ms | half load /s "
        "| half-load p50 / p95 / p99 ms | server CPU ms/login | DB CPU ms/login "
        "| durable writes/login | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in results["nopass"]:
        lines.append(_login_row(f"nopass {run['backend']}", run))
    allauth = results.get("allauth")
    if allauth:
        lines.append(_login_row("django-allauth sqlite", allauth))
    lines += [
        "",
        "Durable writes: commits per login on PostgreSQL (pg_stat_database, background commits "
        "subtracted); WAL fsyncs per login on SQLite (strace; one per commit with "
        "synchronous=FULL).",
        "",
    ]
    ratios = _ratios(results)
    if ratios:
        lines += ["## Ratios", ""] + [f"- {r}" for r in ratios] + [""]
    for run in results["nopass"]:
        endpoints = run.get("endpoints")
        if not endpoints:
            continue
        lines += [
            f"## Single endpoints — nopass {run['backend']}, {run['users']:,} users",
            "",
            "| endpoint | requests/s | p50 ms | p95 ms | p99 ms | non-2xx |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, e in endpoints.items():
            if "per_second" not in e:
                lines.append(f"| {name} | {e.get('skipped') or e.get('error')} | | | | |")
                continue
            lines.append(
                f"| {name} | {_fmt(e['per_second'])} | {_fmt(e['p50_ms'], 2)} "
                f"| {_fmt(e['p95_ms'], 2)} | {_fmt(e['p99_ms'], 2)} | {_fmt(e['non_2xx'], 0)} |"
            )
        lines.append("")
    if results.get("postgres_skipped"):
        lines += [f"PostgreSQL + Redis skipped: {results['postgres_skipped']}", ""]
    if results.get("user_listing"):
        lines.append(user_listing.markdown(results["user_listing"]))
    return "\n".join(lines)


def _peak(run: dict[str, Any] | None) -> float | None:
    if not run:
        return None
    value = run.get("logins", {}).get("peak", {}).get("per_second")
    return float(value) if value else None


def _cpu(run: dict[str, Any] | None) -> float | None:
    if not run:
        return None
    value = run.get("logins", {}).get("cpu_ms_per_login", {}).get("total")
    return float(value) if value else None


def _ratios(results: dict[str, Any]) -> list[str]:
    out: list[str] = []
    runs = {(r["backend"], r["users"]): r for r in results["nopass"]}
    small = min((u for _, u in runs), default=None)
    sqlite = runs.get(("sqlite", small)) if small else None
    allauth = results.get("allauth")
    if sqlite and allauth and _peak(sqlite) and _peak(allauth):
        out.append(
            f"nopass / django-allauth, whole logins per second (SQLite, {small:,} users): "
            f"**{_peak(sqlite) / _peak(allauth):.2f}×**"  # type: ignore[operator]
        )
    if sqlite and allauth and _cpu(sqlite) and _cpu(allauth):
        out.append(
            f"django-allauth / nopass, server CPU per login: "
            f"**{_cpu(allauth) / _cpu(sqlite):.2f}×**"  # type: ignore[operator]
        )
    pg = runs.get(("postgres+redis", small)) if small else None
    if sqlite and pg and _peak(sqlite) and _peak(pg):
        out.append(
            f"PostgreSQL + Redis / SQLite, whole logins per second: "
            f"**{_peak(pg) / _peak(sqlite):.2f}×** (target ≥ {1 - TARGETS['postgres_within']:.2f})"  # type: ignore[operator]
        )
    for backend in ("sqlite", "postgres+redis"):
        users = sorted(u for b, u in runs if b == backend)
        if len(users) >= 2:
            lo, hi = runs[(backend, users[0])], runs[(backend, users[-1])]
            p_lo = lo.get("logins", {}).get("half_load", {}).get("p50_ms")
            p_hi = hi.get("logins", {}).get("half_load", {}).get("p50_ms")
            if p_lo and p_hi:
                out.append(
                    f"{backend}: half-load p50 at {users[-1]:,} users / at {users[0]:,} users: "
                    f"**{p_hi / p_lo:.2f}×** (flat = 1.00)"
                )
    return out
