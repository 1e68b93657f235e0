"""The Chat use cases: open or resume a stream, run it (pipelined sends, acks, pings, one writer)
until it ends, and the unary Send, Fetch, Ack and ListOnline.

The transport hands over the client's frames with a :class:`FrameCodec` (how to read the `open`
frame, dispatch the others and encode a batch) and a function that writes bytes; everything a
stream decides happens here. A stream that the server ends raises its ending, a
:class:`~securechat.errors.SecureChatError`, out of :meth:`ChatService.serve`, so the transport
sends every ending the way it sends any other error: status, message and trailers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from securechat.bus.port import Bus
from securechat.config import ChatConfig
from securechat.domain.model import (
    Conversation,
    DeviceRef,
    MailboxEntry,
    PeerCertificate,
    Role,
    RoomEntry,
    Session,
)
from securechat.errors import InvalidArgument, SecureChatError, SlowConsumer, StaleDevices
from securechat.services.acks import LastSeen
from securechat.services.clock import Clock
from securechat.services.hub import Hub
from securechat.services.messaging import Accepted, Messenger
from securechat.services.stream import StreamSession
from securechat.services.stream_events import (
    EVENT_OVERHEAD,
    Closed,
    Ending,
    Opened,
    OutEvent,
    Pong,
    SendAccepted,
    SendRejected,
)
from securechat.storage.port import Store

log = logging.getLogger("securechat.chat")

OPEN_TIMEOUT_S = 30.0
Frame = TypeVar("Frame")
Frame_contra = TypeVar("Frame_contra", contravariant=True)
Items = Sequence[tuple[DeviceRef, bytes]]


class FrameCodec(Protocol[Frame_contra]):
    """The transport's side of a stream (transport/chat_servicer.py implements it)."""

    def opening(self, frame: Frame_contra) -> tuple[int, int, dict[str, int]]:
        """``(device_id, resume_after_seq, resume_rooms)`` of the first frame; InvalidArgument
        if not `open`."""
        ...

    def handle(self, stream: StreamSession, frame: Frame_contra) -> Awaitable[None] | None:
        """Pass one later frame to the service; an awaitable only when it must be waited for
        (a send), so acks and pings cost no coroutine."""
        ...

    def encode(self, batch: list[OutEvent]) -> bytes:
        """One server frame for everything the writer drained."""
        ...


class ChatObserver(Protocol):
    """What the Chat streams count (ops/metrics.py implements it; services import no prometheus)."""

    def stream_opened(self) -> None: ...

    def stream_closed(self, ending: Ending | None) -> None: ...

    def frame_written(self) -> None: ...

    def send_accepted(self, seconds: float) -> None: ...


@dataclass(frozen=True, slots=True)
class OnlineUser:
    user: str
    since_ms: int
    device_ids: tuple[int, ...]


def required(conversation: Conversation | None) -> Conversation:
    if conversation is None:
        raise InvalidArgument("the send names no conversation: set conversation.room or .user")
    return conversation


def accepted_event(client_message_id: str, accepted: Accepted) -> SendAccepted:
    return SendAccepted(
        client_message_id,
        accepted.message_id,
        accepted.server_time_ms,
        accepted.duplicate,
        accepted.full,
        accepted.room_seq,
    )


class ChatService:
    def __init__(
        self,
        hub: Hub,
        messenger: Messenger,
        store: Store,
        bus: Bus,
        last_seen: LastSeen,
        config: ChatConfig,
        clock: Clock,
        observer: ChatObserver,
    ) -> None:
        self.hub = hub
        self.messenger = messenger
        self.store = store
        self.bus = bus
        self.last_seen = last_seen
        self.config = config
        self.clock = clock
        self.observer = observer

    # ---- the stream -----------------------------------------------------------------------
    async def serve(
        self,
        session: Session,
        peer: str,
        certificate: PeerCertificate,
        frames: AsyncIterator[Frame],
        codec: FrameCodec[Frame],
        write: Callable[[bytes], Awaitable[object]],
    ) -> None:
        """Run one Chat stream to its end. Returns when it ended gracefully (the client closed
        it); raises its ending (a SecureChatError) when the server ended it."""
        try:
            first = await asyncio.wait_for(anext(frames), OPEN_TIMEOUT_S)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise InvalidArgument("open the stream with an `open` frame first") from None
        device_id, resume_after, resume_rooms = codec.opening(first)
        stream = await self.open(session, device_id, resume_after, peer, certificate, resume_rooms)
        self.observer.stream_opened()
        reader = asyncio.create_task(self._read(frames, codec, stream), name="chat-reader")
        writer = asyncio.create_task(self._write(stream, codec, write), name="chat-writer")
        try:
            await self._until_ended(stream, writer)
        finally:
            writer.cancel()
            reader.cancel()
            self.observer.stream_closed(stream.ending)
            await self.close(stream)
        if isinstance(stream.ending, SecureChatError):
            raise stream.ending
        if stream.ending is not None:
            log.debug("stream of %s/%d closed: %s", stream.device.user, stream.device.device_id,
                      stream.ending.reason)  # fmt: skip

    async def open(
        self,
        session: Session,
        device_id: int,
        resume_after: int,
        peer: str,
        certificate: PeerCertificate,
        resume_rooms: dict[str, int] | None = None,
    ) -> StreamSession:
        """Check the `open` frame, attach the stream to the hub and start its replay: the
        mailbox after ``resume_after``, then each of the user's rooms after the higher of
        ``resume_rooms`` and the device's stored position."""
        device = DeviceRef(session.user, session.device_id)
        if device_id not in (0, device.device_id):
            raise InvalidArgument(
                f"device {device_id} does not match this session's device {device.device_id}"
            )
        last = await self.store.last_seq(device)
        if resume_after > last:
            raise InvalidArgument(
                f"cannot resume after sequence {resume_after}: only {last} were delivered"
            )
        starts = await self._room_starts(device, resume_rooms or {})
        now_ms = self.clock.now_ms()
        self.last_seen.seen(device, now_ms)
        stream = StreamSession(
            session,
            self.store,
            self.messenger.acks,
            resume_after=resume_after,
            bound=self.config.stream_queue_bound,
            page=self.config.replay_page,
            max_bytes=self.config.stream_queue_max_bytes,
            batch_bytes=self.config.max_batch_bytes,
            peer=peer,
            certificate=certificate,
            connected_ms=now_ms,
        )
        stream.follow_rooms(starts, self.messenger.room_acks)
        pending = await self.store.pending_count(device, resume_after)
        stream.notify(Opened(device, pending, self.clock.now_ms()))
        await self.hub.attach(stream)
        stream.expire_after(max(0.0, (session.expires_at_ms - self.clock.now_ms()) / 1000))
        stream.start()
        return stream

    async def _room_starts(self, device: DeviceRef, resume: dict[str, int]) -> dict[str, int]:
        """Where each room's replay starts; a resume position beyond a room's log is refused
        (rooms the user is not in are ignored: it may have left meanwhile)."""
        starts = await self.store.room_starts(device)
        for room, position in resume.items():
            if room not in starts:
                continue
            last = await self.store.last_room_seq(room)
            if position > last:
                raise InvalidArgument(
                    f"cannot resume room {room!r} after position {position}: only {last} "
                    "were delivered"
                )
            starts[room] = max(starts[room], position)
        return starts

    async def close(self, stream: StreamSession) -> None:
        stream.stop()
        self.last_seen.seen(stream.device, self.clock.now_ms())
        await self.hub.detach(stream)

    async def _write(
        self,
        stream: StreamSession,
        codec: FrameCodec[Frame],
        write: Callable[[bytes], Awaitable[object]],
    ) -> None:
        """The stream's one writer: each wake-up drains the whole queue into one frame."""
        while (batch := await stream.next_batch()) is not None:
            await write(codec.encode(batch))
            self.observer.frame_written()

    async def _until_ended(self, stream: StreamSession, writer: asyncio.Task[None]) -> None:
        """Wait for the stream to end, then for the writer to finish its current write. Only a
        consumer that fell behind (whose write may be blocked for good) is not waited for:
        interrupting a write that is about to complete confuses grpc's call state.

        A writer that stops ends the stream, so waiting for the ending is enough (no
        ``asyncio.wait`` and its set, future and callbacks held by every idle stream)."""
        writer.add_done_callback(stream.writer_stopped)
        await stream.finished
        if isinstance(stream.ending, SlowConsumer):
            writer.cancel()
            # Let the cancelled write unwind before the ending is sent: cancel() only schedules
            # it, and a status started while grpc still holds the write fails
            # (GRPC_CALL_ERROR_TOO_MANY_OPERATIONS), leaving the call open for good.
            await asyncio.wait({writer})
        else:
            try:
                await writer  # flushes a reconnect hint on a graceful ending
            except Exception as exc:
                log.debug("chat writer ended: %s", type(exc).__name__)
        if stream.ending is None:  # the writer failed: the connection is gone
            stream.end(Closed("connection lost"))

    async def _read(
        self, frames: AsyncIterator[Frame], codec: FrameCodec[Frame], stream: StreamSession
    ) -> None:
        try:
            async for frame in frames:
                pending = codec.handle(stream, frame)
                if pending is not None:
                    await pending
            stream.end(Closed("client closed the stream"))
        except SecureChatError as error:
            stream.end(error)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("chat reader ended: %s", type(exc).__name__)
            stream.end(Closed("connection lost"))

    async def send_on(
        self,
        stream: StreamSession,
        conversation: Conversation | None,
        items: Items,
        client_message_id: str,
        room_message: bytes = b"",
    ) -> None:
        """A send on the stream. Checks run in order; commits are pipelined (up to
        MAX_IN_FLIGHT per stream), so a client's next send does not wait for the previous one's
        fsync. Order is kept: sends reach the group commit in the order they were checked.
        The answer (SendAccepted or SendRejected) is queued on the stream."""
        started = time.perf_counter()
        try:
            checked = required(conversation)
            pending = await self.messenger.prepare(
                stream.device, checked, items, client_message_id, room_message
            )
        except SecureChatError as error:
            stream.notify(SendRejected(client_message_id, error))
            return
        await stream.in_flight.acquire()
        task = self.messenger.deliver(pending, checked)

        def finished(task: asyncio.Task[Accepted]) -> None:
            stream.in_flight.release()
            if task.cancelled():
                return
            error = task.exception()
            if error is None:
                self.observer.send_accepted(time.perf_counter() - started)
                stream.notify(accepted_event(client_message_id, task.result()))
                return
            if not isinstance(error, SecureChatError):
                log.error("send failed: %s", type(error).__name__, exc_info=error)
                error = SecureChatError("the server could not store it")
            stream.notify(SendRejected(client_message_id, error))

        task.add_done_callback(finished)

    def ack_on(
        self, stream: StreamSession, seq: int, rooms: Sequence[tuple[str, int]] = ()
    ) -> None:
        stream.ack(seq)
        for room, room_seq in rooms:
            stream.ack_room(room, room_seq)

    def ping(self, stream: StreamSession, client_time_ms: int) -> None:
        stream.notify(Pong(client_time_ms, self.clock.now_ms()))

    # ---- unary calls ----------------------------------------------------------------------
    async def send(
        self,
        sender: DeviceRef,
        conversation: Conversation | None,
        items: Items,
        client_message_id: str,
        room_message: bytes = b"",
    ) -> SendAccepted | SendRejected:
        """The unary Send: a stale device list is an answer (with the current list), any
        other refusal an error."""
        started = time.perf_counter()
        checked = required(conversation)
        try:
            accepted = await self.messenger.send(
                sender, checked, items, client_message_id, room_message
            )
        except StaleDevices as error:
            return SendRejected(client_message_id, error)
        self.observer.send_accepted(time.perf_counter() - started)
        return accepted_event(client_message_id, accepted)

    async def fetch(
        self, device: DeviceRef, after_seq: int, limit: int
    ) -> list[MailboxEntry | RoomEntry]:
        """The mailbox after ``after_seq``; when that page is not full, room messages after the
        device's acked room positions fill the rest of it."""
        entries: list[MailboxEntry | RoomEntry] = []
        entries += await self.messenger.fetch(device, after_seq, limit)
        wanted = (limit or 100) - len(entries)
        budget = self.config.max_batch_bytes - sum(
            len(entry.ciphertext) + EVENT_OVERHEAD for entry in entries
        )
        if wanted > 0 and budget > 0:
            entries += await self.messenger.fetch_rooms(device, wanted, budget)
        return entries

    async def ack(self, device: DeviceRef, seq: int, rooms: Sequence[tuple[str, int]] = ()) -> None:
        await self.messenger.ack(device, seq, rooms)

    async def online(self, session: Session) -> list[OnlineUser]:
        """Who is online: an admin sees everyone, a user their contacts and themselves."""
        visible: set[str] | None = None
        if session.role is not Role.ADMIN:
            visible = await self.store.contacts_of(session.user)
            visible.add(session.user)
        since: dict[str, int] = {}
        devices: dict[str, list[int]] = {}
        for entry in await self.bus.online():
            user = entry.device.user
            if visible is not None and user not in visible:
                continue
            since[user] = min(since.get(user, entry.since_ms), entry.since_ms)
            devices.setdefault(user, []).append(entry.device.device_id)
        return [OnlineUser(u, since[u], tuple(devices[u])) for u in sorted(devices)]
