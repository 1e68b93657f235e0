"""Store contract for trimming the stored-once room logs (issue 15): every adapter.

A row goes once no device of a current member can still be delivered it; never one that some
current device has not acked, so resuming from the last ack still delivers everything after it.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from sqlalchemy import select

from securechat.domain.mailbox import NO_LIMITS
from securechat.domain.model import DeviceRef, PendingSend, Role, RoomPost, RosterAppend
from securechat.errors import InvalidArgument
from securechat.storage.memory import MemoryStore
from securechat.storage.port import Store
from securechat.storage.schema import room_positions

ALICE1, BOB1, CAROL1 = DeviceRef("alice", 1), DeviceRef("bob", 1), DeviceRef("carol", 1)
BIG = 1_000_000
_ids = itertools.count(1)


async def _people(store: Store, *names: str) -> None:
    for name in names:
        await store.create_user(name, b"hash", Role.USER, 1_000)
        await store.add_device(name, 1_000)


def _event(seq: int, room: str = "den", **change: Any) -> RosterAppend:
    return RosterAppend(room, seq, b"event-%d" % seq, b"hash-%d" % seq, b"state", 2_000, **change)


async def _room(store: Store, *members: str, room: str = "den") -> None:
    """A signed room created by the first member, the others joined by events."""
    await store.create_room(room, None, members[0], 1_000, roster=_event(0, room))
    for seq, user in enumerate(members[1:], start=1):
        assert await store.append_roster_event(_event(seq, room, add=user))


async def _post(
    store: Store, count: int, sender: DeviceRef = ALICE1, *, room: str = "den", at: int = 3_000
) -> list[int]:
    sends = [
        PendingSend(f"m{next(_ids)}", sender, at, (), room_post=RoomPost(room, b"%d" % i))
        for i in range(count)
    ]
    done = await store.commit_sends(sends, NO_LIMITS, 0)
    return [d.room_entry.room_seq for d in done if d.room_entry is not None]


async def _log(store: Store, room: str = "den", after: int = 0) -> list[int]:
    return [e.room_seq for e in await store.fetch_room(room, after, 1_000)]


async def _delivered(store: Store, device: DeviceRef, room: str = "den") -> list[int]:
    """What a stream opened now delivers to ``device`` (its own messages are skipped)."""
    start = (await store.room_starts(device))[room]
    return [e.room_seq for e in await store.fetch_room(room, start, 1_000) if e.sender != device]


async def _positions(store: Store) -> set[tuple[str, int, str]]:
    if isinstance(store, MemoryStore):
        return {(d.user, d.device_id, room) for d, room in store._room_acks}
    async with store._read() as conn:  # type: ignore[attr-defined]
        rows = await conn.execute(
            select(
                room_positions.c.user_name, room_positions.c.device_id, room_positions.c.room_name
            )
        )
        return {(str(u), int(d), str(r)) for u, d, r in rows}


async def test_rows_every_device_acked_go_and_a_row_one_device_lacks_stays(store: Store) -> None:
    await _people(store, "alice", "bob", "carol")
    await _room(store, "alice", "bob", "carol")
    assert await _post(store, 3) == [1, 2, 3]
    assert await store.trim_room_logs(100, BIG) == 0  # nobody acked anything
    await store.ack_rooms([(BOB1, "den", 3), (CAROL1, "den", 2)])
    assert await store.trim_room_logs(100, BIG) == 2  # alice sent them: she holds nothing
    assert await _log(store) == [3]  # carol has not acked 3
    [third] = await store.fetch_room("den", 0, 10)
    assert await store.room_message_seq("den", third.message_id, third.sent_at_ms) == 3
    assert await store.trim_room_logs(100, BIG) == 0
    await store.ack_rooms([(CAROL1, "den", 3)])
    assert await store.trim_room_logs(100, BIG) == 1
    assert await _log(store) == []
    assert await store.last_room_seq("den") == 3  # positions are never reused
    assert await store.room_message_seq("den", third.message_id, third.sent_at_ms) == 0
    assert await _post(store, 1) == [4]
    assert await _delivered(store, BOB1) == [4] and await _delivered(store, CAROL1) == [4]


async def test_the_senders_own_messages_never_hold_the_log_back(store: Store) -> None:
    await _people(store, "alice", "bob")
    await _room(store, "alice", "bob")
    await _post(store, 2)  # 1, 2 by alice: never delivered to alice's device, never acked
    await store.ack_rooms([(BOB1, "den", 2)])
    assert await store.trim_room_logs(100, BIG) == 2
    assert await _post(store, 1, BOB1) == [3]  # bob's own: bob needs no ack of it
    assert await _post(store, 1, ALICE1) == [4]  # alice's: bob (at 2) still needs it
    assert await store.trim_room_logs(100, BIG) == 0  # alice needs 3
    await store.ack_rooms([(ALICE1, "den", 3)])
    assert await store.trim_room_logs(100, BIG) == 1
    assert await _log(store) == [4]
    assert await _delivered(store, BOB1) == [4]
    assert await _delivered(store, ALICE1) == []


async def test_a_late_joiner_or_a_device_linked_later_holds_no_older_row(store: Store) -> None:
    await _people(store, "alice", "bob", "carol")
    await _room(store, "alice", "bob")
    await _post(store, 2, at=3_000)
    assert await store.append_roster_event(_event(2, add="carol"))  # joins at the head, 2
    bob2 = DeviceRef("bob", await store.add_device("bob", 5_000))  # linked after 1 and 2
    await store.ack_rooms([(BOB1, "den", 2)])
    assert await store.trim_room_logs(100, BIG) == 2  # neither carol nor bob2 acked anything
    assert await _post(store, 1, at=6_000) == [3]
    assert await store.trim_room_logs(100, BIG) == 0  # both of them need 3
    assert await _delivered(store, CAROL1) == [3]
    assert await _delivered(store, bob2) == [3]
    await store.ack_rooms([(BOB1, "den", 3), (CAROL1, "den", 3)])
    assert await store.trim_room_logs(100, BIG) == 0  # bob2 still needs 3
    await store.ack_rooms([(bob2, "den", 3)])
    assert await store.trim_room_logs(100, BIG) == 1


async def test_removed_members_and_devices_hold_nothing_back(store: Store) -> None:
    await _people(store, "alice", "bob", "carol", "dave")
    await _room(store, "alice", "bob", "carol")
    await store.add_member("den", "dave", 1_500)  # the legacy API: dave starts at the head, 0
    bob2 = DeviceRef("bob", await store.add_device("bob", 1_500))
    await _post(store, 3)
    await store.ack_rooms([(BOB1, "den", 3), (CAROL1, "den", 1), (DeviceRef("dave", 1), "den", 2)])
    assert await store.trim_room_logs(100, BIG) == 0  # bob2 acked nothing
    assert await store.remove_device(bob2)
    assert await store.trim_room_logs(100, BIG) == 1  # carol is at 1
    assert await store.append_roster_event(_event(3, remove="carol"))
    assert await store.trim_room_logs(100, BIG) == 1  # dave is at 2
    assert await store.remove_member("den", "dave")
    assert await store.trim_room_logs(100, BIG) == 1
    assert await _log(store) == []


async def test_removing_a_member_forgets_their_positions(store: Store) -> None:
    await _people(store, "alice", "bob", "carol")
    await _room(store, "alice", "bob")
    await store.add_member("den", "carol", 1_500)
    await _post(store, 2)
    await store.ack_rooms([(BOB1, "den", 2), (CAROL1, "den", 1), (ALICE1, "den", 1)])
    assert ("carol", 1, "den") in await _positions(store)
    assert await store.remove_member("den", "carol")
    assert not await store.remove_member("den", "carol")
    assert await _positions(store) == {("alice", 1, "den"), ("bob", 1, "den")}
    assert await store.room_starts(CAROL1) == {}
    assert await store.append_roster_event(_event(2, remove="bob"))  # the signed way too
    assert await _positions(store) == {("alice", 1, "den")}


async def test_a_call_is_bounded_by_its_batch_and_its_budget(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _people(store, "alice", "bob")
    for room in ("a-room", "b-room"):
        await _room(store, "alice", "bob", room=room)
        await _post(store, 10, room=room)
        await store.ack_rooms([(BOB1, room, 10)])
    transactions: list[int] = []
    trim_batch = store._trim_batch  # type: ignore[attr-defined]

    async def recorded(room: str, bound: int, limit: int) -> int:
        done: int = await trim_batch(room, bound, limit)
        transactions.append(done)
        return done

    monkeypatch.setattr(store, "_trim_batch", recorded)
    assert await store.trim_room_logs(3, 7) == 7
    assert await _log(store, "a-room") == [8, 9, 10]
    assert await _log(store, "b-room") == list(range(1, 11))
    assert await store.trim_room_logs(3, 7) == 7  # on from where the last call stopped
    assert await _log(store, "a-room") == []
    assert await _log(store, "b-room") == [5, 6, 7, 8, 9, 10]
    assert await store.trim_room_logs(3, 7) == 6
    assert await store.trim_room_logs(3, 7) == 0
    assert transactions and max(transactions) <= 3
    assert sum(transactions) == 20


@pytest.mark.parametrize(("batch", "budget"), [(0, 10), (10, 0), (-1, -1)])
async def test_a_batch_or_budget_below_one_is_refused(
    store: Store, batch: int, budget: int
) -> None:
    await _people(store, "alice")
    await _room(store, "alice")
    await _post(store, 2)
    await store.ack_rooms([(ALICE1, "den", 2)])
    with pytest.raises(InvalidArgument, match="at least 1"):
        await store.trim_room_logs(batch, budget)
    assert await _log(store) == [1, 2]


async def test_resuming_from_the_last_ack_after_a_trim_delivers_everything_unacked(
    store: Store,
) -> None:
    await _people(store, "alice", "bob", "carol")
    await _room(store, "alice", "bob", "carol")
    await _post(store, 6)
    await store.ack_rooms([(BOB1, "den", 4), (CAROL1, "den", 2)])
    assert await store.trim_room_logs(1, BIG) == 2
    assert await _log(store) == [3, 4, 5, 6]
    assert await _delivered(store, BOB1) == [5, 6]
    assert await _delivered(store, CAROL1) == [3, 4, 5, 6]
    assert [e.room_seq for e in await store.fetch_room("den", 3, 10)] == [4, 5, 6]  # resume_rooms
    await store.ack_rooms([(CAROL1, "den", 5)])
    assert await store.trim_room_logs(1, BIG) == 2
    assert await _delivered(store, BOB1) == [5, 6]  # bob resumes after 4: 5 and 6 are there
    assert await _delivered(store, CAROL1) == [6]
