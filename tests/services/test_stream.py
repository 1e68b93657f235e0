"""A live stream's queue, cursor and catch-up, without a server."""

from __future__ import annotations

import asyncio
import tracemalloc

import pytest

from securechat.domain.model import (
    Conversation,
    ConversationKind,
    DeviceRef,
    MailboxEntry,
    OutgoingCiphertext,
    PeerCertificate,
    Role,
    RoomEntry,
    Session,
)
from securechat.errors import InvalidArgument, SlowConsumer, Unavailable
from securechat.services.acks import AckBatcher, RoomAckBatcher
from securechat.services.stream import StreamSession
from securechat.services.stream_events import EVENT_OVERHEAD, Closed, Pong, wire_size
from securechat.storage.memory import MemoryStore

BOB = DeviceRef("bob", 1)
SESSION = Session(b"h", "bob", 1, Role.USER, 10**13, 0, "CN=bob")


def entry(seq: int, size: int = 1) -> MailboxEntry:
    room = Conversation(ConversationKind.ROOM, "lobby")
    return MailboxEntry(BOB, seq, f"m{seq}", DeviceRef("alice", 1), room, b"x" * size, 1)


def stream(
    store: MemoryStore, bound: int = 10, max_bytes: int = 1 << 20, batch_bytes: int = 1 << 19
) -> StreamSession:
    return StreamSession(
        SESSION, store, AckBatcher(store), resume_after=0, bound=bound, page=100,
        max_bytes=max_bytes, batch_bytes=batch_bytes, peer="p",
        certificate=PeerCertificate("CN=bob", "bob", "", ""), connected_ms=0,
    )  # fmt: skip


class FailingStore(MemoryStore):
    async def fetch(
        self, device: DeviceRef, after_seq: int, limit: int, max_bytes: int = 0
    ) -> list[MailboxEntry]:
        raise Unavailable("database unreachable")


async def test_a_failing_mailbox_read_ends_the_stream_so_the_client_reconnects() -> None:
    session = stream(FailingStore())
    await session.pump()
    assert isinstance(session.ending, Unavailable)
    assert "reconnect" in session.ending.message


async def test_live_entries_in_order_are_queued_and_a_full_queue_ends_the_stream() -> None:
    session = stream(MemoryStore(), bound=3)
    session.cursor.replaying = False
    for seq in (1, 2, 2, 3):
        session.deliver(entry(seq))
    assert [e.seq for e in session.queue if isinstance(e, MailboxEntry)] == [1, 2, 3]
    session.deliver(entry(4))  # past the bound
    assert isinstance(session.ending, SlowConsumer)
    assert await session.next_batch() is None


async def test_batches_are_split_at_the_byte_budget_and_one_big_entry_always_fits() -> None:
    per = EVENT_OVERHEAD + 1000
    session = stream(MemoryStore(), bound=100, batch_bytes=3 * per)
    session.cursor.replaying = False
    for seq in range(1, 8):
        session.deliver(entry(seq, 1000))
    session.deliver(entry(8, 5000))  # alone over the budget: a batch of its own
    session.deliver(entry(9, 1000))
    sizes = []
    while session.queue:
        batch = await session.next_batch()
        assert batch is not None
        sizes.append([e.seq for e in batch if isinstance(e, MailboxEntry)])
    assert sizes == [[1, 2, 3], [4, 5, 6], [7], [8], [9]]
    assert session.queued_bytes == 0


async def test_a_stream_over_its_byte_bound_ends_as_a_slow_consumer() -> None:
    session = stream(MemoryStore(), bound=1000, max_bytes=10 * (EVENT_OVERHEAD + 1000))
    session.cursor.replaying = False
    for seq in range(1, 11):
        session.deliver(entry(seq, 1000))
    assert session.ending is None
    session.deliver(entry(11, 1000))
    assert isinstance(session.ending, SlowConsumer)


async def test_catch_up_reads_pages_bounded_in_bytes_and_waits_for_the_writer() -> None:
    store = MemoryStore()
    await store.create_user("alice", b"h", Role.USER, 0)
    await store.create_user("bob", b"h", Role.USER, 0)
    await store.add_device("alice", 0)
    await store.add_device("bob", 0)
    room = Conversation(ConversationKind.ROOM, "lobby")
    for n in range(40):
        item = OutgoingCiphertext(BOB, bytes([n]) * 10_000, room)
        await store.enqueue(f"m{n}", DeviceRef("alice", 1), 1, [item])
    session = stream(store, bound=1000, max_bytes=100_000, batch_bytes=40_000)
    pump = asyncio.create_task(session.pump())
    received: list[int] = []
    while len(received) < 40:
        batch = await asyncio.wait_for(session.next_batch(), 10)
        assert batch is not None
        assert sum(wire_size(e) for e in batch) <= 40_000
        assert session.queued_bytes <= 100_000
        received += [e.seq for e in batch if isinstance(e, MailboxEntry)]
    await asyncio.wait_for(pump, 10)
    assert received == list(range(1, 41))
    assert session.ending is None


ALICE = DeviceRef("alice", 1)


def posted(seq: int, sender: DeviceRef = ALICE) -> RoomEntry:
    return RoomEntry("den", seq, f"r{seq}", sender, b"room", 1)


async def test_room_messages_wait_for_the_mailbox_then_follow_in_order() -> None:
    store = MemoryStore()
    session = stream(store, bound=100)
    session.follow_rooms({"den": 0}, RoomAckBatcher(store))
    session.deliver_room(posted(1))  # the mailbox replay has not run: it waits for the pump
    session.deliver_room(RoomEntry("elsewhere", 1, "x", BOB, b"", 1))  # not a room of bob's
    assert not session.queue
    await session.pump()  # empty mailbox, empty room log: nothing to replay
    for seq in (1, 2, 2, 4):
        session.deliver_room(posted(seq))
    session.deliver_room(posted(3, sender=BOB))  # the device's own message: counted, not sent
    rooms = [e.room_seq for e in session.queue if isinstance(e, RoomEntry)]
    assert rooms == [1, 2] and session.rooms["den"].pushed == 3
    with pytest.raises(InvalidArgument, match="not a member"):
        session.ack_room("nowhere", 1)
    with pytest.raises(InvalidArgument, match="only 3 were delivered"):
        session.ack_room("den", 4)
    session.ack_room("den", 3)
    session.leave_room("den")
    session.deliver_room(posted(5))
    assert [e.room_seq for e in session.queue if isinstance(e, RoomEntry)] == [1, 2]
    assert session.followed_rooms() == set()


async def test_a_room_left_while_its_log_is_read_is_dropped() -> None:
    class LeavingStore(MemoryStore):
        async def fetch_room(
            self, room: str, after_room_seq: int, limit: int, max_bytes: int = 0
        ) -> list[RoomEntry]:
            session.leave_room(room)
            return [posted(1)]

    store = LeavingStore()
    session = stream(store)
    session.follow_rooms({"den": 0}, RoomAckBatcher(store))
    await session.pump()
    assert not any(isinstance(e, RoomEntry) for e in session.queue)


IDLE_STREAMS = 200
# An idle stream with its writer waiting held 4.8 KB of Python heap (a deque's 64-slot block,
# an asyncio.Event with its own deque, the finished pump task); now about 2.1 KB.
IDLE_BYTES_MAX = 3072


async def test_an_idle_stream_with_its_writer_waiting_holds_little_memory() -> None:
    store = MemoryStore()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        sessions = [stream(store) for _ in range(IDLE_STREAMS)]
        for session in sessions:
            session.start()
        pumps = [s._pump_task for s in sessions]
        await asyncio.gather(*pumps)
        del pumps
        writers = [asyncio.create_task(s.next_batch()) for s in sessions]
        await asyncio.sleep(0)  # every writer now waits for an event
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert grown / IDLE_STREAMS <= IDLE_BYTES_MAX
    assert not any(w.done() for w in writers)
    sessions[0].notify(Pong(1, 2))  # a waiting writer still wakes for an event
    assert await writers[0] == [Pong(1, 2)]
    for writer in writers[1:]:
        writer.cancel()


async def test_a_writer_that_stops_ends_the_stream_and_a_cancelled_one_does_not() -> None:
    async def fails() -> None:
        raise ConnectionError("gone")

    session = stream(MemoryStore())
    failed = asyncio.create_task(fails())
    failed.add_done_callback(session.writer_stopped)
    with pytest.raises(ConnectionError):
        await failed
    await asyncio.sleep(0)  # the done callback
    assert isinstance(session.ending, Closed)
    assert session.finished.done()

    other = stream(MemoryStore())
    cancelled = asyncio.create_task(asyncio.sleep(10))
    cancelled.add_done_callback(other.writer_stopped)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    await asyncio.sleep(0)
    assert other.ending is None
