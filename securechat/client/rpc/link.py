"""One device's Chat stream, kept open: open or resume, read batches, write frames, reconnect.

:class:`ChatLink` opens ``ChatService.Chat`` with an ``open`` frame that resumes after the
highest sequence the client has processed, hands every batch the server sends to ``handle``
(which returns the highest delivery sequence it processed, now safe to acknowledge) and routes
``send_result`` events to the attached :class:`~securechat.client.rpc.sender.Sender`. Frames
to the server go through one bounded queue that the stream consumes in order, so writing never
blocks and never interleaves.

When the stream ends, sends still waiting for an answer are unconfirmed (the sender writes
them again on the next stream, see rpc/sender.py) and the link reconnects: after the server's
ReconnectHint when it sent one, else after an exponential backoff with jitter, capped at a few
seconds while the outage is young (a restarting server is found again at once) and longer only
after minutes. Fatal endings stop it and are raised from :meth:`ChatLink.run`: a revoked or
expired session, a refused certificate, or another client that took over the device.
Connection changes go to ``notify`` as ConnectionEvents (with the seconds until the next try,
for a countdown); nothing here prints.

Frames are written by one writer task with ``call.write`` (no request generator: grpc closing
a generator that is still waiting for a frame raised "aclose(): asynchronous generator is
already running" into the event loop when the server died).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import grpc

from securechat.client.events import ConnectionEvent
from securechat.client.rpc.api import Api
from securechat.client.rpc.sender import FINAL, ResultSink
from securechat.client.rpc.status import translate
from securechat.errors import ResourceExhausted, SecureChatError, Unavailable
from securechat_proto.v1 import chat_pb2

FATAL = FINAL
WRITE_QUEUE_BOUND = 1024
# Acks go out at most every ACK_EVERY_S (the first after a quiet spell at once), and at once when
# ACK_AFTER deliveries wait unacknowledged. An ack only lets the server delete what this device
# processed; where it resumes is the device's own record (``resume_after``), so an ack lost or
# late costs nothing but rows kept a moment longer. Every ack frame is read, parsed and stored
# by the server: in a 1,000-member room, where each member gets a message every half second,
# acks every 0.5 s cost 1.6x the server CPU per delivery of acks every 2 s. The count bounds
# what one ack deletes: with acks every 2 s alone, a client receiving 100 messages a second
# acked 200 mailbox rows at a time, and those deletes, on the store's one writer, delayed the
# sends' commits (p99 65 ms against 18 ms with ACK_AFTER = 50; docs/performance.md, issue 18).
# Room positions alone wait up to ROOM_ACK_EVERY_S: the server deletes nothing for them (a room
# message is stored once; its log is trimmed when every device is past a row), the device
# resumes from its own positions, and in a big room they were most of the acks (1,000-member
# room: 1.37x the reference's CPU per delivery at 2 s, 1.18x at 10 s). A mailbox ack carries
# the room positions due with it. A clean stop sends the last one.
ACK_EVERY_S = 2.0
ROOM_ACK_EVERY_S = 10.0
ACK_AFTER = 50

Handler = Callable[[Sequence[chat_pb2.ServerEvent]], Awaitable[int]]
"""Processes one batch; returns the highest delivery sequence it processed (0: none)."""


def _ignore(event: ConnectionEvent) -> None:
    return None


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: between half and all of min(cap, base * 2^attempt).

    While the outage is younger than ``brief_s`` the cap is ``brief_cap_s``: a server that
    restarts or crashed and came back is reconnected to within a few seconds."""

    base_s: float = 0.5
    cap_s: float = 30.0
    brief_cap_s: float = 3.0
    brief_s: float = 120.0

    def delay(
        self, attempt: int, rng: Callable[[], float] = random.random, outage_s: float = 0.0
    ) -> float:
        cap = min(self.cap_s, self.brief_cap_s) if outage_s < self.brief_s else self.cap_s
        ceiling = min(cap, self.base_s * float(2 ** min(attempt, 32)))
        return float(ceiling * (0.5 + rng() / 2))


class ChatLink:
    """Keeps one device's Chat stream up; also the stream outlet of a Sender."""

    def __init__(
        self,
        api: Api,
        device_id: int,
        *,
        resume_after: int,
        handle: Handler,
        notify: Callable[[ConnectionEvent], None] = _ignore,
        ack_every_s: float = ACK_EVERY_S,
        room_ack_every_s: float = ROOM_ACK_EVERY_S,
        ack_after: int = ACK_AFTER,
        backoff: Backoff | None = None,
        rooms: dict[str, int] | None = None,
    ) -> None:
        self.api = api
        self.device_id = device_id
        self.resume_after = resume_after
        # Room positions processed (issue 15), kept up to date by ``handle``: resumed and acked.
        self.rooms = rooms if rooms is not None else {}
        self._acked_rooms: dict[str, int] = dict(self.rooms)
        self.handle = handle
        self.notify = notify
        self.ack_every_s = ack_every_s
        self.room_ack_every_s = room_ack_every_s
        self.ack_after = ack_after
        self.backoff = backoff or Backoff()
        self.state = "offline"
        self.reconnects = 0
        self.online = asyncio.Event()
        self._sink: ResultSink | None = None
        self._queue: asyncio.Queue[chat_pb2.ClientFrame | None] | None = None
        self._stopping = asyncio.Event()
        self._hint_ms: int | None = None
        self._opened = False
        self._acked = resume_after
        self._last_ack_at = 0.0
        self._ack_timer: asyncio.TimerHandle | None = None
        self._ever_opened = False  # this certificate and token were accepted once

    # -- the outlet side -------------------------------------------------------------------

    def attach(self, sink: ResultSink) -> None:
        self._sink = sink

    def transmit(self, request: chat_pb2.SendRequest) -> None:
        self.write(chat_pb2.ClientFrame(send=request))

    def check(self) -> None:
        """Unavailable unless the stream is open."""
        if self._queue is None or not self.online.is_set():
            raise Unavailable(
                f"not connected to the server ({self.state}): the message was not sent; "
                "send it again when the connection is back"
            )

    def write(self, frame: chat_pb2.ClientFrame) -> None:
        """Queue one frame on the open stream; Unavailable while there is none."""
        self.check()
        queue = self._queue
        assert queue is not None
        try:
            queue.put_nowait(frame)
        except asyncio.QueueFull:
            raise ResourceExhausted(
                "too many messages are waiting to go out: slow down and send again"
            ) from None

    # -- running ---------------------------------------------------------------------------

    async def start(self) -> asyncio.Task[None]:
        """Run in a task and return it once the stream is open (raising if the run ended)."""
        task = asyncio.get_running_loop().create_task(self.run(), name="chat-link")
        waiter = asyncio.get_running_loop().create_task(self.online.wait())
        try:
            await asyncio.wait((task, waiter), return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if task.done():
            task.result()  # the fatal error, if any
            raise Unavailable("the link stopped before the stream opened")
        return task

    def stop(self) -> None:
        """End the stream (a clean close, after the ack still waiting for its turn) and stop
        reconnecting."""
        self._stopping.set()
        queue = self._queue
        if queue is not None:
            if self._ack_timer is not None:
                self._send_ack()
            self._close_queue(queue)

    async def run(self) -> None:
        """Stay connected until :meth:`stop`; raise only fatal errors."""
        attempt = 0
        loop = asyncio.get_running_loop()
        down_since = loop.time()
        while not self._stopping.is_set():
            self._set_state("connecting" if attempt == 0 and not self.reconnects else
                            "reconnecting")  # fmt: skip
            error: SecureChatError | None = None
            try:
                await self._stream_once()
            except FATAL as exc:
                self._set_state("offline", exc.message, exc.code)
                raise
            except SecureChatError as exc:
                error = exc
            if self._stopping.is_set():
                break
            if self._opened:
                attempt, down_since = 0, loop.time()
            if self._hint_ms is not None:
                delay = self._hint_ms / 1000 + random.random()  # noqa: S311 - jitter
            else:
                delay = self.backoff.delay(attempt, outage_s=loop.time() - down_since)
                attempt += 1
            self.reconnects += 1
            reason = error.message if error is not None else "the server closed the stream"
            code = error.code if error is not None else ""
            self._set_state("reconnecting", reason, code, retry_in_s=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
        self._set_state("offline")

    # -- one stream ------------------------------------------------------------------------

    async def _stream_once(self) -> None:
        queue: asyncio.Queue[chat_pb2.ClientFrame | None] = asyncio.Queue(WRITE_QUEUE_BOUND)
        opening = chat_pb2.OpenStream(device_id=self.device_id, resume_after_seq=self.resume_after)
        for room, room_seq in sorted(self.rooms.items()):
            opening.resume_rooms.add(room=room, room_seq=room_seq)
        queue.put_nowait(chat_pb2.ClientFrame(open=opening))
        self._queue, self._opened, self._hint_ms = queue, False, None
        self._acked = self.resume_after
        self._acked_rooms = dict(self.rooms)
        ending: SecureChatError = Unavailable("the server closed the stream")
        call = self.api.open_chat()
        writer = asyncio.get_running_loop().create_task(
            self._write_frames(call, queue), name="chat-writer"
        )
        try:
            while not self._stopping.is_set():
                frame = await call.read()
                if frame is grpc.aio.EOF:
                    break
                await self._dispatch(frame.events)
        except grpc.aio.AioRpcError as exc:
            ending = translate(exc, certificate_accepted=self._ever_opened)
            raise ending from None
        finally:
            self.online.clear()
            self._queue = None
            if self._ack_timer is not None:
                self._ack_timer.cancel()
                self._ack_timer = None
            self._close_queue(queue)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            call.cancel()
            if self._sink is not None:
                self._sink.disconnected(ending)

    @staticmethod
    async def _write_frames(
        call: grpc.aio.StreamStreamCall, queue: asyncio.Queue[chat_pb2.ClientFrame | None]
    ) -> None:
        """The stream's one writer: frames in queue order, then the end of the requests."""
        try:
            while (frame := await queue.get()) is not None:
                await call.write(frame)
            await call.done_writing()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            return  # the call ended: the reader reports why

    @staticmethod
    def _close_queue(queue: asyncio.Queue[chat_pb2.ClientFrame | None]) -> None:
        """End the request stream (dropping frames not yet written, when it is full)."""
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(None)
            return
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(None)

    async def _dispatch(self, events: Sequence[chat_pb2.ServerEvent]) -> None:
        sink = self._sink
        for event in events:
            kind = event.WhichOneof("event")
            if kind == "send_result":
                if sink is not None:
                    sink.resolve(event.send_result)
            elif kind == "opened":
                self._opened = self._ever_opened = True
                self.online.set()
                pending = event.opened.pending
                self._set_state("online", f"{pending} waiting" if pending else "")
                if sink is not None:
                    sink.reconnected()  # sends whose answer the last stream did not bring
            elif kind == "reconnect":
                self._hint_ms = event.reconnect.retry_after_ms
        highest = await self.handle(events)
        if highest > self.resume_after:
            self.resume_after = highest
            self._ack_due()
        elif self._rooms_due():
            self._ack_due()

    def _rooms_due(self) -> dict[str, int]:
        return {r: n for r, n in self.rooms.items() if n > self._acked_rooms.get(r, 0)}

    # -- acknowledgements ------------------------------------------------------------------

    def _unacked(self) -> int:
        """Deliveries processed since the last ack (mailbox sequences and room positions)."""
        rooms = sum(n - self._acked_rooms.get(r, 0) for r, n in self.rooms.items())
        return self.resume_after - self._acked + rooms

    def _ack_due(self) -> None:
        """Send the ack now, or when its cadence allows: ``ack_every_s`` while mailbox
        deliveries wait, ``room_ack_every_s`` while only room positions do (a waiting timer
        is brought forward when a mailbox delivery joins them)."""
        every = self.ack_every_s if self.resume_after > self._acked else self.room_ack_every_s
        if every <= 0 or self._unacked() >= self.ack_after:
            self._send_ack()
            return
        loop = asyncio.get_running_loop()
        due = self._last_ack_at + every
        if due <= loop.time():
            self._send_ack()
        elif self._ack_timer is None or due < self._ack_timer.when():
            if self._ack_timer is not None:
                self._ack_timer.cancel()
            self._ack_timer = loop.call_at(due, self._send_ack)

    def _send_ack(self) -> None:
        """Send the ack now (a timer still waiting for its turn is cancelled)."""
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        queue, seq, rooms = self._queue, self.resume_after, self._rooms_due()
        if queue is None or (seq <= self._acked and not rooms):
            return
        ack = chat_pb2.AckRequest(seq=max(seq, self._acked))
        for room, room_seq in sorted(rooms.items()):
            ack.rooms.add(room=room, room_seq=room_seq)
        try:
            queue.put_nowait(chat_pb2.ClientFrame(ack=ack))
        except asyncio.QueueFull:
            return  # the next ack covers this one
        self._acked = seq
        self._acked_rooms.update(rooms)
        self._last_ack_at = asyncio.get_running_loop().time()

    def _set_state(
        self, state: str, detail: str = "", code: str = "", *, retry_in_s: float = 0.0
    ) -> None:
        self.state = state
        self.notify(ConnectionEvent(state, detail, code, retry_in_s))
