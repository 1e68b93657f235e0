"""ChatService: the Chat stream (one writer task per stream) and the unary calls."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import grpc

from securechat.config import ChatConfig
from securechat.domain.model import DeviceRef, Role
from securechat.errors import InvalidArgument, ResourceExhausted, SecureChatError, StaleDevices
from securechat.ops.metrics import Metrics
from securechat.services.clock import Clock
from securechat.services.hub import Hub
from securechat.services.messaging import Accepted, Messenger
from securechat.services.stream import Control, StreamSession
from securechat.storage.port import Store
from securechat.transport import convert
from securechat.transport.rpc import Call
from securechat_proto.v1 import chat_pb2

log = logging.getLogger("securechat.chat")

OPEN_TIMEOUT_S = 30.0


def rejection(client_message_id: str, error: SecureChatError) -> chat_pb2.SendResult:
    result = chat_pb2.SendResult(
        client_message_id=client_message_id,
        accepted=False,
        error_code=error.code,
        error_message=error.message,
    )
    if isinstance(error, StaleDevices):
        result.current_devices.extend(
            convert.device_to_proto(DeviceRef(user, device)) for user, device in error.devices
        )
    if isinstance(error, ResourceExhausted) and error.retry_after:
        result.retry_after_s = max(1, round(error.retry_after))
    return result


class ChatServicer:
    def __init__(
        self,
        hub: Hub,
        messenger: Messenger,
        store: Store,
        config: ChatConfig,
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        self.hub = hub
        self.messenger = messenger
        self.store = store
        self.config = config
        self.metrics = metrics
        self.clock = clock

    # ---- sending (shared by Send and the stream) ------------------------------------------
    async def _send(self, request: chat_pb2.SendRequest, call: Call) -> chat_pb2.SendResult:
        started = time.perf_counter()
        conversation = convert.conversation_from_proto(request.conversation)
        items = convert.items_from_proto(request)
        accepted = await self.messenger.send(
            call.device, conversation, items, request.client_message_id
        )
        self.metrics.messages.inc()
        self.metrics.send_latency.observe(time.perf_counter() - started)
        return convert.accepted_to_proto(request.client_message_id, accepted)

    async def Send(self, request: chat_pb2.SendRequest, call: Call) -> chat_pb2.SendResult:
        try:
            return await self._send(request, call)
        except StaleDevices as error:
            return rejection(request.client_message_id, error)

    async def Fetch(self, request: chat_pb2.FetchRequest, call: Call) -> chat_pb2.FetchResponse:
        entries = await self.messenger.fetch(call.device, request.after_seq, request.limit)
        return chat_pb2.FetchResponse(deliveries=[convert.delivery_to_proto(e) for e in entries])

    async def Ack(self, request: chat_pb2.AckRequest, call: Call) -> chat_pb2.AckResponse:
        await self.messenger.ack(call.device, request.seq)
        return chat_pb2.AckResponse()

    async def ListOnline(
        self, request: chat_pb2.ListOnlineRequest, call: Call
    ) -> chat_pb2.ListOnlineResponse:
        assert call.session is not None
        online = await self.hub.bus.online()
        visible: set[str] | None = None
        if call.session.role is not Role.ADMIN:
            visible = await self.store.contacts_of(call.user)
            visible.add(call.user)
        users: dict[str, chat_pb2.OnlineUser] = {}
        for entry in online:
            if visible is not None and entry.device.user not in visible:
                continue
            user = users.setdefault(
                entry.device.user,
                chat_pb2.OnlineUser(user=entry.device.user, since_ms=entry.since_ms),
            )
            user.device_ids.append(entry.device.device_id)
            user.since_ms = min(user.since_ms, entry.since_ms)
        return chat_pb2.ListOnlineResponse(users=[users[name] for name in sorted(users)])

    # ---- the stream -----------------------------------------------------------------------
    async def Chat(self, requests: AsyncIterator[chat_pb2.ClientFrame], call: Call) -> None:
        assert call.session is not None
        try:
            first = await asyncio.wait_for(anext(requests), OPEN_TIMEOUT_S)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise InvalidArgument("open the stream with an `open` frame first") from None
        if first.WhichOneof("frame") != "open":
            raise InvalidArgument("the first frame of a Chat stream must be `open`")
        device = call.device
        if first.open.device_id not in (0, device.device_id):
            raise InvalidArgument(
                f"device {first.open.device_id} does not match this session's device "
                f"{device.device_id}"
            )
        last = await self.store.last_seq(device)
        resume = first.open.resume_after_seq
        if resume > last:
            raise InvalidArgument(
                f"cannot resume after sequence {resume}: only {last} were delivered"
            )
        stream = StreamSession(
            call.session,
            self.store,
            self.messenger.acks,
            resume_after=resume,
            bound=self.config.stream_queue_bound,
            page=self.config.replay_page,
            peer=call.peer,
            cert_subject=call.certificate.subject,
            cert_fingerprint=call.certificate.fingerprint,
            cert_serial=call.certificate.serial_hex,
            connected_ms=self.clock.now_ms(),
        )
        pending = await self.store.pending_count(device, resume)
        stream.notify(
            Control(
                "opened",
                chat_pb2.StreamOpened(
                    device=convert.device_to_proto(device),
                    pending=pending,
                    server_time_ms=self.clock.now_ms(),
                ),
            )
        )
        await self.hub.attach(stream)
        self.metrics.streams.inc()
        loop = asyncio.get_running_loop()
        ttl = max(0.0, (call.session.expires_at_ms - self.clock.now_ms()) / 1000)
        expiry = loop.call_later(
            ttl, stream.end, "UNAUTHENTICATED", "session expired: log in again"
        )
        reader = asyncio.create_task(self._read(requests, call, stream), name="chat-reader")
        stream.start()
        writer = asyncio.create_task(self._write(call.context, stream), name="chat-writer")
        try:
            await self._serve(call.context, stream, writer)
        finally:
            writer.cancel()
            expiry.cancel()
            reader.cancel()
            stream.stop()
            self.metrics.streams.dec()
            await self.hub.detach(stream)

    async def _write(self, context: grpc.aio.ServicerContext, stream: StreamSession) -> None:
        """The stream's one writer: each wake-up drains the whole queue into one frame."""
        while (batch := await stream.next_batch()) is not None:
            await context.write(convert.encode_frame(batch))
            self.metrics.frames.inc()

    async def _serve(
        self,
        context: grpc.aio.ServicerContext,
        stream: StreamSession,
        writer: asyncio.Task[None],
    ) -> None:
        """Wait for the stream to end, then for the writer to finish its current write. Only a
        consumer that fell behind (whose write may be blocked for good) is not waited for:
        interrupting a write that is about to complete confuses grpc's call state."""
        await asyncio.wait((writer, stream.finished), return_when=asyncio.FIRST_COMPLETED)
        ending = stream.ending
        if ending is not None and ending.status == "RESOURCE_EXHAUSTED":
            writer.cancel()
            self.metrics.queue_drops.inc()
        else:
            try:
                await writer  # flushes a reconnect hint on a graceful ending
            except Exception as exc:
                log.debug("chat writer ended: %s", type(exc).__name__)
        if ending is not None and ending.status not in {"OK", "CANCELLED"}:
            await context.abort(getattr(grpc.StatusCode, ending.status), ending.message)

    async def _read(
        self, requests: AsyncIterator[chat_pb2.ClientFrame], call: Call, stream: StreamSession
    ) -> None:
        try:
            async for frame in requests:
                kind = frame.WhichOneof("frame")
                if kind == "send":
                    await self._stream_send(frame.send, call, stream)
                elif kind == "ack":
                    stream.ack(frame.ack.seq)
                elif kind == "ping":
                    pong = chat_pb2.Pong(
                        client_time_ms=frame.ping.client_time_ms, server_time_ms=self.clock.now_ms()
                    )
                    stream.notify(Control("pong", pong))
                elif kind == "open":
                    raise InvalidArgument("the stream is already open: send `open` only once")
                else:
                    raise InvalidArgument("empty frame: set one of open, send, ack or ping")
            stream.end("OK", "client closed the stream")
        except SecureChatError as error:
            stream.end(error.status, error.message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("chat reader ended: %s", type(exc).__name__)
            stream.end("CANCELLED", "connection lost")

    async def _stream_send(
        self, request: chat_pb2.SendRequest, call: Call, stream: StreamSession
    ) -> None:
        """Checks run in order; commits are pipelined (up to MAX_IN_FLIGHT per stream), so a
        client's next send does not wait for the previous one's fsync. Order is kept: sends
        reach the group commit in the order they were checked."""
        started = time.perf_counter()
        client_id = request.client_message_id
        try:
            conversation = convert.conversation_from_proto(request.conversation)
            items = convert.items_from_proto(request)
            pending = await self.messenger.prepare(call.device, conversation, items, client_id)
        except SecureChatError as error:
            stream.notify(Control("send_result", rejection(client_id, error)))
            return
        await stream.in_flight.acquire()
        task = self.messenger.deliver(pending, conversation)

        def finished(task: asyncio.Task[Accepted]) -> None:
            stream.in_flight.release()
            if task.cancelled():
                return
            error = task.exception()
            if error is None:
                self.metrics.messages.inc()
                self.metrics.send_latency.observe(time.perf_counter() - started)
                result = convert.accepted_to_proto(client_id, task.result())
            elif isinstance(error, SecureChatError):
                result = rejection(client_id, error)
            else:
                log.error("send failed: %s", type(error).__name__, exc_info=error)
                result = rejection(client_id, SecureChatError("the server could not store it"))
            stream.notify(Control("send_result", result))

        task.add_done_callback(finished)
