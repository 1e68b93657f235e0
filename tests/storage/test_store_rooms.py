"""Store contract for signed rosters and the stored-once room log (issue 15): every adapter."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy
from sqlalchemy import LargeBinary, func, select

from securechat.domain.mailbox import NO_LIMITS
from securechat.domain.model import (
    Conversation,
    ConversationKind,
    DeviceRef,
    OutgoingCiphertext,
    PendingSend,
    Role,
    RoomPost,
    RosterAppend,
)
from securechat.errors import InvalidArgument, NotFound
from securechat.storage import schema, schema_v1
from securechat.storage.memory import MemoryStore
from securechat.storage.port import Store
from securechat.storage.sqlite import SqliteStore

if TYPE_CHECKING:
    from conftest import Backend

ALICE1, BOB1, CAROL1 = DeviceRef("alice", 1), DeviceRef("bob", 1), DeviceRef("carol", 1)
ROOM = Conversation(ConversationKind.ROOM, "den")


async def _people(store: Store, *names: str) -> None:
    for name in names:
        await store.create_user(name, b"hash", Role.USER, 1_000)
        await store.add_device(name, 1_000)


def _event(seq: int, *, state: bytes = b"state", **change: Any) -> RosterAppend:
    return RosterAppend(
        "den", seq, b"event-%d" % seq, b"hash-%d" % seq, state + b"%d" % seq, 2_000, **change
    )


async def _den(store: Store, *members: str) -> None:
    """Room "den" created by the first member with a roster, the others joined by events."""
    await store.create_room("den", None, members[0], 1_000, roster=_event(0))
    for seq, user in enumerate(members[1:], start=1):
        assert await store.append_roster_event(_event(seq, add=user))


def _post(message_id: str, body: bytes, *items: OutgoingCiphertext, at: int = 3_000) -> PendingSend:
    return PendingSend(message_id, ALICE1, at, items, room_post=RoomPost("den", body))


async def test_a_roster_is_stored_with_its_membership(store: Store) -> None:
    await _people(store, "alice", "bob", "carol")
    await _den(store, "alice", "bob")
    head = await store.roster_head("den")
    assert head is not None
    assert (head.length, head.head, head.state) == (2, b"hash-1", b"state1")
    assert await store.room_members("den") == ["alice", "bob"]
    assert await store.roster_events("den", 0, 10) == [b"event-0", b"event-1"]
    assert await store.roster_events("den", 1, 1) == [b"event-1"]
    assert await store.roster_events("den", 5, 10) == []
    assert await store.roster_head("nowhere") is None
    with pytest.raises(InvalidArgument):
        await store.roster_events("den", 0, 0)


async def test_an_event_for_a_position_taken_changes_nothing(store: Store) -> None:
    await _people(store, "alice", "bob", "carol")
    await _den(store, "alice", "bob")
    assert not await store.append_roster_event(_event(1, add="carol"))
    assert not await store.append_roster_event(_event(3, add="carol"))
    head = await store.roster_head("den")
    assert head is not None and head.length == 2
    assert await store.room_members("den") == ["alice", "bob"]
    assert await store.roster_events("den", 0, 10) == [b"event-0", b"event-1"]


async def test_unknown_room_or_joiner_is_not_found_and_changes_nothing(store: Store) -> None:
    await _people(store, "alice")
    await _den(store, "alice")
    with pytest.raises(NotFound):
        await store.append_roster_event(
            RosterAppend("nowhere", 0, b"e", b"h", b"s", 1, add="alice")
        )
    with pytest.raises(NotFound):
        await store.append_roster_event(_event(1, add="ghost"))
    head = await store.roster_head("den")
    assert head is not None and head.length == 1


async def test_remove_leave_policy_and_a_legacy_create(store: Store) -> None:
    await _people(store, "alice", "bob", "carol")
    await store.create_room("den", b"old-hash", "alice", 1_000)  # before rosters
    await store.add_member("den", "bob", 1_000)
    await store.add_member("den", "carol", 1_000)
    legacy = await store.roster_head("den")
    assert legacy is not None and (legacy.length, legacy.state) == (0, b"")
    # bob signs the CREATE of the legacy room: the members become bob alone
    assert await store.append_roster_event(
        _event(0, only="bob", set_password=True, password_hash=b"new-hash")
    )
    assert await store.room_members("den") == ["bob"]
    room = await store.get_room("den")
    assert room is not None and room.password_hash == b"new-hash"
    assert await store.append_roster_event(_event(1, add="alice"))
    assert await store.append_roster_event(_event(2, remove="alice"))
    assert await store.append_roster_event(_event(3, set_password=True))
    room = await store.get_room("den")
    assert room is not None and room.password_hash is None
    assert await store.room_members("den") == ["bob"]
    assert await store.roster_events("den", 0, 10) == [b"event-%d" % i for i in range(4)]


async def test_a_room_message_is_stored_once_with_its_distributions(store: Store) -> None:
    await _people(store, "alice", "bob", "carol")
    await _den(store, "alice", "bob", "carol")
    distribution = OutgoingCiphertext(BOB1, b"sender-key for bob", ROOM)
    done = await store.commit_sends(
        [_post("m1", b"room-1", distribution), _post("m2", b"room-2")], NO_LIMITS, 0
    )
    assert [d.room_entry.room_seq if d.room_entry else None for d in done] == [1, 2]
    assert [e.ciphertext for e in done[0].entries] == [b"sender-key for bob"]
    assert done[1].entries == []
    page = await store.fetch_room("den", 0, 10)
    assert [(e.room_seq, e.message_id, e.ciphertext, e.sender) for e in page] == [
        (1, "m1", b"room-1", ALICE1),
        (2, "m2", b"room-2", ALICE1),
    ]
    assert await store.fetch_room("den", 1, 10) == page[1:]
    assert await store.last_room_seq("den") == 2
    assert await store.room_message_seq("den", "m2", 3_000) == 2
    assert await store.room_message_seq("den", "m2", 3_001) == 0
    assert await store.room_message_seq("elsewhere", "m2", 3_000) == 0
    assert [e.ciphertext for e in await store.fetch(BOB1, 0, 10)] == [b"sender-key for bob"]
    assert await store.fetch(CAROL1, 0, 10) == []  # no copy per member
    with pytest.raises(NotFound):
        await store.last_room_seq("nowhere")


async def test_a_room_page_is_bounded_in_bytes(store: Store) -> None:
    await _people(store, "alice")
    await _den(store, "alice")
    await store.commit_sends([_post(f"m{i}", bytes(100)) for i in range(5)], NO_LIMITS, 0)
    assert [e.room_seq for e in await store.fetch_room("den", 0, 10, 250)] == [1, 2]
    assert [e.room_seq for e in await store.fetch_room("den", 0, 10, 10)] == [1]
    assert [e.room_seq for e in await store.fetch_room("den", 3, 1)] == [4]
    assert await store.fetch_room("den", 0, 0) == []


async def test_a_post_to_an_unknown_room_stores_nothing(store: Store) -> None:
    await _people(store, "alice", "bob")
    await _den(store, "alice", "bob")
    bad = PendingSend(
        "m1", ALICE1, 1, (OutgoingCiphertext(BOB1, b"d", ROOM),), room_post=RoomPost("x", b"c")
    )
    with pytest.raises(NotFound):
        await store.commit_sends([bad], NO_LIMITS, 0)
    assert await store.fetch(BOB1, 0, 10) == []
    assert await store.last_room_seq("den") == 0


async def test_positions_start_at_the_join_and_never_move_back(store: Store) -> None:
    await _people(store, "alice", "bob", "carol")
    await _den(store, "alice", "bob")
    await store.commit_sends([_post("m1", b"1"), _post("m2", b"2")], NO_LIMITS, 0)
    assert await store.append_roster_event(_event(2, add="carol"))
    assert await store.room_starts(CAROL1) == {"den": 2}  # never the messages before the join
    assert await store.room_starts(BOB1) == {"den": 0}
    await store.ack_rooms([(BOB1, "den", 2), (BOB1, "den", 1)])
    await store.ack_rooms([(BOB1, "den", 1)])
    assert await store.room_starts(BOB1) == {"den": 2}
    assert await store.room_starts(ALICE1) == {"den": 0}
    # leaving forgets the position; the log is not touched
    assert await store.append_roster_event(_event(3, remove="bob"))
    assert await store.room_starts(BOB1) == {}
    assert await store.last_room_seq("den") == 2


async def test_a_member_rejoining_under_a_new_key_keeps_membership_and_position(
    store: Store,
) -> None:
    """A JOIN by a member (a rekeyed rejoin after an account-key reset) is stored as the next
    event; the member stays a member once, with its room position."""
    await _people(store, "alice", "bob")
    await _den(store, "alice", "bob")
    await store.commit_sends([_post("m1", b"1")], NO_LIMITS, 0)
    await store.ack_rooms([(BOB1, "den", 1)])
    assert await store.append_roster_event(_event(2, add="bob"))
    assert await store.room_members("den") == ["alice", "bob"]
    assert await store.room_starts(BOB1) == {"den": 1}
    assert await store.roster_events("den", 2, 1) == [b"event-2"]


async def test_a_removed_device_forgets_its_positions(store: Store) -> None:
    await _people(store, "alice", "bob")
    await _den(store, "alice", "bob")
    await store.commit_sends([_post("m1", b"1")], NO_LIMITS, 0)
    await store.ack_rooms([(BOB1, "den", 1)])
    assert await store.remove_device(BOB1)
    new = DeviceRef("bob", await store.add_device("bob", 5_000))
    assert await store.room_starts(new) == {"den": 1}  # nothing from before the device
    await store.commit_sends([_post("m2", b"2", at=6_000)], NO_LIMITS, 0)
    assert await store.room_starts(new) == {"den": 1}


async def test_room_messages_expire_after_retention(store: Store) -> None:
    await _people(store, "alice")
    await _den(store, "alice")
    await store.commit_sends([_post("old", b"1", at=1_000), _post("new", b"2", at=9_000)],
                             NO_LIMITS, 0)  # fmt: skip
    assert await store.expire_messages(5_000) == 1
    assert [e.message_id for e in await store.fetch_room("den", 0, 10)] == ["new"]
    assert await store.last_room_seq("den") == 2  # positions are never reused


# ---- what one room message costs the store ------------------------------------------------------
async def _footprint(store: Store) -> tuple[int, int]:
    """(rows, bytes of binary columns) over every table of the store."""
    if isinstance(store, MemoryStore):
        logs = store._room_logs.values()
        mailboxes = [state.mailbox for state in store._devices.values()]
        rows = sum(len(log) for log in logs) + sum(len(m) for m in mailboxes)
        size = sum(len(e.ciphertext) for log in logs for e in log.values())
        size += sum(len(e.ciphertext) for m in mailboxes for e in m.values())
        return rows, size
    rows = size = 0
    async with store._read() as conn:  # type: ignore[attr-defined]
        for table in schema.metadata.sorted_tables:
            rows += int(await conn.scalar(select(func.count()).select_from(table)) or 0)
            for column in table.columns:
                if isinstance(column.type, LargeBinary) and table.name != "rooms":
                    total = select(func.coalesce(func.sum(func.length(column)), 0))
                    size += int(await conn.scalar(total) or 0)
    return rows, size


async def _cost_of_one_message(store: Store, prefix: str, members: int) -> tuple[int, int]:
    names = [f"{prefix}{i:04d}" for i in range(members)]
    for name in names:
        await store.create_user(name, b"h", Role.USER, 1)
        await store.add_device(name, 1)
    room = f"{prefix}-room"
    await store.create_room(room, None, names[0], 1)
    for name in names[1:]:
        await store.add_member(room, name, 1)
    before = await _footprint(store)
    send = PendingSend(
        f"{prefix}-m", DeviceRef(names[0], 1), 2, (), room_post=RoomPost(room, bytes(1_000))
    )
    [done] = await store.commit_sends([send], NO_LIMITS, 0)
    assert done.room_entry is not None
    after = await _footprint(store)
    return after[0] - before[0], after[1] - before[1]


async def test_rows_and_bytes_per_room_message_do_not_grow_with_members(
    backend: Backend,
) -> None:
    store = backend.make()
    await store.open()
    try:
        small = await _cost_of_one_message(store, "s", 2)
        big = await _cost_of_one_message(store, "b", 1_000)
    finally:
        await store.close()
    assert small == big == (1, 1_000)


async def test_rooms_of_an_older_database_have_no_roster_and_keep_their_mailboxes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:  # a version-1 database with a room, members and a message
        for table in schema_v1.V1_TABLES:
            table.create(conn)
        schema.schema_version.create(conn)
        conn.execute(schema.schema_version.insert().values(version=1, applied_at_ms=0))
        for statement in (
            "INSERT INTO users (name, password_hash, role, created_at_ms, last_device_id) "
            "VALUES ('alice', x'00', 'user', 1, 1), ('bob', x'00', 'user', 1, 1)",
            "INSERT INTO devices (user_name, device_id, created_at_ms, last_seen_ms, last_seq) "
            "VALUES ('alice', 1, 1, 1, 0), ('bob', 1, 1, 1, 1)",
            "INSERT INTO rooms VALUES ('den', NULL, 'alice', 1)",
            "INSERT INTO room_members VALUES ('den', 'alice', 1), ('den', 'bob', 1)",
            "INSERT INTO mailbox VALUES ('bob', 1, 1, 'm0', 'alice', 1, 'room', 'den', x'ab', 5)",
        ):
            conn.execute(sqlalchemy.text(statement))
    engine.dispose()
    store = SqliteStore(path, synchronous="normal")
    await store.open()
    try:
        assert 5 in store.applied_migrations
        head = await store.roster_head("den")
        assert head is not None and head.length == 0
        room = await store.get_room("den")
        assert room is not None and not room.signed
        assert await store.room_starts(BOB1) == {"den": 0}
        assert [e.ciphertext for e in await store.fetch(BOB1, 0, 10)] == [b"\xab"]
        assert await store.append_roster_event(_event(0, only="alice"))
        room = await store.get_room("den")
        assert room is not None and room.signed
        assert await store.room_members("den") == ["alice"]
        assert [e.ciphertext for e in await store.fetch(BOB1, 0, 10)] == [b"\xab"]
    finally:
        await store.close()
