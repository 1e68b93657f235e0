"""Mailbox queries for the SQL Store adapters: per-device sequences, group commit, ack, expiry.

Sequence numbers come from ``devices.last_seq``. ``enqueue_batch`` does, in ONE transaction and
whatever the batch size: lock the recipient device rows in (user, device_id) order (PostgreSQL
only; SQLite's write transaction already excludes other writers), one ``UPDATE devices ...
RETURNING last_seq`` that reserves a block of sequence numbers for every recipient at once, and
one ``executemany`` INSERT of all mailbox rows. Statements are chunked only for very large
batches. A missing recipient raises NotFound and rolls everything back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    bindparam,
    delete,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from securechat.domain.model import (
    Conversation,
    ConversationKind,
    DeviceRef,
    MailboxEntry,
    OutgoingCiphertext,
    PendingSend,
)
from securechat.storage import rules
from securechat.storage.schema import devices, mailbox
from securechat.storage.sql_core import SqlCore

#: Recipient devices per UPDATE statement (keeps bind parameters far below driver limits).
_CHUNK = 500


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


_MAILBOX_COLUMNS = (
    "user_name",
    "device_id",
    "seq",
    "message_id",
    "sender_user",
    "sender_device",
    "conversation_kind",
    "conversation_name",
    "ciphertext",
    "sent_at_ms",
)


INSERT_MAILBOX_QMARK = (
    f"INSERT INTO mailbox ({', '.join(_MAILBOX_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' for _ in _MAILBOX_COLUMNS)})"
)
INSERT_MAILBOX_DOLLAR = (
    f"INSERT INTO mailbox ({', '.join(_MAILBOX_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(_MAILBOX_COLUMNS) + 1))})"
)


def materialise(
    sends: Sequence[PendingSend], next_seq: dict[DeviceRef, int]
) -> tuple[list[list[MailboxEntry]], list[tuple[Any, ...]]]:
    """Give every item its sequence (``next_seq`` holds each device's first reserved one and
    is advanced) and build the entries and the mailbox rows, in send order."""
    results: list[list[MailboxEntry]] = []
    rows: list[tuple[Any, ...]] = []
    for send in sends:
        entries = []
        for item in send.items:
            recipient = item.recipient
            seq = next_seq[recipient]
            next_seq[recipient] = seq + 1
            conversation = item.conversation
            entries.append(
                MailboxEntry(
                    recipient,
                    seq,
                    send.message_id,
                    send.sender,
                    conversation,
                    item.ciphertext,
                    send.sent_at_ms,
                )
            )
            rows.append(
                (
                    recipient.user,
                    recipient.device_id,
                    seq,
                    send.message_id,
                    send.sender.user,
                    send.sender.device_id,
                    conversation.kind.value,
                    conversation.name,
                    item.ciphertext,
                    send.sent_at_ms,
                )
            )
        results.append(entries)
    return results, rows


def reserve_sql(amount_group: Sequence[DeviceRef], dollar: bool) -> str:
    """UPDATE ... RETURNING that adds one amount to the last_seq of every device in the group."""
    if dollar:
        pairs = [f"(${2 * i + 2}, ${2 * i + 3})" for i in range(len(amount_group))]
    else:
        pairs = ["(?, ?)"] * len(amount_group)
    return (
        f"UPDATE devices SET last_seq = last_seq + {'$1' if dollar else '?'} "  # noqa: S608
        f"WHERE (user_name, device_id) IN ({', '.join(pairs)}) "
        "RETURNING user_name, device_id, last_seq"
    )


def group_by_amount(
    refs: Sequence[DeviceRef], counts: dict[DeviceRef, int]
) -> dict[int, list[DeviceRef]]:
    by_amount: dict[int, list[DeviceRef]] = {}
    for ref in refs:
        by_amount.setdefault(counts[ref], []).append(ref)
    return by_amount


class MailboxSql(SqlCore):
    """Store methods of the per-device mailboxes."""

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
        counts = rules.recipient_counts(sends)
        if not counts:
            return [[] for _ in sends]
        async with self._write() as conn:
            refs = list(counts)
            await self._lock_devices(conn, refs)
            next_seq: dict[DeviceRef, int] = {}
            for start in range(0, len(refs), _CHUNK):
                chunk = refs[start : start + _CHUNK]
                next_seq.update(await self._reserve(conn, chunk, counts))
            for ref in refs:
                if ref not in next_seq:
                    raise rules.device_not_found(ref)
            results, rows = materialise(sends, next_seq)
            # The hottest statement of the server: straight to the driver's executemany, without
            # SQLAlchemy's per-row parameter processing (plain str/int/bytes need none).
            dollar = conn.dialect.paramstyle == "numeric_dollar"
            await conn.exec_driver_sql(
                INSERT_MAILBOX_DOLLAR if dollar else INSERT_MAILBOX_QMARK, rows
            )
        return results

    async def _reserve(
        self, conn: AsyncConnection, refs: Sequence[DeviceRef], counts: dict[DeviceRef, int]
    ) -> dict[DeviceRef, int]:
        """Bump last_seq of every device in refs; return each one's first reserved sequence.

        One UPDATE ... RETURNING per distinct amount (usually one: a message per device), in
        plain SQL: building the equivalent SQLAlchemy expression for every commit cost more CPU
        than the statement itself."""
        first: dict[DeviceRef, int] = {}
        dollar = conn.dialect.paramstyle == "numeric_dollar"
        for amount, group in group_by_amount(refs, counts).items():
            params: list[object] = [amount]
            for ref in group:
                params += [ref.user, ref.device_id]
            sql = reserve_sql(group, dollar)
            result = await conn.exec_driver_sql(sql, tuple(params))
            rows: list[Any] = list(result)
            for row in rows:
                ref = DeviceRef(str(row[0]), int(row[1]))
                first[ref] = int(row[2]) - amount + 1
        return first

    async def fetch(self, device: DeviceRef, after_seq: int, limit: int) -> list[MailboxEntry]:
        rules.check_limit(limit)
        if limit == 0:
            return []
        async with self._read() as conn:
            result = await conn.execute(
                select(mailbox)
                .where(_of(device) & (mailbox.c.seq > after_seq))
                .order_by(mailbox.c.seq)
                .limit(limit)
            )
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
        async with self._write() as conn:
            last = await self._last_seq(conn, device)
            if up_to_seq > last:
                raise rules.ack_beyond_last(up_to_seq, last)
            result = await conn.execute(
                delete(mailbox).where(_of(device) & (mailbox.c.seq <= up_to_seq))
            )
            return int(result.rowcount)

    async def ack_many(self, acks: Sequence[tuple[DeviceRef, int]]) -> None:
        if not acks:
            return
        statement = delete(mailbox).where(
            (mailbox.c.user_name == bindparam("u"))
            & (mailbox.c.device_id == bindparam("d"))
            & (mailbox.c.seq <= bindparam("s"))
        )
        async with self._write() as conn:
            await conn.execute(
                statement, [{"u": d.user, "d": d.device_id, "s": seq} for d, seq in acks]
            )

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

    async def expire_messages(self, before_ms: int) -> int:
        async with self._write() as conn:
            result = await conn.execute(delete(mailbox).where(mailbox.c.sent_at_ms < before_ms))
            return int(result.rowcount)
