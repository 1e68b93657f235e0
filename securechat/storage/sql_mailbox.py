"""Mailbox methods of the SQL Store adapters: the group commit, fetch pages bounded in bytes,
acks, expiry, usage and the records of stored sends.

The write transactions themselves are in ``mailbox_tx`` (shared with the SQLite writer thread);
here they run statement by statement on an async connection. Sequence numbers come from
``devices.last_seq``; a missing recipient raises NotFound and rolls everything back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Row, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from securechat.domain.mailbox import (
    ACK_ROWS_PER_TRANSACTION,
    NO_LIMITS,
    Committed,
    MailboxLimits,
    Usage,
)
from securechat.domain.model import (
    Conversation,
    ConversationKind,
    DeviceRef,
    MailboxEntry,
    OutgoingCiphertext,
    PendingSend,
)
from securechat.storage import mailbox_tx, mailbox_usage, rules, sql_steps
from securechat.storage.schema import devices, mailbox
from securechat.storage.sql_core import SqlCore
from securechat.storage.sql_steps import Dialect, Many, Query, T, Tx


def _of(device: DeviceRef) -> ColumnElement[bool]:
    return (mailbox.c.user_name == device.user) & (mailbox.c.device_id == device.device_id)


def _entry(row: Row[Any]) -> MailboxEntry:
    return MailboxEntry(
        recipient=DeviceRef(row.user_name, row.device_id),
        seq=row.seq,
        message_id=row.message_id,
        sender=DeviceRef(row.sender_user, row.sender_device),
        conversation=Conversation(ConversationKind(row.conversation_kind), row.conversation_name),
        ciphertext=row.ciphertext,
        sent_at_ms=row.sent_at_ms,
    )


async def run_async(conn: AsyncConnection, tx: Tx[T]) -> T:
    """Run a mailbox transaction on an async connection, statement by statement."""
    try:
        step = next(tx)
        while True:
            if isinstance(step, Query):
                result = await conn.exec_driver_sql(step.sql, step.params)
                step = tx.send([tuple(row) for row in result] if result.returns_rows else [])
            else:
                assert isinstance(step, Many)
                await conn.exec_driver_sql(step.sql, step.rows)
                step = tx.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


class MailboxSql(SqlCore):
    """Store methods of the per-device mailboxes."""

    dialect: Dialect = sql_steps.POSTGRES

    async def _transact(self, tx: Tx[T], *, durable: bool = True) -> T:
        """Run one mailbox write transaction (the SQLite adapter runs it on its writer).
        ``durable=False``: the commit does not wait for the disk (acks: one lost in a crash is
        a redelivery the client drops by message id); every durable commit after it still
        waits, and the database stays consistent either way."""
        async with self._write() as conn:
            if not durable:
                await conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
            return await run_async(conn, tx)

    async def commit_sends(
        self, sends: Sequence[PendingSend], limits: MailboxLimits, dedup_since_ms: int
    ) -> list[Committed]:
        if not sends:
            return []
        return await self._transact(mailbox_tx.commit(self.dialect, sends, limits, dedup_since_ms))

    async def enqueue(
        self,
        message_id: str,
        sender: DeviceRef,
        sent_at_ms: int,
        items: Sequence[OutgoingCiphertext],
    ) -> list[MailboxEntry]:
        send = PendingSend(message_id, sender, sent_at_ms, tuple(items))
        return (await self.enqueue_batch([send]))[0]

    async def enqueue_batch(self, sends: Sequence[PendingSend]) -> list[list[MailboxEntry]]:
        return [done.entries for done in await self.commit_sends(sends, NO_LIMITS, 0)]

    async def fetch(
        self, device: DeviceRef, after_seq: int, limit: int, max_bytes: int = 0
    ) -> list[MailboxEntry]:
        rules.check_limit(limit)
        if limit == 0:
            return []
        query = select(mailbox).where(_of(device) & (mailbox.c.seq > after_seq))
        async with self._read() as conn:
            if max_bytes:
                # The sizes first (SQLite and PostgreSQL read a blob's length without the blob),
                # then only the rows that fit.
                sizes = await conn.execute(
                    select(mailbox.c.seq, func.length(mailbox.c.ciphertext))
                    .where(_of(device) & (mailbox.c.seq > after_seq))
                    .order_by(mailbox.c.seq)
                    .limit(limit)
                )
                found = [(int(seq), int(size)) for seq, size in sizes]
                if not found:
                    return []
                query = query.where(mailbox.c.seq <= rules.page_end(found, max_bytes))
            result = await conn.execute(query.order_by(mailbox.c.seq).limit(limit))
            return [_entry(row) for row in result]

    async def _last_seq(self, conn: AsyncConnection, device: DeviceRef) -> int:
        last = await conn.scalar(
            select(devices.c.last_seq).where(
                (devices.c.user_name == device.user) & (devices.c.device_id == device.device_id)
            )
        )
        if last is None:
            raise rules.device_not_found(device)
        return int(last)

    async def ack(self, device: DeviceRef, up_to_seq: int) -> int:
        last = await self.last_seq(device)
        if up_to_seq > last:
            raise rules.ack_beyond_last(up_to_seq, last)
        deleted, rest = 0, [(device, up_to_seq)]
        while rest:  # a transaction per ACK_ROWS_PER_TRANSACTION: sends commit in between
            done, rest = await self._transact(
                mailbox_tx.remove(self.dialect, rest, ACK_ROWS_PER_TRANSACTION)
            )
            deleted += done
        return deleted

    async def ack_many(
        self, acks: Sequence[tuple[DeviceRef, int]], limit: int = 0
    ) -> list[tuple[DeviceRef, int]]:
        if not acks:
            return []
        _, rest = await self._transact(mailbox_tx.remove(self.dialect, acks, limit), durable=False)
        return rest

    async def last_seq(self, device: DeviceRef) -> int:
        async with self._read() as conn:
            return await self._last_seq(conn, device)

    async def pending_count(self, device: DeviceRef, after_seq: int) -> int:
        async with self._read() as conn:
            found = await conn.scalar(
                select(func.count())
                .select_from(mailbox)
                .where(_of(device) & (mailbox.c.seq > after_seq))
            )
            return int(found or 0)

    async def mailbox_usage(self, device: DeviceRef) -> Usage:
        async with self._read() as conn:
            return await run_async(conn, mailbox_usage.usage_of(self.dialect, device))

    async def expire_messages(self, before_ms: int) -> int:
        return await self._transact(mailbox_tx.expire(self.dialect, before_ms))

    async def prune_sent(self, before_ms: int, keep_per_device: int) -> int:
        return await self._transact(mailbox_tx.prune_sent(self.dialect, before_ms, keep_per_device))
