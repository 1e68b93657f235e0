"""The one send path of every client: pipelined sends, each matched to its SendResult.

The interactive chat, the one-shot ``securechat send`` and the bench's load clients all send
through :class:`Sender`. :meth:`Sender.submit` asks the recipient book which devices the
conversation has, has ``seal`` encrypt the message for exactly those (the bench seals opaque
bytes instead), hands the request to an outlet and returns a future for the server's answer
without waiting for it: many sends are in flight at once, and they leave in ``submit`` order.

Answers are matched by ``client_message_id``. An ``accepted`` one resolves the future with a
:class:`Receipt`. A ``stale_devices`` one hands the server's current device list to the book as
a hint (the book verifies it, says who joined, and refuses devices that do not verify) and seals
and sends the message again, at most MAX_ATTEMPTS times in all. Any other refusal fails the
future with its SecureChatError.

A connection that ends before the answer came leaves the message's fate unknown: it may have
been stored. Such sends are kept and written again, the same request with the same
``client_message_id``, when the outlet is back (:meth:`Sender.reconnected`); the server stores
a client message id once and answers a retry with the first result (``Receipt.duplicate``), so
nothing is stored twice. After MAX_RESENDS such rounds, or when the connection ended for good
(a revoked session, another client took over the device), the future fails with Unavailable.

Outlets: the Chat stream (:class:`~securechat.client.rpc.link.ChatLink`) and, for scripts that
should not open a stream, :class:`UnaryOutlet` (one ``Send`` RPC per attempt, retried with the
same request when the answer was lost).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from securechat.client.events import Event, NoticeEvent, Target
from securechat.client.rpc.api import Api
from securechat.client.rpc.status import result_error
from securechat.crypto.account import Address
from securechat.errors import (
    CertificateError,
    FailedPrecondition,
    InvalidArgument,
    SecureChatError,
    StreamReplaced,
    Unauthenticated,
    Unavailable,
)
from securechat_proto.v1 import chat_pb2

MAX_ATTEMPTS = 4
MAX_RESENDS = 3
# Stream endings after which the device's stream does not come back (the link stops on them);
# after any other (a lost connection, a killed server, a restart) it reconnects.
FINAL = (Unauthenticated, CertificateError, FailedPrecondition, StreamReplaced)
STALE = "stale_devices"
UNARY_RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True)
class Sealed:
    """A room send with sender keys (issue 15): one ``room_message`` for the whole room, plus the
    pairwise distributions of a new chain in ``ciphertexts`` and, when they would not fit one
    request, in the distributions-only sends ``before`` (written first). ``devices``: the
    devices the message is for; ``accepted`` runs once the server accepted the send."""

    ciphertexts: Mapping[Address, bytes]
    room_message: bytes = b""
    before: tuple[Mapping[Address, bytes], ...] = ()
    devices: tuple[Address, ...] = ()
    accepted: Callable[[], None] | None = None


Seal = Callable[[Sequence[Address]], Awaitable[Mapping[Address, bytes] | Sealed]]
"""Encrypts one message for exactly these devices: one ciphertext per device (pairwise), or a
:class:`Sealed` room send."""
Notify = Callable[[Event], None]


@dataclass(frozen=True)
class Receipt:
    """A send the server accepted: stored in the mailbox of every device in ``devices`` but
    those in ``full`` (over the server's mailbox quota: they will not get it). ``duplicate``:
    the server had stored this message already (an earlier try's answer was lost)."""

    client_message_id: str
    message_id: str
    target: Target
    devices: tuple[Address, ...]
    server_time_ms: int
    duplicate: bool = False
    full: tuple[Address, ...] = ()


class Recipients(Protocol):
    """Who a conversation's messages are encrypted for (see client/recipients.py)."""

    async def devices(self, target: Target) -> Sequence[Address]: ...

    async def update(self, target: Target, current: Sequence[Address]) -> list[NoticeEvent]:
        """The server's current list after a stale answer: take it (as far as it verifies)."""
        ...


class ResultSink(Protocol):
    """What an outlet reports back to (the Sender)."""

    def resolve(self, result: chat_pb2.SendResult) -> None: ...

    def fail(self, client_message_id: str, error: SecureChatError) -> None: ...

    def disconnected(self, error: SecureChatError) -> None: ...

    def reconnected(self) -> None: ...


class Outlet(Protocol):
    """Carries send requests to the server and reports every answer to the attached sink."""

    def attach(self, sink: ResultSink) -> None: ...

    def check(self) -> None:
        """Raise Unavailable when a request could not be sent now."""

    def transmit(self, request: chat_pb2.SendRequest) -> None:
        """Queue ``request`` now (raise Unavailable when it cannot be sent)."""


@dataclass(eq=False)
class _Outgoing:
    target: Target
    seal: Seal
    client_message_id: str
    future: asyncio.Future[Receipt]
    devices: tuple[Address, ...] = ()
    attempts: int = 0
    awaiting: bool = False  # written to the outlet, answer not yet in
    request: chat_pb2.SendRequest | None = None  # the last one written
    unconfirmed: bool = False  # its connection ended before the answer: write it again
    resends: int = 0
    parts: tuple[chat_pb2.SendRequest, ...] = ()  # distributions-only sends written before it
    accepted: Callable[[], None] | None = None


class Sender:
    """Pipelined sends over one outlet, each with a future for its result."""

    def __init__(
        self,
        outlet: Outlet,
        recipients: Recipients,
        notify: Notify | None = None,
        *,
        max_attempts: int = MAX_ATTEMPTS,
        max_resends: int = MAX_RESENDS,
    ) -> None:
        self.outlet = outlet
        self.recipients = recipients
        self.notify = notify
        self.max_attempts = max_attempts
        self.max_resends = max_resends
        self._live: dict[str, _Outgoing] = {}
        self._parts: dict[str, str] = {}  # a distributions-only send's id -> its message's id
        self._order = asyncio.Lock()
        self._retries: set[asyncio.Task[None]] = set()
        outlet.attach(self)

    @property
    def in_flight(self) -> int:
        """Sends submitted and not yet settled."""
        return len(self._live)

    async def submit(
        self, target: Target, seal: Seal, client_message_id: str
    ) -> asyncio.Future[Receipt]:
        """Seal and send one message; the future settles with the server's answer.

        Raises at once (nothing sent) when the recipients cannot be listed, sealing fails or
        the outlet is down (Unavailable: the text is not lost, the caller still holds it)."""
        if not client_message_id:
            raise InvalidArgument("a send needs a client message id")
        if client_message_id in self._live:
            raise InvalidArgument(f"message {client_message_id} is already being sent")
        self.outlet.check()  # before asking anyone or sealing anything
        future: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        outgoing = _Outgoing(target, seal, client_message_id, future)
        self._live[client_message_id] = outgoing
        try:
            async with self._order:
                await self._transmit(outgoing)
        except BaseException:
            self._live.pop(client_message_id, None)
            if future.done() and not future.cancelled():
                future.exception()  # closed meanwhile: the caller gets this raise instead
            raise
        return future

    async def send(self, target: Target, seal: Seal, client_message_id: str) -> Receipt:
        """:meth:`submit` and wait for the answer."""
        return await (await self.submit(target, seal, client_message_id))

    async def _transmit(self, outgoing: _Outgoing) -> None:
        devices = tuple(await self.recipients.devices(outgoing.target))
        sealed = await outgoing.seal(devices)
        if not isinstance(sealed, Sealed):
            sealed = Sealed(sealed, devices=tuple(sorted(sealed)))
        outgoing.attempts += 1
        parts = []
        for index, ciphertexts in enumerate(sealed.before):
            part_id = f"{outgoing.client_message_id}.k{outgoing.attempts}.{index}"
            parts.append(self._request(outgoing.target, part_id, ciphertexts))
            self._parts[part_id] = outgoing.client_message_id
        request = self._request(outgoing.target, outgoing.client_message_id, sealed.ciphertexts)
        request.room_message = sealed.room_message
        outgoing.devices = sealed.devices  # a device without keys may be skipped
        outgoing.accepted = sealed.accepted
        outgoing.parts = tuple(parts)
        outgoing.request = request
        for part in parts:
            self.outlet.transmit(part)
        self.outlet.transmit(request)
        outgoing.awaiting = True

    @staticmethod
    def _request(
        target: Target, client_message_id: str, ciphertexts: Mapping[Address, bytes]
    ) -> chat_pb2.SendRequest:
        request = chat_pb2.SendRequest(
            conversation=target.to_proto(), client_message_id=client_message_id
        )
        add = request.ciphertexts.add
        for device, ciphertext in ciphertexts.items():
            item = add(ciphertext=ciphertext)
            item.device.user, item.device.device_id = device.user, device.device_id
        return request

    # -- answers (called by the outlet) ----------------------------------------------------

    def resolve(self, result: chat_pb2.SendResult) -> None:
        parent = self._parts.pop(result.client_message_id, None)
        if parent is not None:  # a distributions-only send: only a refusal matters
            owner = self._live.get(parent)
            if owner is not None and not result.accepted:
                self._settle(owner, result_error(result))
            return
        outgoing = self._live.get(result.client_message_id)
        if outgoing is None or not outgoing.awaiting:
            return  # not ours (or answered twice): nothing waits for it
        outgoing.awaiting = False
        if result.accepted:
            full = tuple(sorted({Address(d.user, d.device_id) for d in result.full_devices}))
            receipt = Receipt(
                outgoing.client_message_id,
                result.message_id,
                outgoing.target,
                outgoing.devices,
                result.server_time_ms,
                result.duplicate,
                full,
            )
            if full and self.notify is not None:
                names = ", ".join(f"{a.user}/{a.device_id}" for a in full)
                self.notify(NoticeEvent(
                    f"{names} did not get your message to {outgoing.target}: "
                    "their mailbox is full"
                ))  # fmt: skip
            if outgoing.accepted is not None:
                outgoing.accepted()
            self._settle(outgoing, receipt)
        elif result.error_code == STALE:
            current = sorted({Address(d.user, d.device_id) for d in result.current_devices})
            if outgoing.attempts >= self.max_attempts:
                self._settle(outgoing, FailedPrecondition(
                    f"the members of {outgoing.target} kept changing: send the message again"
                ))  # fmt: skip
                return
            task = asyncio.get_running_loop().create_task(self._resend(outgoing, current))
            self._retries.add(task)
            task.add_done_callback(self._retries.discard)
        else:
            self._settle(outgoing, result_error(result))

    def fail(self, client_message_id: str, error: SecureChatError) -> None:
        client_message_id = self._parts.pop(client_message_id, client_message_id)
        outgoing = self._live.get(client_message_id)
        if outgoing is not None and outgoing.awaiting:
            self._settle(outgoing, error)

    def disconnected(self, error: SecureChatError) -> None:
        """The outlet lost its connection: every send written to it is unconfirmed. Unless the
        ending was final, they are written again once it is back (:meth:`reconnected`)."""
        lost = Unavailable(
            f"the connection ended before the server confirmed the message ({error.message}): "
            "it may not have been delivered; send it again (with the same id it is stored once)"
        )
        transient = not isinstance(error, FINAL)
        for outgoing in [o for o in self._live.values() if o.awaiting]:
            if transient and outgoing.resends < self.max_resends:
                outgoing.awaiting, outgoing.unconfirmed = False, True
            else:
                self._settle(outgoing, lost)

    def reconnected(self) -> None:
        """The outlet is open again: write every unconfirmed send again, in submission order,
        the very request that was written before (same id, same ciphertexts)."""
        for outgoing in [o for o in self._live.values() if o.unconfirmed]:
            assert outgoing.request is not None
            outgoing.unconfirmed = False
            outgoing.resends += 1
            try:
                for part in outgoing.parts:
                    self._parts[part.client_message_id] = outgoing.client_message_id
                    self.outlet.transmit(part)
                self.outlet.transmit(outgoing.request)
            except SecureChatError as exc:
                self._settle(outgoing, exc)
                continue
            outgoing.awaiting = True

    def close(self) -> None:
        """Stop resending; every unsettled send fails."""
        for task in self._retries:
            task.cancel()
        closing = Unavailable("the client stopped before the server confirmed the message")
        for outgoing in list(self._live.values()):
            self._settle(outgoing, closing)

    async def _resend(self, outgoing: _Outgoing, current: Sequence[Address]) -> None:
        try:
            async with self._order:
                for notice in await self.recipients.update(outgoing.target, current):
                    if self.notify is not None:
                        self.notify(notice)
                await self._transmit(outgoing)
        except Exception as exc:  # the failure belongs to whoever awaits the send
            self._settle(outgoing, exc)

    def _settle(self, outgoing: _Outgoing, outcome: Receipt | BaseException) -> None:
        self._live.pop(outgoing.client_message_id, None)
        for part in outgoing.parts:
            self._parts.pop(part.client_message_id, None)
        outgoing.awaiting = outgoing.unconfirmed = False
        if outgoing.future.done():
            return
        if isinstance(outcome, Receipt):
            outgoing.future.set_result(outcome)
        else:
            outgoing.future.set_exception(outcome)


class UnaryOutlet:
    """One unary ``Send`` per attempt: for scripts, which should not open a Chat stream (no
    presence flicker, no mailbox replay, no replacing the device's live stream). A call that
    fails with Unavailable (the server went away, the answer was lost, it timed out) is made
    again with the same request after each of ``retry_delays_s``: the server stores it once."""

    def __init__(self, api: Api, retry_delays_s: Sequence[float] = UNARY_RETRY_DELAYS_S) -> None:
        self.api = api
        self.retry_delays_s = tuple(retry_delays_s)
        self._sink: ResultSink | None = None
        self._calls: set[asyncio.Task[None]] = set()

    def attach(self, sink: ResultSink) -> None:
        self._sink = sink

    def check(self) -> None:
        return None  # each send makes its own call

    def transmit(self, request: chat_pb2.SendRequest) -> None:
        task = asyncio.get_running_loop().create_task(self._call(request))
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)

    async def _call(self, request: chat_pb2.SendRequest) -> None:
        assert self._sink is not None
        delays = iter(self.retry_delays_s)
        while True:
            try:
                result = await self.api.send(request)
            except Unavailable as exc:
                delay = next(delays, None)
                if delay is None:
                    self._sink.fail(request.client_message_id, exc)
                    return
                await asyncio.sleep(max(delay, exc.retry_after or 0.0))
                continue
            except SecureChatError as exc:
                self._sink.fail(request.client_message_id, exc)
                return
            self._sink.resolve(result)
            return
