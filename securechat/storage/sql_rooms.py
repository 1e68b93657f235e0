"""Signed rosters and the stored-once room log in the SQL Store adapters.

A roster event is stored with the membership change it makes in one transaction, and only while
the roster's length is still the event's sequence (``UPDATE rooms ... WHERE roster_length = ?``:
of two events signed for the same position, exactly one is stored). Room messages are written
by the group commit (room_log_tx.py); here they are read a page at a time, each device's
acknowledged position per room is kept (written on ack, never on send), and the prefix of each
log that no current device still needs is deleted (room_trim.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import Row, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from securechat.domain.model import DeviceRef, RoomEntry, RosterAppend, RosterHead
from securechat.storage import room_log_tx, rules, sql_steps
from securechat.storage.room_trim import Reader, RoomTrimmer, trim_bound
from securechat.storage.schema import (
    devices,
    room_members,
    room_messages,
    room_positions,
    rooms,
    roster_events,
    users,
)
from securechat.storage.sql_core import SqlCore
from securechat.storage.sql_steps import Dialect

T = TypeVar("T")


def _room_entry(row: Row[Any]) -> RoomEntry:
    sender = DeviceRef(row.sender_user, int(row.sender_device))
    return RoomEntry(
        row.room_name, int(row.room_seq), row.message_id, sender, bytes(row.ciphertext),
        int(row.sent_at_ms),
    )  # fmt: skip


class RoomLogSql(SqlCore):
    """Store methods of signed rosters, room message logs and room positions."""

    dialect: Dialect = sql_steps.POSTGRES
    TRIM_ROOMS_PAGE = 100

    def __init__(self) -> None:
        super().__init__()
        self._trimmer = RoomTrimmer()

    async def _insert_event(self, conn: AsyncConnection, change: RosterAppend) -> None:
        await conn.execute(
            roster_events.insert().values(
                room_name=change.room,
                sequence=change.sequence,
                event=change.event,
                event_hash=change.event_hash,
                appended_at_ms=change.now_ms,
            )
        )

    async def _join(self, conn: AsyncConnection, room: str, user: str, now_ms: int) -> None:
        if await conn.scalar(select(users.c.name).where(users.c.name == user)) is None:
            raise rules.user_not_found(user)
        head = select(rooms.c.last_room_seq).where(rooms.c.name == room).scalar_subquery()
        await conn.execute(
            self._insert_ignoring_conflicts(room_members).values(
                room_name=room, user_name=user, joined_at_ms=now_ms, joined_room_seq=head
            )
        )

    async def _leave(self, conn: AsyncConnection, room: str, user: str) -> bool:
        """Remove the member with their devices' positions; False when not a member."""
        left = await conn.execute(
            delete(room_members).where(
                (room_members.c.room_name == room) & (room_members.c.user_name == user)
            )
        )
        await conn.execute(
            delete(room_positions).where(
                (room_positions.c.room_name == room) & (room_positions.c.user_name == user)
            )
        )
        return bool(left.rowcount)

    async def roster_head(self, room: str) -> RosterHead | None:
        query = select(rooms.c.roster_length, rooms.c.roster_head, rooms.c.roster_state).where(
            rooms.c.name == room
        )
        async with self._read() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return RosterHead(int(row[0]), bytes(row[1] or b""), bytes(row[2] or b""))

    async def append_roster_event(self, change: RosterAppend) -> bool:
        values: dict[str, object] = {
            "roster_length": change.sequence + 1,
            "roster_head": change.event_hash,
            "roster_state": change.state,
        }
        if change.set_password:
            values["password_hash"] = change.password_hash
        async with self._write() as conn:
            moved = await conn.execute(
                update(rooms)
                .where((rooms.c.name == change.room) & (rooms.c.roster_length == change.sequence))
                .values(**values)
            )
            if not moved.rowcount:
                if await conn.scalar(select(rooms.c.name).where(rooms.c.name == change.room)):
                    return False
                raise rules.room_not_found(change.room)
            await self._insert_event(conn, change)
            if change.only:
                others = delete(room_members).where(
                    (room_members.c.room_name == change.room)
                    & (room_members.c.user_name != change.only)
                )
                await conn.execute(others)
                await conn.execute(
                    delete(room_positions).where(
                        (room_positions.c.room_name == change.room)
                        & (room_positions.c.user_name != change.only)
                    )
                )
                await self._join(conn, change.room, change.only, change.now_ms)
            if change.add:
                await self._join(conn, change.room, change.add, change.now_ms)
            if change.remove:
                await self._leave(conn, change.room, change.remove)
        return True

    async def roster_events(self, room: str, from_sequence: int, limit: int) -> list[bytes]:
        if not 1 <= limit <= rules.MAX_ROSTER_PAGE:
            raise rules.bad_roster_page(limit, rules.MAX_ROSTER_PAGE)
        query = (
            select(roster_events.c.event)
            .where(
                (roster_events.c.room_name == room) & (roster_events.c.sequence >= from_sequence)
            )
            .order_by(roster_events.c.sequence)
            .limit(limit)
        )
        async with self._read() as conn:
            return [bytes(event) for event in await conn.scalars(query)]

    async def last_room_seq(self, room: str) -> int:
        async with self._read() as conn:
            found = await conn.scalar(select(rooms.c.last_room_seq).where(rooms.c.name == room))
        if found is None:
            raise rules.room_not_found(room)
        return int(found)

    async def fetch_room(
        self, room: str, after_room_seq: int, limit: int, max_bytes: int = 0
    ) -> list[RoomEntry]:
        rules.check_limit(limit)
        if limit == 0:
            return []
        where = (room_messages.c.room_name == room) & (room_messages.c.room_seq > after_room_seq)
        query = select(room_messages).where(where)
        async with self._read() as conn:
            if max_bytes:
                sizes = await conn.execute(
                    select(room_messages.c.room_seq, func.length(room_messages.c.ciphertext))
                    .where(where)
                    .order_by(room_messages.c.room_seq)
                    .limit(limit)
                )
                found = [(int(seq), int(size)) for seq, size in sizes]
                if not found:
                    return []
                query = query.where(room_messages.c.room_seq <= rules.page_end(found, max_bytes))
            result = await conn.execute(query.order_by(room_messages.c.room_seq).limit(limit))
            return [_room_entry(row) for row in result]

    async def room_message_seq(self, room: str, message_id: str, sent_at_ms: int) -> int:
        query = select(room_messages.c.room_seq).where(
            (room_messages.c.sent_at_ms == sent_at_ms)
            & (room_messages.c.room_name == room)
            & (room_messages.c.message_id == message_id)
        )
        async with self._read() as conn:
            return int(await conn.scalar(query) or 0)

    async def room_starts(self, device: DeviceRef) -> dict[str, int]:
        """After the join, the device's ack, and every message sent before the device existed
        (a device linked later gets nothing from before it, like a user who joins later)."""
        acked = (
            select(room_positions.c.acked_seq)
            .where(
                (room_positions.c.user_name == device.user)
                & (room_positions.c.device_id == device.device_id)
                & (room_positions.c.room_name == room_members.c.room_name)
            )
            .scalar_subquery()
        )
        created = (
            select(devices.c.created_at_ms)
            .where((devices.c.user_name == device.user) & (devices.c.device_id == device.device_id))
            .scalar_subquery()
        )
        before_device = (
            select(func.max(room_messages.c.room_seq))
            .where(
                (room_messages.c.room_name == room_members.c.room_name)
                & (room_messages.c.sent_at_ms < created)
            )
            .scalar_subquery()
        )
        query = select(
            room_members.c.room_name, room_members.c.joined_room_seq, acked, before_device
        ).where(room_members.c.user_name == device.user)
        async with self._read() as conn:
            return {
                str(room): max(int(joined), int(ack or 0), int(before or 0))
                for room, joined, ack, before in await conn.execute(query)
            }

    async def ack_rooms(self, acks: Sequence[tuple[DeviceRef, str, int]]) -> None:
        """Not durable, like mailbox acks: one lost in a crash of the machine means the room
        messages after the previous position are delivered again, which the client drops by
        room position; every durable commit after it carries it to disk anyway."""
        marks: dict[tuple[DeviceRef, str], int] = {}
        for device, room, seq in acks:
            marks[(device, room)] = max(seq, marks.get((device, room), 0))
        if marks:
            await self._transact(room_log_tx.ack(self.dialect, marks), durable=False)

    async def _transact(self, tx: sql_steps.Tx[T], *, durable: bool = True) -> T:
        """One write transaction of SQL steps (MailboxSql and the SQLite writer provide it)."""
        raise NotImplementedError

    # ---- trimming the logs (room_trim.py) -------------------------------------------------
    async def trim_room_logs(self, batch: int, budget: int) -> int:
        return await self._trimmer.run(
            self._logged_rooms, self._trim_bound, self._trim_batch, batch, budget
        )

    async def _logged_rooms(self, after: str) -> list[str]:
        async with self._read() as conn:
            rows = await conn.exec_driver_sql(
                self.dialect.sql(room_log_tx.LOGGED_ROOMS), (after, self.TRIM_ROOMS_PAGE)
            )
            return [str(name) for (name,) in rows]

    async def _trim_bound(self, room: str) -> int:
        d = self.dialect
        async with self._read() as conn:
            ends: Any = (await conn.exec_driver_sql(d.sql(room_log_tx.HEAD), (room,))).first()
            if ends is None or ends[1] is None:  # no such room, or nothing in its log
                return 0
            rows = await conn.exec_driver_sql(room_log_tx.readers(d), (room,))
            found = [
                Reader(DeviceRef(str(user), int(device_id)), int(floor), int(created))
                for user, device_id, created, floor in map(tuple, rows)
            ]

            async def first_needed(reader: Reader, after: int, upto: int) -> int | None:
                params = (room, after, upto, reader.created_at_ms, reader.device.user,
                          reader.device.device_id)  # fmt: skip
                row = (await conn.exec_driver_sql(d.sql(room_log_tx.FIRST_NEEDED), params)).first()
                return None if row is None else int(row[0])

            return await trim_bound(found, int(ends[0]), first_needed, lowest=int(ends[1]))

    async def _trim_batch(self, room: str, bound: int, limit: int) -> int:
        """One transaction: the lowest ``limit`` rows of the room at or below ``bound``."""
        async with self._write() as conn:
            result = await conn.exec_driver_sql(
                self.dialect.sql(room_log_tx.TRIM), (room, room, bound, limit)
            )
            return len(result.fetchall())
