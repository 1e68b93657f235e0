"""Scale-out test helpers: a fresh PostgreSQL database and server nodes on it (real processes)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from securechat.pki import DevPki
from tests.support.process import ServerProcess

PG = "postgresql://postgres@127.0.0.1:5432"
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


SCALEOUT_ENV = {
    "SECURECHAT_CHAT_SEND_RATE_PER_S": "1000",
    "SECURECHAT_CHAT_SEND_BURST": "1000",
    "SECURECHAT_SERVER_GRACE_PERIOD_S": "1",
    "SECURECHAT_ADMIN_USER": "root.admin",
    "SECURECHAT_ADMIN_PASSWORD": ADMIN_PASSWORD,
}


def start_node(
    pki: DevPki, workdir: Path, db: str, bus: str, *, port: int = 0, workers: int = 1
) -> ServerProcess:
    """A server node on PostgreSQL ``db`` and Redis ``bus``, once every worker listens."""
    args = ("--db", db, "--bus", bus, "--no-console", "--workers", str(workers))
    return ServerProcess(
        pki.directory, workdir / "data", port=port, env=SCALEOUT_ENV, args=args, listeners=workers
    )
