"""Fixtures for the Store contract suite: one ``store`` per adapter (memory, SQLite, PostgreSQL).

PostgreSQL tests use the server at 127.0.0.1:5432 (user ``postgres``, trust auth): the session
creates one private database from the ``postgres`` maintenance database (so concurrent runs and
other suites never collide) and each test starts from an empty ``public`` schema in it. When no
server is reachable those parameters are skipped with the reason.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from securechat.storage.memory import MemoryStore
from securechat.storage.port import Store
from securechat.storage.postgres import PostgresStore
from securechat.storage.sqlite import SqliteStore

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"


@dataclass
class Backend:
    """One adapter under test: how to build a store on the same data, and raw SQL access."""

    name: str
    make: Callable[[], Store]
    execute_sql: Callable[[str], Awaitable[None]] | None = None


async def _pg_admin() -> asyncpg.Connection:
    return await asyncpg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres", timeout=3
    )


async def _create_database(name: str) -> None:
    admin = await _pg_admin()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


async def _drop_database(name: str) -> None:
    admin = await _pg_admin()
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _run_blocking(coro: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine to completion on its own loop (fixtures may be set up inside a loop)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coro).result()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str | Exception]:
    """A private database for this test session, or the reason PostgreSQL is unusable."""
    name = f"sc_test_{uuid.uuid4().hex[:12]}"
    try:
        _run_blocking(_create_database(name))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        yield exc
        return
    try:
        yield name
    finally:
        _run_blocking(_drop_database(name))


async def _sqlite_backend(tmp_path: Path) -> AsyncIterator[Backend]:
    path = tmp_path / "data" / "securechat.db"

    async def execute_sql(sql: str) -> None:
        with sqlite3.connect(path) as conn:
            conn.execute(sql)
        conn.close()

    yield Backend("sqlite", lambda: SqliteStore(path), execute_sql)


async def _postgres_backend(database: str | Exception) -> AsyncIterator[Backend]:
    if isinstance(database, Exception):
        pytest.skip(f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT}: {database}")
    dsn = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"

    async def execute_sql(sql: str) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    await execute_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    yield Backend("postgres", lambda: PostgresStore(dsn), execute_sql)


async def _memory_backend() -> AsyncIterator[Backend]:
    store = MemoryStore()
    yield Backend("memory", lambda: store)


_ALL = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]
_SQL = _ALL[1:]


async def _backend(kind: str, request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if kind == "memory":
        factory = _memory_backend()
    elif kind == "sqlite":
        factory = _sqlite_backend(request.getfixturevalue("tmp_path"))
    else:
        factory = _postgres_backend(request.getfixturevalue("pg_database"))
    async for backend in factory:
        yield backend


@pytest.fixture(params=_ALL)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    async for found in _backend(request.param, request):
        yield found


@pytest.fixture(params=_SQL)
async def sql_backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """Only the adapters with a real database (migrations, durability)."""
    async for found in _backend(request.param, request):
        yield found


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    opened = backend.make()
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
