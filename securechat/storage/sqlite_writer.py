"""The SQLite hot path in one thread hop: a mailbox write transaction (group commit, a round of
acks) run whole on a dedicated thread.

Through SQLAlchemy and aiosqlite every statement of a transaction is a round trip between the
event loop and a driver thread (BEGIN, SELECT, UPDATE, INSERT, COMMIT: a hop each), and each hop
back waits for its turn on a busy loop. Here the transaction (a generator of SQL steps from
sql_steps.py) runs on a dedicated thread with its own connection, so a commit costs one hop.
Writers of this process still take turns through the store's asyncio write lock (SQLite has
one writer).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from securechat.storage.sql_steps import Many, Query, T, Tx


def run_sync(conn: sqlite3.Connection, tx: Tx[T]) -> T:
    """Run a mailbox transaction's steps on a sqlite3 connection."""
    try:
        step = next(tx)
        while True:
            if isinstance(step, Query):
                step = tx.send(conn.execute(step.sql, step.params).fetchall())
            else:
                assert isinstance(step, Many)
                conn.executemany(step.sql, step.rows)
                step = tx.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


class SqliteWriter:
    def __init__(
        self, path: Path, pragmas: Sequence[str], relaxed: tuple[str, str] | None = None
    ) -> None:
        self.path = path
        self.pragmas = pragmas
        # Pragmas before and after a transaction that need not be durable (None: nothing to
        # relax); a pragma of synchronous cannot change inside a transaction.
        self.relaxed = relaxed
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            for pragma in self.pragmas:
                conn.execute(pragma)
            self._conn = conn
        return self._conn

    async def run(self, tx: Tx[T], *, durable: bool = True) -> T:
        """Run ``tx`` in one BEGIN IMMEDIATE transaction on the writer thread (``durable``:
        the commit waits for the disk, as the connection's pragmas say)."""
        relaxed = None if durable else self.relaxed

        def transaction() -> T:
            conn = self._connection()
            if relaxed is not None:
                conn.execute(relaxed[0])
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = run_sync(conn, tx)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                if relaxed is not None:
                    conn.execute(relaxed[1])
            return result

        return await asyncio.get_running_loop().run_in_executor(self._thread, transaction)

    async def close(self) -> None:
        if self._conn is None:
            return

        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._thread, shut)
