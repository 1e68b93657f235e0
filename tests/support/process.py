"""Run the real `securechat-server` as a subprocess and wait until it listens."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

BIN = Path(sys.executable).parent
LISTENING = re.compile(r"listening on \S+:(\d+)")


class ServerProcess:
    def __init__(
        self,
        certs_dir: Path,
        data_dir: Path,
        *,
        port: int = 0,
        env: Mapping[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.log_path = data_dir.parent / f"server-{time.monotonic_ns()}.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        full_env = {
            **os.environ,
            "SECURECHAT_AUTH_BCRYPT_COST": "4",
            "SECURECHAT_STATUS_PORT": "0",
            "SECURECHAT_AUTH_REGISTRATIONS_PER_PEER_PER_HOUR": "100000",
            "SECURECHAT_SERVER_GRACE_PERIOD_S": "2",
            **(env or {}),
        }
        self.log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [
                str(BIN / "securechat-server"),
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                "--certs-dir",
                str(certs_dir),
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=full_env,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = LISTENING.search(line)
        if match is None:
            self.proc.wait(10)
            raise RuntimeError(f"server did not start: {line!r}\n{self.log_path.read_text()}")
        self.port = int(match.group(1))

    def terminate(self, timeout: float = 20.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._close()
        return code

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self._close()

    def _close(self) -> None:
        self.log.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def logs(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text()
