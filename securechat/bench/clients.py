"""Load-generating clients: securechat devices built on the client library, and a reference client.

A :class:`SecureMember` is the chat client minus the encryption: the client library's channel
factory, :class:`~securechat.client.rpc.api.Api` (register, login, rooms), ChatLink (the
stream: resume, acks, reconnect) and :class:`~securechat.client.rpc.sender.Sender`, the one
send path of every securechat client (pipelined, matched by client message id, resent on
``stale_devices``), with the server's device lists (bench/recipients.py: nothing to verify in
opaque bytes). Each member publishes a minimal real key bundle after login, since only devices
with keys receive. Only the seal differs: instead of encrypting, it puts
the send time (``time.time_ns()``, big-endian) in the first 8 bytes of an opaque random
ciphertext; receivers subtract it from their receive time (same machine, same clock) and hand
it to a Recorder.

Every client has its own channel (its own TCP + mTLS connection), as real clients do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from array import array
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from securechat.bench.recipients import ServerListedRecipients
from securechat.bench.reference import HELLO, METHOD
from securechat.client.bundles import publish_request
from securechat.client.events import ConnectionEvent, Target
from securechat.client.rpc import (
    ACK_EVERY_S,
    ROOM_ACK_EVERY_S,
    Api,
    Backoff,
    ChatLink,
    Endpoint,
    Receipt,
    Seal,
    Sender,
    open_channel,
)
from securechat.crypto.account import Address, CryptoAccount
from securechat.errors import AlreadyExists, NotFound, SecureChatError
from securechat.pki import ClientMaterial
from securechat_proto.v1 import chat_pb2

PASSWORD = "bench password 0123"  # noqa: S105 - throwaway bench accounts
CIPHERTEXT_MIN, CIPHERTEXT_MAX = 200, 400
# Reconnect quickly after an overload ending (RESOURCE_EXHAUSTED): the bench measures how the
# server recovers, not the interactive client's patience.
RECONNECT = Backoff(base_s=0.05, cap_s=1.0)
_POOL = os.urandom(1 << 16)


async def publish_keys(api: Api, user: str, device_id: int) -> None:
    """A minimal real bundle (no one-time keys): the device is a recipient from now on."""
    account = CryptoAccount.create(
        user, device_id, now=int(time.time()), one_time_count=0, kem_one_time_count=0
    )
    await api.publish_bundle(publish_request(account.upload_bundle()))


def ciphertext(now_ns: int) -> bytes:
    """An opaque 'ciphertext' of realistic size whose first 8 bytes are the send time."""
    size = random.randint(CIPHERTEXT_MIN, CIPHERTEXT_MAX) - 8
    offset = random.randrange(len(_POOL) - size)
    return now_ns.to_bytes(8, "big") + _POOL[offset : offset + size]


def opaque_seal(sent_ns: int) -> Seal:
    """The bench's stand-in for encryption: one timestamped opaque ciphertext per device (a
    resend after ``stale_devices`` keeps the first send time)."""

    async def seal(devices: Sequence[Address]) -> Mapping[Address, bytes]:
        return {device: ciphertext(sent_ns) for device in devices}

    return seal


@dataclass(frozen=True)
class Tls:
    """The server address and the client certificate material, loaded once per process."""

    target: str
    material: ClientMaterial

    @classmethod
    def load(cls, port: int, ca: Path, cert: Path, key: Path) -> Tls:
        target = f"localhost:{port}"
        return cls(target, Endpoint(target, ca, cert, key).load())

    def channel(self) -> grpc.aio.Channel:
        """A securechat client's channel (the client library's factory)."""
        return open_channel(self.target, self.material)

    def bare_channel(self) -> grpc.aio.Channel:
        """For the reference server, a bare grpc server: a bare channel (no keepalive, whose
        pings its default policy would refuse), still its own connection."""
        m = self.material
        creds = grpc.ssl_channel_credentials(m.ca_pem, m.key_pem, m.cert_pem)
        options = [("grpc.use_local_subchannel_pool", 1)]
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
    frames_in_window: int = 0  # stream frames (server writes) that carried deliveries
    failed_sends: int = 0  # over the whole run: nothing of them is due to anyone

    def window(self, start_ns: int, end_ns: int) -> None:
        self.start_ns, self.end_ns, self.in_window = start_ns, end_ns, 0
        self.frames_in_window = 0
        self.at_ms, self.latency_ms = array("d"), array("d")

    def add(self, sent_ns: int, now_ns: int) -> None:
        self.received += 1
        self.last_receive_ns = now_ns
        if self.start_ns <= now_ns < self.end_ns:
            self.in_window += 1
            self.at_ms.append((now_ns - self.start_ns) / 1e6)
            self.latency_ms.append((now_ns - sent_ns) / 1e6)

    def send_failed(self, why: str) -> None:
        self.errors[why] += 1
        self.failed_sends += 1

    def frame(self, now_ns: int) -> None:
        """One frame of the stream (one server write) brought deliveries."""
        if self.start_ns <= now_ns < self.end_ns:
            self.frames_in_window += 1


async def pace(
    rate: float, start_ns: int, stop_ns: int, send: object, phase: float | None = None
) -> int:
    """Open-loop sending: call ``send()`` every 1/rate s from start to stop, first at
    ``phase`` (a fraction of the period: members spread evenly get i/n, a burst 0 for all;
    None: a random phase)."""
    period_ns = int(1e9 / rate)
    offset = random.randrange(period_ns) if phase is None else int(phase * period_ns)
    next_ns = start_ns + offset
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
    """One securechat user with one device, a Chat stream and a room: the client library's
    Api, ChatLink and Sender, with opaque ciphertexts."""

    def __init__(
        self,
        tls: Tls,
        user: str,
        room: str,
        recorder: Recorder,
        ack_every_s: float = ACK_EVERY_S,
        room_ack_every_s: float = ROOM_ACK_EVERY_S,
    ) -> None:
        self.tls, self.user, self.room, self.recorder = tls, user, room, recorder
        self.ack_every_s, self.room_ack_every_s = ack_every_s, room_ack_every_s
        self.api = Api(tls.channel())
        self.target = Target.room(room) if room else Target.user(user)
        self.device_id = 0
        self.link: ChatLink | None = None
        self.sender: Sender | None = None
        self.book: ServerListedRecipients | None = None
        self.runner: asyncio.Task[None] | None = None
        self._sent = 0

    def sent_before(self, count: int) -> None:
        """This device already sent ``count`` messages (in an earlier session): its next
        client message id follows them."""
        self._sent = count

    @property
    def reconnects(self) -> int:
        return self.link.reconnects if self.link is not None else 0

    async def register(self) -> None:
        await self.api.register(self.user, PASSWORD)

    async def login(self, device_id: int = 0) -> None:
        """Log in as ``device_id`` (0: a new device, which publishes its keys); the stream and
        the sender are ready to start after it."""
        reply = await self.api.login(self.user, PASSWORD, device_id)
        self.device_id = reply.device_id
        if not device_id:
            await self.publish()
        self.book = ServerListedRecipients(self.api, Address(self.user, self.device_id))
        self.link = ChatLink(
            self.api,
            self.device_id,
            resume_after=0,
            handle=self._handle,
            notify=self._connection,
            ack_every_s=self.ack_every_s,
            room_ack_every_s=self.room_ack_every_s,
            backoff=RECONNECT,
        )
        self.sender = Sender(self.link, self.book)

    async def publish(self) -> None:
        """What a new device publishes: a minimal bundle (a signed room's members: more)."""
        await publish_keys(self.api, self.user, self.device_id)

    def seal(self, sent_ns: int) -> Seal:
        """This member's stand-in for encryption (a legacy room: one ciphertext per device)."""
        return opaque_seal(sent_ns)

    async def enter_room(self) -> None:
        """Join the room, creating it when it does not exist yet (members race for it)."""
        for _ in range(5):
            with contextlib.suppress(NotFound):
                await self.api.join_room(self.room)
                return
            with contextlib.suppress(AlreadyExists):
                await self.api.create_room(self.room)
                return
        raise RuntimeError(f"could not join room {self.room}")

    async def load_recipients(self) -> None:
        """Learn the room's devices before the clock starts (as a client's first send does)."""
        assert self.book is not None
        await self.book.refresh(self.target)

    async def open(self) -> None:
        """Open the Chat stream and wait for `opened`; the link then runs until close."""
        assert self.link is not None, "log in first"
        self.runner = await self.link.start()

    async def _handle(self, events: Sequence[chat_pb2.ServerEvent]) -> int:
        now = time.time_ns()
        recorder = self.recorder
        highest = 0
        deliveries = 0
        for event in events:
            if event.WhichOneof("event") == "delivery":
                delivery = event.delivery
                recorder.add(int.from_bytes(delivery.ciphertext[:8], "big"), now)
                deliveries += 1
                if delivery.room_seq:  # a room message stored once: a position in the room
                    self._position(delivery.conversation.room, delivery.room_seq)
                else:
                    highest = max(highest, delivery.seq)
        if deliveries:
            recorder.frame(now)
        return highest

    def _position(self, room: str, room_seq: int) -> None:
        """Processed up to ``room_seq`` in ``room``: ChatLink acks it (AckRequest.rooms)."""
        assert self.link is not None
        if room_seq > self.link.rooms.get(room, 0):
            self.link.rooms[room] = room_seq

    def _connection(self, event: ConnectionEvent) -> None:
        if event.code == SecureChatError.code:  # no code of ours: grpc's words say what it was
            self.recorder.errors[f"stream_error ({event.detail[:100]})"] += 1
        elif event.code:
            self.recorder.errors[f"stream_{event.code}"] += 1

    async def send_one(self) -> None:
        """Submit one message (open loop: the answer is counted when it comes)."""
        assert self.sender is not None
        now = time.time_ns()
        self._sent += 1
        try:
            answer = await self.sender.submit(self.target, self.seal(now), str(self._sent))
        except SecureChatError as exc:
            self.recorder.send_failed(f"send_{exc.code}")
            return
        answer.add_done_callback(self._answered)

    def _answered(self, answer: asyncio.Future[Receipt]) -> None:
        if answer.cancelled():
            return
        error = answer.exception()
        if error is not None:
            code = error.code if isinstance(error, SecureChatError) else type(error).__name__
            self.recorder.send_failed(f"send_{code}")

    async def close(self) -> None:
        if self.link is not None:
            self.link.stop()
        if self.runner is not None:
            self.runner.cancel()
            with contextlib.suppress(BaseException):
                await self.runner
        await self.api.close()


class ReferenceMember:
    """One client of the reference server: a raw-bytes stream, no account."""

    def __init__(self, tls: Tls, recorder: Recorder) -> None:
        self.recorder = recorder
        self.channel = tls.bare_channel()
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
                now = time.time_ns()
                recorder.add(int.from_bytes(message[:8], "big"), now)
                recorder.frame(now)  # one message per write

    async def send_one(self) -> None:
        assert self.call is not None
        try:
            await self.call.write(ciphertext(time.time_ns()))
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            self.recorder.send_failed("write_failed")

    async def close(self) -> None:
        if self.call is not None:
            self.call.cancel()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(BaseException):
                await self.reader
        await self.channel.close()
