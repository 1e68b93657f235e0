"""A running chat client: its Chat stream, pipelined sends, and what arrives turned into events.

One :class:`ChatSession` per interactive client. It puts together the library's
:class:`~securechat.client.rpc.link.ChatLink` (the stream, resumed after the keystore's last
ack), the shared :class:`~securechat.client.rpc.sender.Sender` (sends on that stream) and the
:class:`~securechat.client.messenger.Messenger` (encryption, decryption). Every event goes to
``notify``; nothing here prints. :meth:`submit` is what a UI (and its outbox) calls: it returns
once the message is on its way, with a future for the server's answer.

Two optional hooks: ``record`` stores a batch's messages (the local history) before the batch
is acknowledged, so nothing acknowledged is missing from it; ``renew`` is asked when the server
refuses the session (an expired token): when it logs in again, the stream reconnects with the
new token and the conversation goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from securechat.client.events import (
    Event,
    MembershipEvent,
    NoticeEvent,
    PresenceEvent,
    Target,
)
from securechat.client.messenger import Messenger
from securechat.client.rpc.api import Api
from securechat.client.rpc.link import Backoff, ChatLink
from securechat.client.rpc.sender import Receipt, Sender
from securechat.client.upkeep import RefillWatch, maintain
from securechat.client.vault import Vault
from securechat.errors import SecureChatError, Unauthenticated
from securechat_proto.v1 import chat_pb2

MEMBERSHIP_KINDS = {
    chat_pb2.MembershipChange.KIND_JOINED: "joined",
    chat_pb2.MembershipChange.KIND_LEFT: "left",
}
# The server says a user's devices or keys changed: only a hint to fetch and verify them again
# (the account book then tells the user what really changed, from verified lists).
DEVICE_KINDS = {
    chat_pb2.MembershipChange.KIND_DEVICE_ADDED,
    chat_pb2.MembershipChange.KIND_DEVICE_REMOVED,
    chat_pb2.MembershipChange.KIND_IDENTITY_CHANGED,
}

Record = Callable[[Sequence[Event]], Awaitable[None]]
"""Stores what one batch brought (before it is acknowledged)."""
Renew = Callable[[Unauthenticated], Awaitable[bool]]
"""Asked when the session was refused: True once logged in again (reconnect), False to stop."""


class ChatSession:
    """Keeps one device's Chat stream alive, sends on it and turns its events into client
    events."""

    def __init__(
        self,
        api: Api,
        vault: Vault,
        notify: Callable[[Event], None],
        *,
        backoff: Backoff | None = None,
        record: Record | None = None,
        renew: Renew | None = None,
    ) -> None:
        self.api = api
        self.vault = vault
        self.notify = notify
        self.record = record
        self.renew = renew
        self.messenger = Messenger(api, vault, notify)
        self.link = ChatLink(
            api,
            vault.account.address.device_id,
            resume_after=vault.state.last_ack,
            handle=self._handle,
            notify=notify,
            backoff=backoff,
            rooms=vault.state.room_acks,
        )
        self.sender = Sender(self.link, self.messenger.book, notify)
        self._tasks: set[asyncio.Task[None]] = set()
        self.refill = RefillWatch()

    @property
    def state(self) -> str:
        """connecting | online | reconnecting | offline"""
        return self.link.state

    # -- public ----------------------------------------------------------------------------

    async def submit(
        self, target: Target, text: str, *, message_id: str = "", reply_to: str = ""
    ) -> asyncio.Future[Receipt]:
        """Encrypt and write one message on the stream; the future settles with the answer.

        Raises Unavailable at once while the stream is down (nothing was sent)."""
        receipt = await self.messenger.submit(
            self.sender, target, text, message_id=message_id, reply_to=reply_to
        )
        self._check_prekeys()
        return receipt

    async def send(self, target: Target, text: str) -> Receipt:
        """:meth:`submit` and wait until the server stored the message."""
        return await (await self.submit(target, text))

    async def run(self) -> None:
        """Stay connected until :meth:`stop`; raise only fatal errors."""
        try:
            while True:
                try:
                    await self.link.run()
                    return
                except Unauthenticated as exc:
                    if self.renew is None or not await self.renew(exc):
                        raise
        finally:
            self.sender.close()
            for task in self._tasks:
                task.cancel()
            self.vault.flush()

    def stop(self) -> None:
        self.link.stop()

    # -- internals -------------------------------------------------------------------------

    async def _handle(self, events: Sequence[chat_pb2.ServerEvent]) -> int:
        """Decrypt and report one batch; saved before the link acknowledges it."""
        out: list[Event] = []
        highest = 0
        changed = False
        rosters: dict[str, list[tuple[int, bytes]]] = {}
        for event in events:  # roster events first, in one go per room (one fetch, one save)
            if event.WhichOneof("event") == "roster":
                r = event.roster
                rosters.setdefault(r.room, []).append((r.sequence, r.event))
        legacy = self.vault.state.legacy_rooms
        for room, changes in rosters.items():
            await self.messenger.rosters.receive_many(room, changes)
            if room in legacy:  # upgraded, maybe: join it again (client/room_upgrade.py)
                self._background(self._guarded(self.messenger.upgrades.rejoin(room), room))
        for event in events:
            kind = event.WhichOneof("event")
            if kind == "delivery":
                highest = max(highest, event.delivery.seq)
                changed = True
                out.extend(await self.messenger.open(event.delivery))
                self._check_prekeys()
            elif kind == "opened":
                self.messenger.rosters.reconnected()
                self._background(self._guarded(self.messenger.upgrades.settle_all()))
                self.refill.due()  # this check counts as the periodic one
                self._background(self._upkeep())
            elif kind == "presence":
                p = event.presence
                out.append(PresenceEvent(p.user, p.online, p.at_ms))
            elif kind == "membership":
                m = event.membership
                if m.kind in DEVICE_KINDS:
                    self._background(self._recheck(m.user))
                elif m.kind in MEMBERSHIP_KINDS and self.messenger.rosters.roster(m.room) is None:
                    # (a signed room shows the verified changes instead of the server's word)
                    out.append(MembershipEvent(m.room, m.user, MEMBERSHIP_KINDS[m.kind], m.at_ms))
            elif kind == "notice":
                warning = event.notice.level == chat_pb2.Notice.LEVEL_WARNING
                out.append(NoticeEvent(event.notice.text, warning))
            elif kind == "reconnect":
                reason = event.reconnect.reason or "the server asked clients to reconnect"
                out.append(NoticeEvent(f"server: {reason}"))
        if out and self.record is not None:
            await self.record(out)
        if changed:
            state = self.vault.state
            state.last_ack = max(state.last_ack, highest)
            self.vault.save()  # room positions (vault.state.room_acks) with it
        for item in out:
            self.notify(item)
        return highest

    def _check_prekeys(self) -> None:
        """After activity, at most once per RefillWatch.interval: refill promptly when low."""
        if self.refill.due():
            self._background(self._upkeep())

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, work: Awaitable[object], room: str = "") -> None:
        """A room upkeep beside the stream: its failure is told, never fatal."""
        try:
            await work
        except SecureChatError as exc:
            where = Target.room(room) if room else None
            text = f"could not bring {'#' + room if room else 'your rooms'} up to date: "
            self.notify(NoticeEvent(text + exc.message, warning=True, target=where))

    async def _recheck(self, user: str) -> None:
        """Fetch and verify ``user``'s devices again (it tells the user what changed)."""
        try:
            await self.messenger.accounts.refresh(user)
        except SecureChatError as exc:
            about = None if user == self.vault.account.address.user else Target.user(user)
            text = f"could not check the devices of {user}: {exc.message}"
            self.notify(NoticeEvent(text, warning=True, target=about))

    async def _upkeep(self) -> None:
        try:
            result = await maintain(self.api, self.vault)
        except SecureChatError as exc:
            self.notify(NoticeEvent(f"could not refill prekeys: {exc.message}", warning=True))
            return
        drained = self.refill.observe(result)
        if drained:
            self.notify(
                NoticeEvent(
                    f"{drained} of your one-time prekeys were claimed since the last check: "
                    "someone may be draining them (the server limits this); refilled",
                    warning=True,
                )
            )
        if result.one_time_added or result.rotated:
            self.notify(NoticeEvent("published fresh prekeys"))
