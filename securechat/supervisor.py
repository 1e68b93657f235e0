"""`securechat-server --workers N`: fork N server processes that share one port (SO_REUSEPORT).

The parent never creates a gRPC object (grpc and fork do not mix): it forks the workers first,
each worker builds and runs a normal server (``grpc.so_reuseport=1`` is set when workers > 1),
and the parent only supervises: it forwards SIGTERM/SIGINT, restarts a worker that dies
unexpectedly (with backoff) and exits once every worker has exited after a shutdown signal.
Workers share nothing in memory, so they need a shared store and bus (PostgreSQL and Redis).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType

from securechat.config import Config
from securechat.errors import ConfigError

log = logging.getLogger("securechat.supervisor")

POLL_S = 0.1
STABLE_S = 10.0  # a worker that lived this long restarts without delay
BACKOFF_MAX_S = 30.0
KILL_AFTER_S = 10.0  # after the grace period, a worker that has not exited is killed
FATAL_EXITS = {77, 78}  # certificate and config errors: restarting cannot help


def check_workers(config: Config) -> None:
    """Refuse multi-process set-ups that cannot work, with one clear line each."""
    if config.server.workers <= 1:
        return
    if not config.db_url.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
        raise ConfigError(
            "storage.db",
            "--workers > 1 needs a shared PostgreSQL database (postgresql://...): "
            "SQLite cannot be shared by several processes",
        )
    if not config.bus.url.startswith(("redis://", "rediss://")):
        raise ConfigError(
            "bus.url",
            "--workers > 1 needs a shared Redis bus (redis://HOST:PORT): the in-process bus "
            "cannot reach the other workers",
        )
    if config.server.port == 0:
        raise ConfigError(
            "server.port", "--workers > 1 needs a fixed port: with 0 each worker would pick its own"
        )


def worker_config(config: Config, index: int) -> Config:
    """Worker ``index``'s config: its own status page port (status.port + index) and, when a
    node name was configured, a distinct one (NAME/index; by default each is host:pid)."""
    server = config.server
    if server.node:
        server = dataclasses.replace(server, node=f"{server.node}/{index}")
    status = config.status
    if status.port:
        status = dataclasses.replace(status, port=status.port + index)
    return dataclasses.replace(config, server=server, status=status)


def _die_with_parent() -> None:
    """Linux: the worker gets SIGTERM if the supervisor dies (even by SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclasses.dataclass
class _Slot:
    index: int
    pid: int = 0
    started: float = 0.0
    failures: int = 0
    restart_at: float | None = None


class Supervisor:
    def __init__(self, config: Config, run_worker: Callable[[Config], int]) -> None:
        self.config = config
        self.run_worker = run_worker
        self.slots = [_Slot(i) for i in range(config.server.workers)]
        self.stopping: int | None = None  # the signal that asked us to stop
        self.stop_deadline = 0.0
        self.parent = os.getpid()
        self.fatal = 0

    def _spawn(self, slot: _Slot) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                _die_with_parent()
                if os.getppid() != self.parent:
                    os._exit(1)
                code = self.run_worker(worker_config(self.config, slot.index))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                log.exception("worker %d crashed", slot.index)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        slot.pid, slot.started, slot.restart_at = pid, time.monotonic(), None
        log.info("worker %d started (pid %d)", slot.index, pid)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.stopping is None:
            self.stopping = signum
            grace = self.config.server.grace_period_s
            self.stop_deadline = time.monotonic() + grace + KILL_AFTER_S
        self._signal_all(signum)

    def _signal_all(self, signum: int) -> None:
        for slot in self.slots:
            if slot.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, signum)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = next((s for s in self.slots if s.pid == pid), None)
            if slot is None:
                continue
            slot.pid = 0
            code = os.waitstatus_to_exitcode(status)
            if self.stopping is not None:
                log.info("worker %d exited (%d)", slot.index, code)
                continue
            if code in FATAL_EXITS:
                log.error(
                    "worker %d cannot start (exit %d): stopping every worker", slot.index, code
                )
                self.fatal = code
                self._on_signal(signal.SIGTERM, None)
                continue
            lived = time.monotonic() - slot.started
            slot.failures = 0 if lived >= STABLE_S else slot.failures + 1
            delay = min(BACKOFF_MAX_S, 0.5 * 2 ** (slot.failures - 1)) if slot.failures else 0.0
            slot.restart_at = time.monotonic() + delay
            log.warning(
                "worker %d (pid %d) died unexpectedly (%s); restarting in %.1fs",
                slot.index,
                pid,
                f"exit {code}" if code >= 0 else f"signal {-code}",
                delay,
            )

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        for slot in self.slots:
            self._spawn(slot)
        log.info("supervising %d workers on port %d", len(self.slots), self.config.server.port)
        while True:
            self._reap()
            now = time.monotonic()
            if self.stopping is not None:
                if not any(slot.pid for slot in self.slots):
                    return self.fatal
                if now > self.stop_deadline:
                    log.warning("workers did not stop in time: killing them")
                    self._signal_all(signal.SIGKILL)
                    self.stop_deadline = now + KILL_AFTER_S
            else:
                for slot in self.slots:
                    if not slot.pid and slot.restart_at is not None and now >= slot.restart_at:
                        self._spawn(slot)
            time.sleep(POLL_S)


def supervise(config: Config, run_worker: Callable[[Config], int]) -> int:
    """Check the set-up, fork the workers and supervise them until they have all stopped."""
    check_workers(config)
    return Supervisor(config, run_worker).run()
