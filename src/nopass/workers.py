"""``nopass serve --workers N``: uvicorn's worker processes, each on a listening socket of
its own (``SO_REUSEPORT``), so that the kernel spreads connections over the workers.

With one socket shared by every worker (uvicorn's way), the worker that wakes first accepts
every connection waiting at that moment: a client, a proxy or a load balancer that opens its
keep-alive connections together can end up with all of them on one worker while the other
workers idle (seen in the benchmark: one worker with 6 s of CPU, the other with 0.1 s, in
the same 8 s). With a socket per worker, the kernel picks the socket of each new connection
by a hash of its addresses. The parent listens on every socket before any worker starts
and holds them all: connections that arrive before a worker is ready, or while one that died
is replaced, wait in its socket's queue instead of going to the workers already up (and
staying there, kept alive) or being refused.

Before binding, a plain bind checks that nothing else listens on the address: sockets with
``SO_REUSEPORT`` would otherwise share it with another server of the same user.

The number of workers is the number of sockets: SIGTTIN and SIGTTOU, with which uvicorn's
supervisor adds or stops a worker, are refused (a stopped worker would leave its socket
listening with nobody to accept, an added one would have no socket).
"""

from __future__ import annotations

import logging
import socket
import sys

from uvicorn.config import STARTUP_FAILURE, Config
from uvicorn.supervisors.multiprocess import Multiprocess, Process

__all__ = ["ReusePortMultiprocess", "worker_sockets"]

log = logging.getLogger("uvicorn.error")


def worker_sockets(
    host: str, port: int, count: int, backlog: int, *, tls: bool = False
) -> list[socket.socket]:
    """``count`` sockets listening on ``host``:``port`` with ``SO_REUSEPORT`` (port 0: one
    free port for all), inheritable by the workers; exits as uvicorn does when the address
    is taken. ``tls``: the workers speak HTTPS on them (uvicorn's ``ssl_*`` options), which
    the log line says."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:  # no SO_REUSEPORT: exclusive
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
            port = probe.getsockname()[1]
        sockets = []
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.listen(backlog)
            sock.set_inheritable(True)
            sockets.append(sock)
    except OSError as exc:
        log.error(exc)
        sys.exit(STARTUP_FAILURE)
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    scheme = "https" if tls else "http"
    log.info("Uvicorn running on %s://%s:%d (Press CTRL+C to quit)", scheme, shown, port)
    return sockets


class ReusePortMultiprocess(Multiprocess):
    """uvicorn's supervisor (signals, health checks, restarts), worker ``i`` always on
    ``sockets[i]``. The three methods that start workers are uvicorn 0.54's, with the
    worker's own socket."""

    def __init__(self, config: Config, sockets: list[socket.socket]) -> None:
        super().__init__(config, sockets=[])
        self.worker_sockets = sockets
        self.processes_num = len(sockets)

    def handle_ttin(self) -> None:
        self._refuse("SIGTTIN")

    def handle_ttou(self) -> None:
        self._refuse("SIGTTOU")

    def _refuse(self, name: str) -> None:
        log.warning(
            "Received %s, ignored: the number of workers is fixed (--workers %d), each on a "
            "socket of its own",
            name,
            self.processes_num,
        )

    def _process(self, index: int) -> Process:
        process = Process(self.config, [self.worker_sockets[index]])
        process.start()
        return process

    def init_processes(self) -> None:
        for index in range(self.processes_num):
            self.processes.append(self._process(index))

    def restart_all(self) -> None:
        for index, old in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            new = self._process(index)
            if not new.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                new.kill()
                new.join()
                if not self.should_exit.is_set():
                    log.error(
                        "New worker [%s] was not ready in time; keeping [%s]", new.pid, old.pid
                    )
                return
            old.terminate()
            old.join()
            self.processes[index] = new

    def keep_subprocess_alive(self) -> None:
        if self.should_exit.is_set():
            return
        for index, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()  # hung: kill it
            process.join()
            if process.exitcode == STARTUP_FAILURE:  # broken app or config: no restart loop
                log.error(
                    "Child process [%s] failed to start, stopping the parent process.", process.pid
                )
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            log.info("Child process [%s] died", process.pid)
            self.processes[index] = self._process(index)
