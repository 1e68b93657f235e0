"""The PostgreSQL Store adapter (asyncpg): the shared source of truth when scaling out.

Several server processes may use one database at once, so the dialect hooks lock explicitly:
recipient device rows are locked in (user, device_id) order before sequence numbers are
reserved (no deadlocks between concurrent batches), prekey claims pick their row with
``FOR UPDATE SKIP LOCKED`` (each one-time key handed out exactly once), and migrations run under
a transaction-scoped advisory lock.
"""

from __future__ import annotations

from sqlalchemy import Select, Table, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.dml import Insert

from securechat.errors import InvalidArgument
from securechat.storage.sql_store import SqlStore

#: Arbitrary constant naming the advisory lock held while migrating ("scmig" in ASCII).
_MIGRATION_LOCK_KEY = 0x73636D6967


def asyncpg_url(dsn: str) -> str:
    """Rewrite ``postgresql://`` / ``postgres://`` DSNs to SQLAlchemy's asyncpg driver URL."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+asyncpg://" + dsn[len(prefix) :]
    raise InvalidArgument(
        "a PostgreSQL address must look like postgresql://USER@HOST:PORT/DATABASE"
    )


class PostgresStore(SqlStore):
    """Store on a PostgreSQL database given by a ``postgresql://`` DSN."""

    backend = "PostgreSQL"

    def __init__(self, dsn: str) -> None:
        super().__init__()
        url = asyncpg_url(dsn)
        try:
            self._url = make_url(url)
        except ArgumentError as exc:
            raise InvalidArgument(
                "the PostgreSQL address is malformed: expected "
                "postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
            ) from exc

    def __repr__(self) -> str:  # never show the password
        return f"PostgresStore({self._url.render_as_string(hide_password=True)!r})"

    async def _prepare(self) -> None:
        """Nothing to prepare: the database must already exist."""

    def _create_engine(self) -> AsyncEngine:
        return create_async_engine(self._url, pool_size=10, max_overflow=10)

    async def _lock_for_migration(self, conn: AsyncConnection) -> None:
        await conn.execute(select(func.pg_advisory_xact_lock(_MIGRATION_LOCK_KEY)))

    def _insert_ignoring_conflicts(self, table: Table) -> Insert:
        return pg_insert(table).on_conflict_do_nothing()

    def _claimable(self, query: Select[tuple[int]]) -> Select[tuple[int]]:
        return query.with_for_update(skip_locked=True)
