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
from collections import deque

from securechat.domain.cursor import DeliveryCursor, Verdict
from securechat.domain.model import DeviceRef, MailboxEntry, PeerCertificate, Session
from securechat.errors import (
    InvalidArgument,
    SessionExpired,
    ShuttingDown,
    SlowConsumer,
    Unavailable,
)
from securechat.services.acks import AckBatcher
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
    thousands of idle clients connected, every one counts (see docs/performance.md)."""

    __slots__ = (
        "_drained", "_expiry", "_fetch_wanted", "_in_flight", "_pump_task", "_wake", "acks",
        "batch_bytes", "bound", "certificate", "connected_ms", "cursor", "device", "ending",
        "finished", "max_bytes", "page", "peer", "queue", "queued_bytes", "session", "store",
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
        self.queue: deque[OutEvent] = deque()
        self.ending: Ending | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._wake = asyncio.Event()
        # Resolved when the stream ends (a bare future: no task waits on an event per stream).
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._in_flight: asyncio.Semaphore | None = None
        self._drained: asyncio.Event | None = None
        self._fetch_wanted = True  # the initial replay
        self._pump_task: asyncio.Task[None] | None = None

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
        if self.ending is None and (self._pump_task is None or self._pump_task.done()):
            self._pump_task = asyncio.get_running_loop().create_task(self.pump(), name="chat-pump")

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
        self._wake.set()

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

    def end(self, ending: Ending) -> None:
        """End the stream (the first ending wins); the transport tells the client."""
        if self.ending is None:
            self.ending = ending
            if not self.finished.done():
                self.finished.set_result(None)
            self._wake.set()
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

    async def _pump(self) -> None:
        while self._fetch_wanted and self.ending is None:
            self._fetch_wanted = False
            while self.ending is None:
                # Flow control: let the writer drain before reading the next page (a page is
                # at most batch_bytes, which fits in half the queue's bytes).
                while self._half_full() and self.ending is None:
                    if self._drained is None:
                        self._drained = asyncio.Event()
                    self._drained.clear()
                    await self._drained.wait()
                entries = await self.store.fetch(
                    self.device, self.cursor.pushed, self.page, self.batch_bytes
                )
                for entry in entries:
                    if self.cursor.advance(entry.seq):
                        self._put(entry)
                if not entries:
                    break
            self.cursor.replaying = False

    def _half_full(self) -> bool:
        return len(self.queue) > self.bound // 2 or self.queued_bytes > self.max_bytes // 2

    # ---- the writer's side ----------------------------------------------------------------
    async def next_batch(self) -> list[OutEvent] | None:
        """Everything queued now, up to ``batch_bytes`` (waiting for at least one event; the
        rest is the next batch); None once the stream ends."""
        while not self.queue:
            if self.ending is not None:
                return None
            self._wake.clear()
            await self._wake.wait()
        if self.ending is not None and not flushes(self.ending):
            return None
        if self.queued_bytes <= self.batch_bytes:  # the usual case: everything, one frame
            batch = list(self.queue)
            self.queue.clear()
            self.queued_bytes = 0
        else:
            batch = self._take(self.batch_bytes)
        if self._drained is not None:
            self._drained.set()
        return batch

    def _take(self, budget: int) -> list[OutEvent]:
        """The oldest events that fit ``budget`` bytes (at least one)."""
        batch: list[OutEvent] = []
        taken = 0
        while self.queue:
            size = wire_size(self.queue[0])
            if batch and taken + size > budget:
                break
            batch.append(self.queue.popleft())
            taken += size
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
