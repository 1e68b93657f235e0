"""Sending: check the sender may post, that the device list is current and sizes are within
limits; store every ciphertext in its recipient's mailbox; only then acknowledge and fan out."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from securechat.bus.port import Bus
from securechat.config import ChatConfig
from securechat.domain import names
from securechat.domain.events import Delivered
from securechat.domain.model import (
    Conversation,
    ConversationKind,
    DeviceRef,
    MailboxEntry,
    OutgoingCiphertext,
    PendingSend,
)
from securechat.domain.ratelimit import KeyedBuckets
from securechat.domain.recipients import check_recipients, expected_recipients
from securechat.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from securechat.services.acks import AckBatcher
from securechat.services.clock import Clock
from securechat.services.committer import GroupCommitter
from securechat.services.rooms import Rooms
from securechat.storage.port import Store

MAX_CLIENT_MESSAGE_ID = 64
MAX_FETCH = 1000


@dataclass(frozen=True, slots=True)
class Accepted:
    message_id: str
    server_time_ms: int


class Messenger:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        rooms: Rooms,
        config: ChatConfig,
        clock: Clock,
    ) -> None:
        self.store = store
        self.bus = bus
        self.rooms = rooms
        self.config = config
        self.clock = clock
        self.committer = GroupCommitter(store)
        self.acks = AckBatcher(store)
        self._in_flight: set[asyncio.Task[Accepted]] = set()
        self.send_limits = KeyedBuckets(config.send_rate_per_s, config.send_burst)
        self._contacts: set[tuple[str, str]] = set()
        self.accepted = 0
        self.deliveries = 0
        self.sent_by: dict[DeviceRef, int] = {}

    async def _recipients(
        self, sender: DeviceRef, conversation: Conversation
    ) -> tuple[list[DeviceRef], dict[str, Conversation]]:
        """The devices the send must cover, and the conversation as each recipient sees it."""
        if conversation.kind is ConversationKind.ROOM:
            await self.rooms.require_member(conversation.name, sender.user)
            devices = await self.rooms.directory.room_devices(conversation.name)
            return expected_recipients(sender, devices), {}
        peer = conversation.name
        names.check_name(peer)
        if peer == sender.user:
            raise InvalidArgument("you cannot send a private message to yourself")
        directory = self.rooms.directory
        peer_devices = await directory.user_devices(peer)
        if not peer_devices:
            if await self.store.get_user(peer) is None:
                raise NotFound(f"no user named {peer!r}")
            raise FailedPrecondition(f"{peer} has not logged in on any device yet: try later")
        own = await directory.user_devices(sender.user)
        views = {
            peer: Conversation(ConversationKind.DIRECT, sender.user),
            sender.user: Conversation(ConversationKind.DIRECT, peer),
        }
        return expected_recipients(sender, (*peer_devices, *own)), views

    def _check_sizes(
        self, items: Sequence[tuple[DeviceRef, bytes]], client_message_id: str
    ) -> None:
        if len(client_message_id) > MAX_CLIENT_MESSAGE_ID:
            raise InvalidArgument(f"client_message_id is longer than {MAX_CLIENT_MESSAGE_ID}")
        if not items:
            raise InvalidArgument("a send needs at least one ciphertext")
        if len(items) > self.config.max_recipients:
            raise InvalidArgument(f"too many recipients (at most {self.config.max_recipients})")
        for device, ciphertext in items:
            if not device.user:
                raise InvalidArgument("every ciphertext needs a recipient device")
            if not ciphertext:
                raise InvalidArgument(f"empty ciphertext for {device.user}/{device.device_id}")
            if len(ciphertext) > self.config.max_message_bytes:
                raise InvalidArgument(
                    f"ciphertext of {len(ciphertext)} bytes is over the limit of "
                    f"{self.config.max_message_bytes} bytes"
                )

    async def prepare(
        self,
        sender: DeviceRef,
        conversation: Conversation,
        items: Sequence[tuple[DeviceRef, bytes]],
        client_message_id: str,
    ) -> PendingSend:
        """Every check of a send; raises with nothing stored when one fails."""
        wait = self.send_limits.take(sender.user, self.clock.monotonic())
        if wait:
            raise ResourceExhausted("sending too fast: slow down", retry_after=max(1.0, wait))
        self._check_sizes(items, client_message_id)
        expected, views = await self._recipients(sender, conversation)
        check_recipients([device for device, _ in items], expected)
        outgoing = tuple(
            OutgoingCiphertext(device, ciphertext, views.get(device.user, conversation))
            for device, ciphertext in items
        )
        return PendingSend(secrets.token_hex(12), sender, self.clock.now_ms(), outgoing)

    def commit(self, send: PendingSend) -> asyncio.Future[list[MailboxEntry]]:
        return self.committer.submit(send)

    async def publish(
        self, send: PendingSend, entries: list[MailboxEntry], conversation: Conversation
    ) -> Accepted:
        """After the commit: count, remember private contacts, fan out."""
        self.accepted += 1
        self.deliveries += len(entries)
        self.sent_by[send.sender] = self.sent_by.get(send.sender, 0) + 1
        if conversation.kind is ConversationKind.DIRECT:
            a, b = sorted((send.sender.user, conversation.name))
            if (a, b) not in self._contacts:
                await self.store.record_contact(a, b, send.sent_at_ms)
                self._contacts.add((a, b))
        await self.bus.publish(Delivered(tuple(entries)))
        return Accepted(send.message_id, send.sent_at_ms)

    def deliver(self, send: PendingSend, conversation: Conversation) -> asyncio.Task[Accepted]:
        """Commit then fan out, in a task nobody cancels: once stored, a message is always
        announced, even if the sender's call or stream goes away meanwhile. Sends handed over
        in order are stored in that order."""
        task = asyncio.create_task(self._deliver(send, conversation), name="deliver")
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        return task

    async def _deliver(self, send: PendingSend, conversation: Conversation) -> Accepted:
        entries = await self.commit(send)
        return await self.publish(send, entries, conversation)

    async def send(
        self,
        sender: DeviceRef,
        conversation: Conversation,
        items: Sequence[tuple[DeviceRef, bytes]],
        client_message_id: str,
    ) -> Accepted:
        pending = await self.prepare(sender, conversation, items, client_message_id)
        return await asyncio.shield(self.deliver(pending, conversation))

    async def drain(self) -> None:
        """Wait for every send already handed over (graceful shutdown)."""
        while self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def fetch(self, device: DeviceRef, after_seq: int, limit: int) -> list[MailboxEntry]:
        if limit == 0:
            limit = 100
        if not 0 < limit <= MAX_FETCH:
            raise InvalidArgument(f"limit must be between 1 and {MAX_FETCH}")
        return await self.store.fetch(device, after_seq, limit)

    async def ack(self, device: DeviceRef, seq: int) -> None:
        await self.store.ack(device, seq)
