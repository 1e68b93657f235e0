"""Engine, transactions, error translation and dialect hooks behind the SQL Store adapters.

``SqlCore`` owns the SQLAlchemy async engine. Queries run in ``_read()`` (a plain connection) or
``_write()`` (one transaction, committed on success, rolled back on any exception). Driver and
SQLAlchemy exceptions never escape: they become ``Unavailable`` (or ``InvalidArgument`` for a
constraint violation) with the original chained for the server log. Subclasses supply the engine
and the few statements that differ between SQLite and PostgreSQL.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager, nullcontext

from sqlalchemy import Select, Table
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import Insert

from securechat.errors import InvalidArgument, SecureChatError, Unavailable
from securechat.storage import migrations


@contextmanager
def translated_errors(where: str) -> Iterator[None]:
    """Turn driver failures into securechat errors without exposing SQL or driver text."""
    try:
        yield
    except SecureChatError:
        raise
    except IntegrityError as exc:
        raise InvalidArgument(
            "the request conflicts with data already stored: refresh and try again"
        ) from exc
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        raise Unavailable(
            f"the {where} database failed or is unreachable: check that it is running "
            "and see the server log for details"
        ) from exc


class SqlCore(abc.ABC):
    """Lifecycle and plumbing shared by the SQLite and PostgreSQL adapters."""

    #: Human-readable backend name used in error messages ("SQLite", "PostgreSQL").
    backend: str = "SQL"

    def __init__(self) -> None:
        self._engine: AsyncEngine | None = None
        self._write_engine: AsyncEngine | None = None
        #: Migration versions applied by the last ``open()`` (empty when already current).
        self.applied_migrations: list[int] = []
        #: Set by adapters whose database admits one writer at a time: writers then queue here
        #: (FIFO, no polling) instead of sleeping in the database's busy handler.
        self._local_write_lock: asyncio.Lock | None = None

    # ---- dialect hooks ------------------------------------------------------------------
    @abc.abstractmethod
    def _create_engine(self) -> AsyncEngine:
        """Build the engine (called by ``open``)."""

    def _write_options(self) -> dict[str, object]:
        """Execution options that mark a connection as a write transaction."""
        return {}

    @abc.abstractmethod
    async def _prepare(self) -> None:
        """Anything to do before the first connection (e.g. create the data folder)."""

    @abc.abstractmethod
    async def _lock_for_migration(self, conn: AsyncConnection) -> None:
        """Serialise concurrent ``open()`` calls from several processes."""

    @abc.abstractmethod
    def _insert_ignoring_conflicts(self, table: Table) -> Insert:
        """``INSERT ... ON CONFLICT DO NOTHING`` for ``table``."""

    @abc.abstractmethod
    def _claimable(self, query: Select[tuple[int]]) -> Select[tuple[int]]:
        """Make a "pick one prekey row" sub-select safe against concurrent claimers."""

    # ---- lifecycle ----------------------------------------------------------------------
    async def open(self) -> None:
        if self._engine is not None:
            return
        await self._prepare()
        with translated_errors(self.backend):
            engine = self._create_engine()
            try:
                write_engine = engine.execution_options(**self._write_options())
                async with write_engine.begin() as conn:
                    await self._lock_for_migration(conn)
                    self.applied_migrations = await conn.run_sync(migrations.migrate)
            except BaseException:
                await engine.dispose()
                raise
        self._engine, self._write_engine = engine, write_engine

    async def close(self) -> None:
        engine, self._engine, self._write_engine = self._engine, None, None
        if engine is not None:
            with translated_errors(self.backend):
                await engine.dispose()

    async def schema_version(self) -> int:
        async with self._read() as conn:
            return await conn.run_sync(migrations.current_version)

    # ---- transactions -------------------------------------------------------------------
    def _engines(self) -> tuple[AsyncEngine, AsyncEngine]:
        if self._engine is None or self._write_engine is None:
            raise Unavailable(f"the {self.backend} store is not open: call open() first")
        return self._engine, self._write_engine

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        engine, _ = self._engines()
        with translated_errors(self.backend):
            async with engine.connect() as conn:
                yield conn

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        _, engine = self._engines()
        queue: AbstractAsyncContextManager[object] = self._local_write_lock or nullcontext()
        with translated_errors(self.backend):
            async with queue, engine.begin() as conn:
                yield conn
