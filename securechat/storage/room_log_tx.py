"""The room message log inside the group commit: each room message of the batch takes the next
position of its room and is written once (one row, one copy of the bytes), whatever the number
of members. Like mailbox_tx.py, a generator of SQL steps (sql_steps.py) that the SQLite writer
thread and the async adapters both run. The statements of the log's trim (room_trim.py) are
here too."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from securechat.domain.model import DeviceRef, PendingSend, RoomEntry
from securechat.storage import rules
from securechat.storage.sql_steps import Dialect, Many, Query, Tx, rows_of

_LOG_COLUMNS = (
    "room_name", "room_seq", "message_id", "sender_user", "sender_device", "ciphertext",
    "sent_at_ms",
)  # fmt: skip
INSERT_ROOM_MESSAGE = (
    f"INSERT INTO room_messages ({', '.join(_LOG_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' for _ in _LOG_COLUMNS)})"
)
RESERVE_ROOM = (
    "UPDATE rooms SET last_room_seq = last_room_seq + ? WHERE name = ? RETURNING last_room_seq"
)


def post(d: Dialect, stored: Sequence[PendingSend]) -> Tx[list[RoomEntry | None]]:
    """Give every stored send's room message its position and write it; per send (in order)
    its RoomEntry or None. NotFound (everything rolls back) for a room that does not exist."""
    counts: dict[str, int] = {}
    for send in stored:
        if send.room_post is not None:
            counts[send.room_post.room] = counts.get(send.room_post.room, 0) + 1
    if not counts:
        return [None] * len(stored)
    next_seq: dict[str, int] = {}
    for room in sorted(counts):  # rooms locked in name order: concurrent commits queue up
        rows = rows_of((yield Query(d.sql(RESERVE_ROOM), (counts[room], room))))
        if not rows:
            raise rules.room_not_found(room)
        next_seq[room] = int(rows[0][0]) - counts[room] + 1
    entries: list[RoomEntry | None] = []
    rows_out: list[tuple[Any, ...]] = []
    for send in stored:
        posted = send.room_post
        if posted is None:
            entries.append(None)
            continue
        seq = next_seq[posted.room]
        next_seq[posted.room] = seq + 1
        entry = RoomEntry(
            posted.room, seq, send.message_id, send.sender, bytes(posted.ciphertext),
            send.sent_at_ms,
        )  # fmt: skip
        entries.append(entry)
        rows_out.append(
            (posted.room, seq, send.message_id, send.sender.user, send.sender.device_id,
             entry.ciphertext, send.sent_at_ms)
        )  # fmt: skip
    yield Many(d.sql(INSERT_ROOM_MESSAGE), rows_out)
    return entries


def expire(d: Dialect, before_ms: int) -> Tx[int]:
    """Delete room messages sent before ``before_ms`` (retention, as for mailbox entries)."""
    rows = yield Query(
        d.sql("DELETE FROM room_messages WHERE sent_at_ms < ? RETURNING 1"), (before_ms,)
    )
    return len(rows_of(rows))


# ---- trimming (room_trim.py): reads, then deletes a prefix of one room's log per transaction --
ACK_POSITION = (
    "INSERT INTO room_positions (user_name, device_id, room_name, acked_seq) "
    "VALUES (?, ?, ?, ?) ON CONFLICT (user_name, device_id, room_name) DO UPDATE SET "
    "acked_seq = {greatest}(room_positions.acked_seq, excluded.acked_seq)"
)


def ack(d: Dialect, marks: dict[tuple[DeviceRef, str], int]) -> Tx[None]:
    """Move each device's acknowledged position in each room up to its mark (never back)."""
    rows = [(dev.user, dev.device_id, room, seq) for (dev, room), seq in sorted(marks.items())]
    if rows:
        yield Many(d.sql(ACK_POSITION.format(greatest=d.greatest)), rows)


LOGGED_ROOMS = (
    "SELECT name FROM rooms WHERE name > ? AND EXISTS "
    "(SELECT 1 FROM room_messages WHERE room_name = rooms.name) ORDER BY name LIMIT ?"
)
HEAD = (
    "SELECT last_room_seq, (SELECT min(room_seq) FROM room_messages WHERE room_name = rooms.name) "
    "FROM rooms WHERE name = ?"
)
FIRST_NEEDED = (
    "SELECT room_seq FROM room_messages WHERE room_name = ? AND room_seq > ? AND room_seq <= ? "
    "AND sent_at_ms >= ? AND NOT (sender_user = ? AND sender_device = ?) "
    "ORDER BY room_seq LIMIT 1"
)
TRIM = (
    "DELETE FROM room_messages WHERE room_name = ? AND room_seq IN (SELECT room_seq FROM "
    "room_messages WHERE room_name = ? AND room_seq <= ? ORDER BY room_seq LIMIT ?) RETURNING 1"
)


def readers(d: Dialect) -> str:
    """Every device of every current member of a room: (user, device, created_at_ms, floor)."""
    return d.sql(
        "SELECT d.user_name, d.device_id, d.created_at_ms, "  # noqa: S608
        f"{d.greatest}(m.joined_room_seq, COALESCE(p.acked_seq, 0)) "
        "FROM room_members m JOIN devices d ON d.user_name = m.user_name "
        "LEFT JOIN room_positions p ON p.user_name = d.user_name "
        "AND p.device_id = d.device_id AND p.room_name = m.room_name "
        "WHERE m.room_name = ?"
    )
