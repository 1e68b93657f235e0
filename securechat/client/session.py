"""The live Chat stream: open or resume from the last ack, decrypt, ack, reconnect with backoff.

One :class:`ChatSession` per running client. :meth:`run` keeps the stream up until
:meth:`stop` (or a fatal error: a revoked session, a certificate the server refuses, another
client that took over the device). Between attempts it waits an exponential backoff with jitter,
or what the server's ReconnectHint asked for. Every event goes to ``notify``; nothing here
prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable, Iterable

from securechat.client.api import Api
from securechat.client.events import (
    ConnectionEvent,
    Event,
    MembershipEvent,
    NoticeEvent,
    PresenceEvent,
    Target,
)
from securechat.client.messenger import Messenger, SentMessage
from securechat.client.upkeep import maintain
from securechat.client.vault import Vault
from securechat.errors import (
    CertificateError,
    FailedPrecondition,
    SecureChatError,
    Unauthenticated,
)
from securechat_proto.v1 import chat_pb2

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
FATAL = (Unauthenticated, CertificateError, FailedPrecondition)
MEMBERSHIP_KINDS = {
    chat_pb2.MembershipChange.JOINED: "joined",
    chat_pb2.MembershipChange.LEFT: "left",
    chat_pb2.MembershipChange.DEVICE_ADDED: "device_added",
    chat_pb2.MembershipChange.IDENTITY_CHANGED: "identity_changed",
}


def backoff_delay(attempt: int, rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff with jitter: between half and all of min(cap, base * 2^attempt)."""
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * float(2 ** min(attempt, 32)))
    return float(ceiling * (0.5 + rng() / 2))


class ChatSession:
    """Keeps one device's Chat stream alive and turns its events into client events."""

    def __init__(self, api: Api, vault: Vault, notify: Callable[[Event], None]) -> None:
        self.api = api
        self.vault = vault
        self.messenger = Messenger(api, vault)
        self.notify = notify
        self.state = "offline"
        self._stopping = asyncio.Event()
        self._outbox: asyncio.Queue[chat_pb2.ClientFrame | None] | None = None
        self._hint_ms: int | None = None
        self._opened = False
        self._tasks: set[asyncio.Task[None]] = set()

    # -- public ----------------------------------------------------------------------------

    async def send(self, target: Target, text: str) -> SentMessage:
        """Encrypt and send one message (unary Send, so it works while reconnecting too)."""
        return await self.messenger.send(target, text, self.api.send, self.notify)

    def stop(self) -> None:
        self._stopping.set()
        if self._outbox is not None:
            self._outbox.put_nowait(None)

    async def run(self) -> None:
        """Stay connected until :meth:`stop`; raise only fatal errors."""
        attempt = 0
        while not self._stopping.is_set():
            self._set_state("connecting" if attempt == 0 else "reconnecting")
            self._opened, self._hint_ms = False, None
            try:
                await self._stream_once()
                error: SecureChatError | None = None
            except FATAL as exc:
                self._set_state("offline", exc.message)
                raise
            except SecureChatError as exc:
                error = exc
            if self._stopping.is_set():
                break
            if self._opened:
                attempt = 0
            hint_ms = self._reconnect_hint()
            if hint_ms is not None:
                delay = hint_ms / 1000 + random.random()  # noqa: S311 - jitter
            else:
                delay = backoff_delay(attempt)
                attempt += 1
            reason = error.message if error is not None else "the server closed the stream"
            self._set_state("reconnecting", f"{reason}; retrying in {delay:.1f}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
        self._set_state("offline")

    # -- internals -------------------------------------------------------------------------

    def _reconnect_hint(self) -> int | None:
        return self._hint_ms

    def _set_state(self, state: str, detail: str = "") -> None:
        self.state = state
        self.notify(ConnectionEvent(state, detail))

    async def _frames(
        self, outbox: asyncio.Queue[chat_pb2.ClientFrame | None]
    ) -> AsyncIterator[chat_pb2.ClientFrame]:
        while True:
            frame = await outbox.get()
            if frame is None:
                return
            yield frame

    async def _stream_once(self) -> None:
        outbox: asyncio.Queue[chat_pb2.ClientFrame | None] = asyncio.Queue()
        self._outbox = outbox
        resume = self.vault.state.last_ack
        outbox.put_nowait(
            chat_pb2.ClientFrame(
                open=chat_pb2.OpenStream(
                    device_id=self.vault.account.address.device_id, resume_after_seq=resume
                )
            )
        )
        if self._stopping.is_set():
            return
        try:
            async for frame in self.api.chat(self._frames(outbox)):
                await self._handle(frame.events, outbox)
                if self._stopping.is_set():
                    break
        finally:
            self._outbox = None

    async def _handle(
        self,
        events: Iterable[chat_pb2.ServerEvent],
        outbox: asyncio.Queue[chat_pb2.ClientFrame | None],
    ) -> None:
        out: list[Event] = []
        highest = 0
        for event in events:
            kind = event.WhichOneof("event")
            if kind == "delivery":
                highest = max(highest, event.delivery.seq)
                out.extend(self.messenger.open(event.delivery))
            elif kind == "opened":
                self._opened = True
                self.state = "online"
                pending = event.opened.pending
                detail = f"{pending} waiting" if pending else ""
                out.append(ConnectionEvent("online", detail))
                task = asyncio.ensure_future(self._upkeep())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            elif kind == "presence":
                p = event.presence
                out.append(PresenceEvent(p.user, p.online, p.at_ms))
            elif kind == "membership":
                m = event.membership
                change = MEMBERSHIP_KINDS.get(m.kind, "changed")
                out.append(MembershipEvent(m.room, m.user, change, m.at_ms))
            elif kind == "notice":
                warning = event.notice.level == chat_pb2.Notice.WARNING
                out.append(NoticeEvent(event.notice.text, warning))
            elif kind == "reconnect":
                self._hint_ms = event.reconnect.retry_after_ms
                reason = event.reconnect.reason or "the server asked clients to reconnect"
                out.append(NoticeEvent(f"server: {reason}"))
        for item in out:
            self.notify(item)
        if highest:
            self.vault.state.last_ack = max(self.vault.state.last_ack, highest)
            self.vault.save()
            outbox.put_nowait(chat_pb2.ClientFrame(ack=chat_pb2.AckRequest(seq=highest)))

    async def _upkeep(self) -> None:
        try:
            result = await maintain(self.api, self.vault)
        except SecureChatError as exc:
            self.notify(NoticeEvent(f"could not refill prekeys: {exc.message}", warning=True))
            return
        if result.one_time_added or result.rotated:
            self.notify(NoticeEvent("published fresh prekeys"))
