"""The SQLite hot path in one thread hop: a group commit or a round of acks as one call.

Through SQLAlchemy and aiosqlite every statement of a transaction is a round trip between the
event loop and a driver thread (BEGIN, UPDATE, INSERT, COMMIT: four hops), and each hop back
waits for its turn on a busy loop. Here the whole transaction is one function run on a
dedicated thread with its own connection, so a commit costs one hop. Writers of this process
still take turns through the store's asyncio write lock (SQLite has one writer).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from securechat.domain.model import DeviceRef, MailboxEntry, PendingSend
from securechat.storage import rules
from securechat.storage.sql_mailbox import (
    INSERT_MAILBOX_QMARK,
    group_by_amount,
    materialise,
    reserve_sql,
)

T = TypeVar("T")
CHUNK = 400  # devices per UPDATE (2 parameters each, under SQLite's limit)


class SqliteWriter:
    def __init__(self, path: Path, pragmas: Sequence[str]) -> None:
        self.path = path
        self.pragmas = pragmas
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            for pragma in self.pragmas:
                conn.execute(pragma)
            self._conn = conn
        return self._conn

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def transaction() -> T:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return await asyncio.get_running_loop().run_in_executor(self._thread, transaction)

    async def enqueue_batch(
        self, sends: Sequence[PendingSend], counts: dict[DeviceRef, int]
    ) -> list[list[MailboxEntry]]:
        def work(conn: sqlite3.Connection) -> list[list[MailboxEntry]]:
            next_seq: dict[DeviceRef, int] = {}
            refs = list(counts)
            for amount, group in group_by_amount(refs, counts).items():
                for start in range(0, len(group), CHUNK):
                    chunk = group[start : start + CHUNK]
                    params: list[Any] = [amount]
                    for ref in chunk:
                        params += [ref.user, ref.device_id]
                    for user, device_id, last in conn.execute(reserve_sql(chunk, False), params):
                        next_seq[DeviceRef(user, device_id)] = int(last) - amount + 1
            for ref in refs:
                if ref not in next_seq:
                    raise rules.device_not_found(ref)
            results, rows = materialise(sends, next_seq)
            conn.executemany(INSERT_MAILBOX_QMARK, rows)
            return results

        return await self._run(work)

    async def ack_many(self, acks: Sequence[tuple[DeviceRef, int]]) -> None:
        rows = [(d.user, d.device_id, seq) for d, seq in acks]

        def work(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "DELETE FROM mailbox WHERE user_name = ? AND device_id = ? AND seq <= ?", rows
            )

        await self._run(work)

    async def close(self) -> None:
        if self._conn is None:
            return

        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._thread, shut)
