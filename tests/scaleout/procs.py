"""Scale-out test helpers: a fresh PostgreSQL database and real securechat-server processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from securechat.pki import DevPki

PG = "postgresql://postgres@127.0.0.1:5432"
LISTENING = re.compile(r"securechat-server listening on [^:]+:(\d+)")
ADMIN_PASSWORD = "admin password 123"


async def fresh_database() -> AsyncIterator[str]:
    """A new database on the shared PostgreSQL, dropped afterwards (skips when unreachable)."""
    try:
        admin = await asyncpg.connect(f"{PG}/postgres", timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432: {exc}")
    name = f"sc_scale_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


class ServerProcess:
    """`python -m securechat.app` with PostgreSQL and Redis; stdout collected by a thread."""

    def __init__(
        self, pki: DevPki, workdir: Path, db: str, bus: str, *, port: int = 0, workers: int = 1
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "SECURECHAT_AUTH_BCRYPT_COST": "4",
            "SECURECHAT_CHAT_SEND_RATE_PER_S": "1000",
            "SECURECHAT_CHAT_SEND_BURST": "1000",
            "SECURECHAT_SERVER_GRACE_PERIOD_S": "1",
            "SECURECHAT_ADMIN_USER": "root.admin",
            "SECURECHAT_ADMIN_PASSWORD": ADMIN_PASSWORD,
        }
        cmd = [sys.executable, "-m", "securechat.app", "--port", str(port), "--data-dir",
               str(workdir), "--certs-dir", str(pki.directory), "--db", db, "--bus", bus,
               "--status-port", "0", "--no-console", "--workers", str(workers)]  # fmt: skip
        self.stderr_path = workdir / "stderr.log"
        self.stderr = self.stderr_path.open("wb")
        self.process = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=self.stderr, env=env, start_new_session=True
        )
        self.lines: list[str] = []
        self.port = port
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            self.lines.append(raw.decode(errors="replace"))

    def ports(self, count: int = 1, timeout: float = 30.0) -> list[int]:
        """Wait for ``count`` "listening on" lines; their ports."""
        deadline = time.monotonic() + timeout
        while True:
            found = [int(m.group(1)) for line in self.lines if (m := LISTENING.search(line))]
            if len(found) >= count:
                return found
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.stderr_path.read_text(errors="replace")[-3000:]
                raise AssertionError(f"server did not start: {self.lines!r}\n{log}")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.stop()

    def stop(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
            raise
        finally:
            self.stderr.close()
            self._reader.join(5)
            if self.process.stdout is not None:
                self.process.stdout.close()
