"""One live Chat stream: a bounded outgoing queue, the delivery cursor and mailbox catch-up.

The stream's single writer task (services/chat.py) drains ``next_batch()`` into one frame per
wake-up; this class decides what goes into the queue and how the stream ends. No grpc here.

Everything is bounded in bytes as well as in events: the queue (a stream that holds more than
``max_bytes`` is ended as a slow consumer, like one over ``bound`` events), each batch the writer
takes (``batch_bytes``: the rest waits for the next frame, so one frame never passes the client's
receive limit) and each page of mailbox catch-up.
"""

from __future__ import annotations

import asyncio
import logging

from securechat.domain.cursor import DeliveryCursor, Verdict
from securechat.domain.model import (
    DeviceRef,
    MailboxEntry,
    PeerCertificate,
    RoomEntry,
    Session,
)
from securechat.errors import (
    InvalidArgument,
    SessionExpired,
    ShuttingDown,
    SlowConsumer,
    Unavailable,
)
from securechat.services.acks import AckBatcher, RoomAckBatcher
from securechat.services.stream_events import Closed, Ending, Notification, OutEvent, wire_size
from securechat.storage.port import Store

log = logging.getLogger("securechat.stream")


MAX_IN_FLIGHT = 64


def flushes(ending: Ending) -> bool:
    """Whether the writer still sends what is queued (a graceful ending: the reconnect hint
    before a shutdown, the last results before the client's own close)."""
    return isinstance(ending, Closed | ShuttingDown)


class StreamSession:
    """An idle stream holds no task of its own here and no more objects than it needs: with
    thousands of idle clients connected, every one counts (see docs/performance.md). So the
    queue is a list (an empty deque holds a 64-slot block), the writer waits on a bare future
    made when it waits (no Event with its deque of waiters), and a finished pump task is
    dropped."""

    __slots__ = (
        "_drained", "_expiry", "_fetch_wanted", "_in_flight", "_pump_task", "_rooms_joining",
        "_rooms_wanted", "_waiter", "acks", "batch_bytes", "bound", "certificate", "connected_ms",
        "cursor", "device", "ending", "finished", "max_bytes", "page", "peer", "queue",
        "queued_bytes", "room_acks", "rooms", "session", "store",
    )  # fmt: skip

    def __init__(
        self,
        session: Session,
        store: Store,
        acks: AckBatcher,
        *,
        resume_after: int,
        bound: int,
        page: int,
        max_bytes: int,
        batch_bytes: int,
        peer: str,
        certificate: PeerCertificate,
        connected_ms: int,
    ) -> None:
        self.session = session
        self.device = DeviceRef(session.user, session.device_id)
        self.store = store
        self.acks = acks
        self.bound = bound
        self.page = page
        self.max_bytes = max_bytes
        self.batch_bytes = batch_bytes
        self.queued_bytes = 0
        self.peer = peer
        self.certificate = certificate
        self.connected_ms = connected_ms
        self.cursor = DeliveryCursor(resume_after)
        self.queue: list[OutEvent] = []
        self.ending: Ending | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._waiter: asyncio.Future[None] | None = None  # the writer waiting for events
        # Resolved when the stream ends (a bare future: no task waits on an event per stream).
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._in_flight: asyncio.Semaphore | None = None
        self._drained: asyncio.Event | None = None
        self._fetch_wanted = True  # the initial replay
        self._pump_task: asyncio.Task[None] | None = None
        # Room logs followed: a cursor per room of the user (positions in the room's log).
        self.rooms: dict[str, DeliveryCursor] = {}
        self.room_acks: RoomAckBatcher | None = None
        self._rooms_wanted: set[str] = set()  # rooms to read after their cursor
        self._rooms_joining: set[str] = set()  # joined meanwhile: start from the stored position

    @property
    def in_flight(self) -> asyncio.Semaphore:
        """Sends of this stream committed but not yet answered (bounded: backpressure)."""
        if self._in_flight is None:
            self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
        return self._in_flight

    def start(self) -> None:
        """Replay the mailbox after the resume point (then follow live notifications)."""
        self._want_fetch()

    def expire_after(self, delay_s: float) -> None:
        """End the stream with SessionExpired ``delay_s`` from now (when its session runs out)."""
        self._expiry = asyncio.get_running_loop().call_later(delay_s, self._expire)

    def _expire(self) -> None:
        self.end(SessionExpired())

    def stop(self) -> None:
        """The stream is over: cancel its timer and its mailbox reads."""
        if self._expiry is not None:
            self._expiry.cancel()
        if self._pump_task is not None:
            self._pump_task.cancel()

    def _want_fetch(self) -> None:
        """Read the mailbox after the cursor; a pump task runs only while there is work."""
        self._fetch_wanted = True
        self._start_pump()

    def _want_room(self, room: str) -> None:
        self._rooms_wanted.add(room)
        self._start_pump()

    def _start_pump(self) -> None:
        if self.ending is None and (self._pump_task is None or self._pump_task.done()):
            self._pump_task = asyncio.get_running_loop().create_task(self.pump(), name="chat-pump")

    # ---- rooms ----------------------------------------------------------------------------
    def follow_rooms(self, starts: dict[str, int], room_acks: RoomAckBatcher) -> None:
        """Follow the user's rooms, each after its start position (replayed after the
        mailbox)."""
        self.room_acks = room_acks
        for room, start in starts.items():
            self.rooms[room] = DeliveryCursor(start)
            self._rooms_wanted.add(room)

    def followed_rooms(self) -> set[str]:
        """The rooms whose log this stream follows or is about to."""
        return set(self.rooms) | self._rooms_joining

    def join_room(self, room: str) -> None:
        """The user joined ``room``: follow it from the position stored for the join (the
        log's head then), never earlier."""
        if room not in self.rooms:
            self._rooms_joining.add(room)
            self._start_pump()

    def leave_room(self, room: str) -> None:
        self.rooms.pop(room, None)
        self._rooms_wanted.discard(room)
        self._rooms_joining.discard(room)

    def deliver_room(self, entry: RoomEntry) -> None:
        """A live room message (possibly lost, duplicated or early). While the mailbox is
        behind, it waits for the replay, so the key distributions the same send put in the
        mailbox always arrive first."""
        cursor = self.rooms.get(entry.room)
        if cursor is None:
            return
        if self._fetch_wanted or self.cursor.replaying:
            self._want_room(entry.room)
            return
        verdict = cursor.offer(entry.room_seq)
        if verdict is Verdict.PUSH:
            self._put_room(entry)
        elif verdict is Verdict.GAP:
            self._want_room(entry.room)

    # ---- producers ------------------------------------------------------------------------
    def _put(self, event: OutEvent) -> None:
        if self.ending is not None:
            return
        size = wire_size(event)
        if len(self.queue) >= self.bound or self.queued_bytes + size > self.max_bytes:
            log.info("ending the stream of %s/%d: %d events (%d bytes) waiting for it",
                     self.device.user, self.device.device_id, len(self.queue),
                     self.queued_bytes)  # fmt: skip
            self.end(SlowConsumer())
            return
        self.queue.append(event)
        self.queued_bytes += size
        self._wake()

    def _put_room(self, entry: RoomEntry) -> None:
        """A room message in order; the sending device's own is skipped (its position still
        counts as delivered, so the client may ack past it)."""
        if entry.sender != self.device:
            self._put(entry)

    def deliver(self, entry: MailboxEntry) -> None:
        """A live notification of a stored entry (possibly lost, duplicated or early)."""
        verdict = self.cursor.offer(entry.seq)
        if verdict is Verdict.PUSH:
            self._put(entry)
        elif verdict is Verdict.GAP:
            self._want_fetch()

    def catch_up(self) -> None:
        """Re-read the mailbox: live notifications may have been lost (see events.Resync)."""
        self._want_fetch()

    def notify(self, event: Notification) -> None:
        self._put(event)

    def _wake(self) -> None:
        """Wake the writer when it waits for events."""
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def writer_stopped(self, writer: asyncio.Task[None]) -> None:
        """The writer task is done: unless it was cancelled, the stream is over (when it had
        not ended yet, the write failed: the connection is gone)."""
        if not writer.cancelled():
            self.end(Closed("connection lost"))

    def end(self, ending: Ending) -> None:
        """End the stream (the first ending wins); the transport tells the client."""
        if self.ending is None:
            self.ending = ending
            if not self.finished.done():
                self.finished.set_result(None)
            self._wake()
            if self._drained is not None:
                self._drained.set()

    # ---- mailbox catch-up -----------------------------------------------------------------
    async def pump(self) -> None:
        """Fetch from the mailbox whenever the cursor saw a gap (and once at start: replay).

        If the store fails, the stream ends Unavailable: the client reconnects and resumes from
        its last ack, instead of staying connected to a stream that can no longer catch up."""
        try:
            await self._pump()
        except Exception:
            log.exception("mailbox catch-up failed for %s/%d", self.device.user,
                          self.device.device_id)  # fmt: skip
            self.end(Unavailable("the server could not read your mailbox: reconnect"))
        finally:
            self._pump_task = None  # an idle stream keeps no finished task (and its coroutine)

    async def _pump(self) -> None:
        """The mailbox first, then the rooms one at a time (the mailbox again whenever it fell
        behind meanwhile)."""
        while self.ending is None:
            if self._fetch_wanted:
                self._fetch_wanted = False
                await self._pump_mailbox()
            elif self._rooms_joining:
                await self._start_joined_rooms()
            elif self._rooms_wanted:
                room = min(self._rooms_wanted)
                self._rooms_wanted.discard(room)
                await self._pump_room(room)
            else:
                return

    async def _flow_control(self) -> None:
        """Let the writer drain before reading the next page (a page is at most batch_bytes,
        which fits in half the queue's bytes)."""
        while self._half_full() and self.ending is None:
            if self._drained is None:
                self._drained = asyncio.Event()
            self._drained.clear()
            await self._drained.wait()

    async def _pump_mailbox(self) -> None:
        while self.ending is None:
            await self._flow_control()
            entries = await self.store.fetch(
                self.device, self.cursor.pushed, self.page, self.batch_bytes
            )
            for entry in entries:
                if self.cursor.advance(entry.seq):
                    self._put(entry)
            if not entries:
                break
        self.cursor.replaying = False

    async def _start_joined_rooms(self) -> None:
        starts = await self.store.room_starts(self.device)
        for room in sorted(self._rooms_joining):
            if room in starts and room not in self.rooms:
                self.rooms[room] = DeliveryCursor(starts[room])
                self._rooms_wanted.add(room)
        self._rooms_joining.clear()

    async def _pump_room(self, room: str) -> None:
        while self.ending is None:
            await self._flow_control()
            cursor = self.rooms.get(room)
            if cursor is None or self._fetch_wanted:  # left meanwhile, or the mailbox first
                if cursor is not None:
                    self._rooms_wanted.add(room)
                return
            entries = await self.store.fetch_room(room, cursor.pushed, self.page, self.batch_bytes)
            if self.rooms.get(room) is not cursor:
                return
            for entry in entries:
                if cursor.advance(entry.room_seq):
                    self._put_room(entry)
            if not entries:
                cursor.replaying = False
                return

    def _half_full(self) -> bool:
        return len(self.queue) > self.bound // 2 or self.queued_bytes > self.max_bytes // 2

    # ---- the writer's side ----------------------------------------------------------------
    async def next_batch(self) -> list[OutEvent] | None:
        """Everything queued now, up to ``batch_bytes`` (waiting for at least one event; the
        rest is the next batch); None once the stream ends."""
        while not self.queue:
            if self.ending is not None:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self.ending is not None and not flushes(self.ending):
            return None
        if self.queued_bytes <= self.batch_bytes:  # the usual case: everything, one frame
            batch, self.queue = self.queue, []
            self.queued_bytes = 0
        else:
            batch = self._take(self.batch_bytes)
        if self._drained is not None:
            self._drained.set()
        return batch

    def _take(self, budget: int) -> list[OutEvent]:
        """The oldest events that fit ``budget`` bytes (at least one)."""
        count = taken = 0
        for event in self.queue:
            size = wire_size(event)
            if count and taken + size > budget:
                break
            count += 1
            taken += size
        batch = self.queue[:count]
        del self.queue[:count]
        self.queued_bytes -= taken
        return batch

    # ---- acks -----------------------------------------------------------------------------
    def ack(self, seq: int) -> None:
        """Client acked up to seq; written by the shared AckBatcher with other streams' acks."""
        if not self.cursor.can_ack(seq):
            raise InvalidArgument(
                f"cannot acknowledge sequence {seq}: only {self.cursor.pushed} were delivered"
            )
        if self.cursor.ack(seq):
            self.acks.ack(self.device, seq)

    def ack_room(self, room: str, room_seq: int) -> None:
        """Client processed ``room`` up to ``room_seq``: only a position this stream delivered
        (InvalidArgument otherwise, nothing recorded)."""
        cursor = self.rooms.get(room)
        if cursor is None:
            raise InvalidArgument(f"cannot acknowledge room {room!r}: you are not a member")
        if not cursor.can_ack(room_seq):
            raise InvalidArgument(
                f"cannot acknowledge position {room_seq} of room {room!r}: only "
                f"{cursor.pushed} were delivered"
            )
        if cursor.ack(room_seq) and self.room_acks is not None:
            self.room_acks.ack(self.device, room, room_seq)
