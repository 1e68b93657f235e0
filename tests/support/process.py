"""Real `securechat-server` processes for tests: clean environment, port 0, one readiness check.

Every test that starts a server process goes through `ServerProcess`, and every test that starts
a client process (`securechat`, `securechat-admin`, tmux) takes its environment from
`clean_env`, so nothing from the developer's shell (SECURECHAT_*, GRPC_*, ~/.config) reaches
them and no test needs a fixed port.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

BIN = Path(sys.executable).parent
SERVER = str(BIN / "securechat-server")
# The one line `securechat-server` prints on stdout once it serves (one per worker).
LISTENING = re.compile(r"^securechat-server listening on \[?([^\]\s]+?)\]?:(\d+)\s*$")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
# Fast and unthrottled: bcrypt at its lowest cost, registrations never limited, a short drain.
FAST_SERVER_ENV = {
    "SECURECHAT_AUTH_BCRYPT_COST": "4",
    "SECURECHAT_AUTH_REGISTRATIONS_PER_PEER_PER_HOUR": "100000",
    "SECURECHAT_SERVER_GRACE_PERIOD_S": "2",
}
_LEAKY_PREFIXES = ("SECURECHAT_", "GRPC_")
# Nor the developer's runtime dir, terminal multiplexer or Python path (the processes import
# securechat from the venv they run in).
_DROPPED = ("XDG_RUNTIME_DIR", "TMUX", "TMUX_PANE", "PYTHONPATH", "PYTHONHOME")
_HOME_DIRS = {
    "HOME": "",
    "XDG_CONFIG_HOME": ".config",
    "XDG_DATA_HOME": ".local/share",
    "XDG_STATE_HOME": ".local/state",
    "XDG_CACHE_HOME": ".cache",
}


def clean_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without SECURECHAT_*, GRPC_* and PYTHONPATH, with HOME and
    the XDG folders inside ``home`` (created), then ``extra``: no developer config is read."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_LEAKY_PREFIXES)}
    for name, sub in _HOME_DIRS.items():
        path = home / sub
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    for name in _DROPPED:
        env.pop(name, None)
    env.update(extra or {})
    return env


def server_command(
    certs_dir: Path, data_dir: Path, *args: str, port: int | None = 0, executable: str = SERVER
) -> list[str]:
    """`securechat-server` on ``port`` (0: a free one; None: no --port flag) without a status
    page (a later ``--status-port`` in ``args`` wins), then ``args``."""
    flags = [] if port is None else ["--port", str(port)]
    return [executable, *flags, "--status-port", "0",
            "--data-dir", str(data_dir), "--certs-dir", str(certs_dir), *args]  # fmt: skip


class ServerProcess:
    """A started `securechat-server`: ready (it announced ``listeners`` ports) when built.

    ``executable`` is this venv's `securechat-server` unless another venv's is given.
    ``env`` is added to `clean_env` and `FAST_SERVER_ENV`; the server runs in ``data_dir``'s
    parent folder (its HOME is ``home`` there), logs to a file beside it and reads ``stdin``
    (closed by default: no console). Its own session, so stopping it also stops its workers.
    """

    def __init__(
        self,
        certs_dir: Path,
        data_dir: Path,
        *,
        port: int = 0,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
        listeners: int = 1,
        stdin: int | IO[bytes] = subprocess.DEVNULL,
        timeout: float = START_TIMEOUT_S,
        executable: str = SERVER,
    ) -> None:
        workdir = data_dir.parent
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / f"server-{time.monotonic_ns()}.log"
        self.lines: list[str] = []  # everything on stdout: announcements, console output
        self._changed = threading.Condition()
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                server_command(certs_dir, data_dir, *args, port=port, executable=executable),
                cwd=workdir,
                env=clean_env(workdir / "home", {**FAST_SERVER_ENV, **(env or {})}),
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
            )
        self._reader = threading.Thread(target=self._read, name="server-stdout", daemon=True)
        self._reader.start()
        try:
            self.ports = self.wait_listening(listeners, timeout)
        except BaseException:
            self.kill()
            raise
        self.port = self.ports[0]

    @property
    def address(self) -> str:
        return f"localhost:{self.port}"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for raw in self.proc.stdout:
                with self._changed:
                    self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                    self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def announced(self) -> list[int]:
        """The ports of every "listening on" line so far (a restarted worker adds one)."""
        with self._changed:
            return [int(m.group(2)) for line in self.lines if (m := LISTENING.match(line))]

    def wait_listening(self, count: int = 1, timeout: float = START_TIMEOUT_S) -> list[int]:
        """Block until ``count`` "listening on" lines arrived; fails with the log when the
        process exits or ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(ports := self.announced()) < count:
                left = deadline - time.monotonic()
                if left <= 0 or not self._reader.is_alive():
                    break
                self._changed.wait(min(left, 1.0))
            else:
                return ports
        state = "timed out" if self.proc.poll() is None else f"exited {self.proc.returncode}"
        log = self.logs()[-3000:]
        raise AssertionError(f"securechat-server did not start ({state}): {self.lines!r}\n{log}")

    def terminate(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM (a graceful stop) and its exit code; killed and failed when it hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def wait(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """Its exit code once it ended and its stdout is read to the end."""
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        return code

    def kill(self) -> None:
        """SIGKILL to the whole session (workers included)."""
        if self.proc.returncode is None:  # not reaped yet: its pid still names its session
            with contextlib.suppress(ProcessLookupError):  # the session has ended already
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._reader.join(10)

    def logs(self) -> str:
        """Its stderr so far (the server's log)."""
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.terminate()
