"""Load-generating clients: a securechat device on a real Chat stream, and a reference client.

Every client has its own channel (its own TCP + mTLS connection). Senders put their send time
(``time.time_ns()``, big-endian) in the first 8 bytes of each opaque random ciphertext; receivers
subtract it from their receive time (same machine, same clock) and hand it to a Recorder.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from securechat.bench.reference import HELLO, METHOD
from securechat_proto.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    chat_pb2,
    chat_pb2_grpc,
    common_pb2,
    rooms_pb2,
    rooms_pb2_grpc,
)

PASSWORD = "bench password 0123"  # noqa: S105 - throwaway bench accounts
CIPHERTEXT_MIN, CIPHERTEXT_MAX = 200, 400
ACK_EVERY_S = 0.05
RECONNECT_CODES = {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE}
_POOL = os.urandom(1 << 16)


def ciphertext(now_ns: int) -> bytes:
    """An opaque 'ciphertext' of realistic size whose first 8 bytes are the send time."""
    size = random.randint(CIPHERTEXT_MIN, CIPHERTEXT_MAX) - 8
    offset = random.randrange(len(_POOL) - size)
    return now_ns.to_bytes(8, "big") + _POOL[offset : offset + size]


@dataclass(frozen=True)
class Tls:
    target: str
    ca: bytes
    cert: bytes
    key: bytes

    @classmethod
    def load(cls, port: int, ca: Path, cert: Path, key: Path) -> Tls:
        return cls(f"localhost:{port}", ca.read_bytes(), cert.read_bytes(), key.read_bytes())

    def channel(self) -> grpc.aio.Channel:
        creds = grpc.ssl_channel_credentials(self.ca, self.key, self.cert)
        # A local subchannel pool: every client gets its own connection, as real clients do.
        options = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_receive_message_length", -1)]
        return grpc.aio.secure_channel(self.target, creds, options=options)


@dataclass
class Recorder:
    """Deliveries seen by the clients of one process, with latencies inside a time window."""

    start_ns: int = 0
    end_ns: int = 0
    received: int = 0
    in_window: int = 0
    at_ms: array[float] = field(default_factory=lambda: array("d"))
    latency_ms: array[float] = field(default_factory=lambda: array("d"))
    errors: Counter[str] = field(default_factory=Counter)
    last_receive_ns: int = 0

    def window(self, start_ns: int, end_ns: int) -> None:
        self.start_ns, self.end_ns, self.in_window = start_ns, end_ns, 0
        self.at_ms, self.latency_ms = array("d"), array("d")

    def add(self, sent_ns: int, now_ns: int) -> None:
        self.received += 1
        self.last_receive_ns = now_ns
        if self.start_ns <= now_ns < self.end_ns:
            self.in_window += 1
            self.at_ms.append((now_ns - self.start_ns) / 1e6)
            self.latency_ms.append((now_ns - sent_ns) / 1e6)


async def pace(rate: float, start_ns: int, stop_ns: int, send: object) -> int:
    """Open-loop sending: call ``send()`` every 1/rate s from start to stop (random phase)."""
    period_ns = int(1e9 / rate)
    next_ns = start_ns + random.randrange(period_ns)
    sent = 0
    while next_ns < stop_ns:
        delay = (next_ns - time.time_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        await send()  # type: ignore[operator]
        sent += 1
        next_ns += period_ns
    return sent


class SecureMember:
    """One securechat user with one device, a Chat stream and a room."""

    def __init__(
        self, tls: Tls, user: str, room: str, recorder: Recorder, ack_every_s: float = ACK_EVERY_S
    ) -> None:
        self.tls, self.user, self.room, self.recorder = tls, user, room, recorder
        self.ack_every_ns = int(ack_every_s * 1e9)
        self.channel = tls.channel()
        self.auth = auth_pb2_grpc.AuthServiceStub(self.channel)
        self.rooms = rooms_pb2_grpc.RoomServiceStub(self.channel)
        self.chat = chat_pb2_grpc.ChatServiceStub(self.channel)
        self.token, self.device_id, self.last_seq, self.acked = "", 0, 0, 0
        self.recipients: list[common_pb2.DeviceAddress] = []
        self.call: grpc.aio.StreamStreamCall | None = None
        self.reader: asyncio.Task[None] | None = None
        self.write_lock = asyncio.Lock()
        self.closing = False
        self.reconnects = 0
        self._last_ack_ns = 0
        self._sent = 0

    @property
    def md(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),)

    async def register(self) -> None:
        await self.auth.Register(auth_pb2.RegisterRequest(username=self.user, password=PASSWORD))

    async def login(self) -> None:
        reply = await self.auth.Login(auth_pb2.LoginRequest(username=self.user, password=PASSWORD))
        self.token, self.device_id = reply.token, reply.device_id

    async def enter_room(self) -> None:
        """Join the room, creating it when it does not exist yet (members race for it)."""
        for _ in range(5):
            try:
                await self.rooms.JoinRoom(
                    rooms_pb2.JoinRoomRequest(name=self.room), metadata=self.md
                )
                return
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:
                    raise
            try:
                await self.rooms.CreateRoom(
                    rooms_pb2.CreateRoomRequest(name=self.room), metadata=self.md
                )
                return
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
                    raise
        raise RuntimeError(f"could not join room {self.room}")

    async def load_recipients(self) -> None:
        reply = await self.rooms.ListMembers(
            rooms_pb2.ListMembersRequest(name=self.room), metadata=self.md
        )
        self.recipients = [
            common_pb2.DeviceAddress(user=m.user, device_id=d)
            for m in reply.members
            for d in m.device_ids
            if (m.user, d) != (self.user, self.device_id)
        ]

    async def open(self) -> None:
        """Open the Chat stream and wait for `opened`; a reader task then runs until close."""
        opened = asyncio.get_running_loop().create_future()
        self.reader = asyncio.create_task(self._read_forever(opened))
        await opened

    async def _read_forever(self, opened: asyncio.Future[None]) -> None:
        while not self.closing:
            call = self.chat.Chat(metadata=self.md)
            self.call = call
            try:
                open_frame = chat_pb2.OpenStream(resume_after_seq=self.last_seq)
                await call.write(chat_pb2.ClientFrame(open=open_frame))
                async for frame in call:
                    self._handle(frame, opened)
                return
            except grpc.aio.AioRpcError as exc:
                if self.is_closing():
                    return
                self.recorder.errors[f"stream_{exc.code().name}"] += 1
                if exc.code() not in RECONNECT_CODES:
                    if not opened.done():
                        opened.set_exception(exc)
                    return
                self.reconnects += 1
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                call.cancel()
                raise

    def _handle(self, frame: chat_pb2.ServerFrame, opened: asyncio.Future[None]) -> None:
        now = time.time_ns()
        recorder = self.recorder
        for event in frame.events:
            kind = event.WhichOneof("event")
            if kind == "delivery":
                delivery = event.delivery
                recorder.add(int.from_bytes(delivery.ciphertext[:8], "big"), now)
                self.last_seq = delivery.seq
            elif kind == "send_result":
                if not event.send_result.accepted:
                    recorder.errors[f"send_{event.send_result.error_code}"] += 1
            elif kind == "opened" and not opened.done():
                opened.set_result(None)
        if self.last_seq > self.acked and now - self._last_ack_ns >= self.ack_every_ns:
            self._last_ack_ns = now
            self.acked = self.last_seq
            asyncio.get_running_loop().create_task(
                self._write(chat_pb2.ClientFrame(ack=chat_pb2.AckRequest(seq=self.acked)))
            )

    def is_closing(self) -> bool:
        return self.closing

    async def _write(self, frame: chat_pb2.ClientFrame) -> None:
        async with self.write_lock:
            call = self.call
            if call is None or self.closing:
                return
            try:
                await call.write(frame)
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                self.recorder.errors["write_failed"] += 1

    async def send_one(self) -> None:
        now = time.time_ns()
        self._sent += 1
        request = chat_pb2.SendRequest(
            conversation=common_pb2.Conversation(room=self.room),
            ciphertexts=[
                chat_pb2.RecipientCiphertext(device=device, ciphertext=ciphertext(now))
                for device in self.recipients
            ],
            client_message_id=str(self._sent),
        )
        await self._write(chat_pb2.ClientFrame(send=request))

    async def close(self) -> None:
        self.closing = True
        if self.call is not None:
            self.call.cancel()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(BaseException):
                await self.reader
        await self.channel.close()


class ReferenceMember:
    """One client of the reference server: a raw-bytes stream, no account."""

    def __init__(self, tls: Tls, recorder: Recorder) -> None:
        self.recorder = recorder
        self.channel = tls.channel()
        self.method = self.channel.stream_stream(METHOD)
        self.call: grpc.aio.StreamStreamCall | None = None
        self.reader: asyncio.Task[None] | None = None
        self.reconnects = 0

    async def open(self) -> None:
        self.call = self.method()
        first = await self.call.read()
        if first != HELLO:
            raise RuntimeError("reference server did not greet the stream")
        self.reader = asyncio.create_task(self._read(self.call))

    async def _read(self, call: grpc.aio.StreamStreamCall) -> None:
        recorder = self.recorder
        # read() throughout: a call cannot mix read() and async iteration.
        with contextlib.suppress(grpc.aio.AioRpcError):
            while (message := await call.read()) is not grpc.aio.EOF:
                recorder.add(int.from_bytes(message[:8], "big"), time.time_ns())

    async def send_one(self) -> None:
        assert self.call is not None
        try:
            await self.call.write(ciphertext(time.time_ns()))
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            self.recorder.errors["write_failed"] += 1

    async def close(self) -> None:
        if self.call is not None:
            self.call.cancel()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(BaseException):
                await self.reader
        await self.channel.close()
