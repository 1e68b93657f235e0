"""The SQLite Store adapter: the default, embedded, one-file database (WAL, aiosqlite).

Write transactions start with ``BEGIN IMMEDIATE``: SQLite allows one writer at a time, and taking
the write lock up front (waiting up to ``busy_timeout``) serialises writers instead of failing
with "database is locked" when a reader tries to upgrade. That serialisation is also what makes
prekey claims exactly-once here. Within this process writers also queue on an asyncio lock, so
they wait their turn without polling; ``busy_timeout`` covers other processes (admin tools).
Reads use plain deferred transactions and run alongside a writer thanks to WAL. The folder and
the files are for the server's user alone (private_files.py).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Select, Table, event
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.dml import Insert

from securechat.errors import InvalidArgument, Unavailable
from securechat.storage.private_files import make_private
from securechat.storage.sql_steps import SQLITE, T, Tx
from securechat.storage.sql_store import SqlStore
from securechat.storage.sqlite_writer import SqliteWriter

SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
BUSY_TIMEOUT_MS = 10_000
_WRITE_OPTION = "securechat_write"


class SqliteStore(SqlStore):
    """Store on a SQLite file; the parent folder is created on ``open()``."""

    backend = "SQLite"
    dialect = SQLITE

    def __init__(self, path: Path, *, synchronous: str = "FULL") -> None:
        super().__init__()
        mode = synchronous.upper()
        if mode not in SYNCHRONOUS_MODES:
            raise InvalidArgument(
                f"SQLite synchronous mode must be one of {', '.join(SYNCHRONOUS_MODES)}, "
                f"got {synchronous!r}"
            )
        self.path = Path(path)
        self.synchronous = mode
        self._local_write_lock = asyncio.Lock()
        self._writer = SqliteWriter(self.path, self._pragmas(), relaxed=self._relaxed())

    def _relaxed(self) -> tuple[str, str] | None:
        """The pragmas around a transaction that need not be durable (before, after): in WAL
        mode NORMAL writes the commit to the WAL without an fsync; the next FULL commit's fsync
        covers it too."""
        if self.synchronous in ("FULL", "EXTRA"):
            return "PRAGMA synchronous = NORMAL", f"PRAGMA synchronous = {self.synchronous}"
        return None

    def _pragmas(self) -> list[str]:
        return [
            f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
            "PRAGMA journal_mode = WAL",
            f"PRAGMA synchronous = {self.synchronous}",
            "PRAGMA foreign_keys = ON",
        ]

    async def _transact(self, tx: Tx[T], *, durable: bool = True) -> T:
        """Mailbox write transactions (the group commit, acks) in one hop to the writer thread;
        a transaction that need not be durable (acks) commits without an fsync."""
        assert self._local_write_lock is not None
        async with self._local_write_lock:
            try:
                return await self._writer.run(tx, durable=durable)
            except sqlite3.Error as exc:
                raise Unavailable("the message store failed: try again") from exc

    async def close(self) -> None:
        await self._writer.close()
        await super().close()

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    async def _prepare(self) -> None:
        try:
            await asyncio.to_thread(make_private, self.path)
        except OSError as exc:
            raise Unavailable(
                f"cannot create the data folder {self.path.parent}: {exc.strerror or exc}; "
                "check the path and its permissions"
            ) from exc

    def _create_engine(self) -> AsyncEngine:
        url = URL.create("sqlite+aiosqlite", database=str(self.path))
        # A fixed pool: overflow connections were opened and closed under load, each a new
        # aiosqlite thread plus its PRAGMAs.
        engine = create_async_engine(url, pool_size=8, max_overflow=0)
        pragmas = self._pragmas()

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let us emit BEGIN ourselves (the driver's implicit BEGIN is always DEFERRED).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            try:
                for pragma in pragmas:
                    cursor.execute(pragma)
            finally:
                cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            write = conn.get_execution_options().get(_WRITE_OPTION, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine

    def _write_options(self) -> dict[str, object]:
        return {_WRITE_OPTION: True}

    async def _lock_for_migration(self, conn: AsyncConnection) -> None:
        """Nothing to do: the migration runs in a BEGIN IMMEDIATE transaction."""

    def _insert_ignoring_conflicts(self, table: Table) -> Insert:
        return sqlite_insert(table).on_conflict_do_nothing()

    def _claimable(self, query: Select[tuple[int]]) -> Select[tuple[int]]:
        return query
