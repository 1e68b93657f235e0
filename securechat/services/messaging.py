"""Sending: check the sender may post, that the device list is current and sizes are within
limits; store every ciphertext in its recipient's mailbox; only then acknowledge and fan out.

Quotas and retries are decided by the group commit in the same transaction as the mailbox rows
(domain/mailbox.py): a recipient over its quota is skipped (and named in the answer), a send
nobody can take is refused with MailboxFull, and a send retried with the same client message id
is answered with the first copy's result, never stored twice. A retry that arrives while the
first copy is still being committed on this node waits for it."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace

from securechat.bus.port import Bus
from securechat.config import ChatConfig
from securechat.domain import names
from securechat.domain.events import Delivered, RoomPosted
from securechat.domain.mailbox import Committed, MailboxLimits
from securechat.domain.model import (
    Conversation,
    ConversationKind,
    DeviceRef,
    MailboxEntry,
    OutgoingCiphertext,
    PendingSend,
    RoomEntry,
    RoomPost,
)
from securechat.domain.ratelimit import KeyedBuckets
from securechat.domain.recipients import check_recipients, expected_recipients
from securechat.errors import (
    FailedPrecondition,
    InvalidArgument,
    MailboxFull,
    NotFound,
    ResourceExhausted,
)
from securechat.services.acks import AckBatcher, RoomAckBatcher
from securechat.services.clock import Clock
from securechat.services.committer import GroupCommitter
from securechat.services.rooms import Rooms
from securechat.services.stream_events import EVENT_OVERHEAD
from securechat.storage.port import Store

MAX_CLIENT_MESSAGE_ID = 64
MAX_FETCH = 1000
MAILBOX_FULL_RETRY_S = 60.0  # a full mailbox empties when its owner reads: not in seconds


@dataclass(frozen=True, slots=True)
class Accepted:
    message_id: str
    server_time_ms: int
    duplicate: bool = False  # stored before: the first copy's id and time
    full: tuple[DeviceRef, ...] = ()  # recipients over a quota, which did not get it
    room_seq: int = 0  # the room message's position in its room (a sender-key send)


def mailbox_limits(config: ChatConfig) -> MailboxLimits:
    return MailboxLimits(
        config.mailbox_max_entries,
        config.mailbox_max_bytes,
        config.mailbox_sender_max_entries,
        config.mailbox_sender_max_bytes,
    )


def mailbox_full(full: Sequence[DeviceRef]) -> MailboxFull:
    devices = ", ".join(f"{d.user}/{d.device_id}" for d in full)
    return MailboxFull(
        f"not stored: the mailbox of {devices} is full (too many undelivered messages, or too "
        "many of yours among them); try again once they have read their messages",
        retry_after=MAILBOX_FULL_RETRY_S,
    )


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
        self.committer = GroupCommitter(
            store, limits=mailbox_limits(config), dedup_since=self.dedup_since
        )
        self.acks = AckBatcher(store)
        self.room_acks = RoomAckBatcher(store)
        self._in_flight: set[asyncio.Task[Accepted]] = set()
        # Sends being committed, by (sender device, client message id): a retry waits for them.
        self._sending: dict[tuple[DeviceRef, str], asyncio.Task[Accepted]] = {}
        self.send_limits = KeyedBuckets(config.send_rate_per_s, config.send_burst)
        self._contacts: set[tuple[str, str]] = set()
        self.accepted = 0
        self.deliveries = 0
        self.duplicates = 0
        self.refused_full = 0
        self.room_posts = 0
        self.sent_by: dict[DeviceRef, int] = {}

    def dedup_since(self) -> int:
        """The oldest send record that still answers a retry (epoch ms)."""
        if self.config.dedup_window_s <= 0:
            return self.clock.now_ms() + 1  # no record counts
        return self.clock.now_ms() - int(self.config.dedup_window_s * 1000)

    async def _room_recipients(
        self, sender: DeviceRef, room: str, given: Sequence[DeviceRef], room_message: bytes
    ) -> None:
        """A room send. In a room with a signed roster the server no longer decides who gets
        what: the ciphertexts are sender-key distributions, each for a device of a current
        member, and a device that is not covered (no keys, no certificate, not yet shown to the
        sender) never blocks the send. A room without a roster keeps the per-device sends of
        before: every member device exactly once."""
        found = await self.rooms.require_member(room, sender.user)
        devices = await self.rooms.directory.room_devices(room)
        if not found.signed:
            if room_message:
                raise FailedPrecondition(
                    f"room {room!r} has no signed roster yet: a member signs its CREATE event "
                    "first (see docs/protocol.md, Rooms)"
                )
            check_recipients(given, expected_recipients(sender, devices))
            return
        members = set(devices)
        seen: set[DeviceRef] = set()
        for device in given:
            if device in seen:
                raise InvalidArgument(
                    f"two ciphertexts for device {device.user}/{device.device_id}: send one "
                    "per device"
                )
            seen.add(device)
            if device not in members or device == sender:
                raise InvalidArgument(
                    f"{device.user}/{device.device_id} is not another device of a member of "
                    f"{room!r}: sender keys go to members' devices only"
                )

    async def _recipients(
        self, sender: DeviceRef, conversation: Conversation
    ) -> tuple[list[DeviceRef], dict[str, Conversation]]:
        """The devices a private send must cover, and the conversation as each recipient sees
        it."""
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
        self, items: Sequence[tuple[DeviceRef, bytes]], client_message_id: str, room_message: bytes
    ) -> None:
        if len(client_message_id) > MAX_CLIENT_MESSAGE_ID:
            raise InvalidArgument(f"client_message_id is longer than {MAX_CLIENT_MESSAGE_ID}")
        if len(room_message) > self.config.max_message_bytes:
            raise InvalidArgument(
                f"room_message of {len(room_message)} bytes is over the limit of "
                f"{self.config.max_message_bytes} bytes"
            )
        if not items and not room_message:
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
        room_message: bytes = b"",
    ) -> PendingSend:
        """Every check of a send; raises with nothing stored when one fails."""
        wait = self.send_limits.take(sender.user, self.clock.monotonic())
        if wait:
            raise ResourceExhausted("sending too fast: slow down", retry_after=max(1.0, wait))
        self._check_sizes(items, client_message_id, room_message)
        given = [device for device, _ in items]
        views: dict[str, Conversation] = {}
        if conversation.kind is ConversationKind.ROOM:
            await self._room_recipients(sender, conversation.name, given, room_message)
        elif room_message:
            raise InvalidArgument("room_message is for a room: send to conversation.room")
        else:
            expected, views = await self._recipients(sender, conversation)
            check_recipients(given, expected)
        outgoing = tuple(
            OutgoingCiphertext(device, ciphertext, views.get(device.user, conversation))
            for device, ciphertext in items
        )
        post = RoomPost(conversation.name, room_message) if room_message else None
        return PendingSend(
            secrets.token_hex(12), sender, self.clock.now_ms(), outgoing, client_message_id, post
        )

    def commit(self, send: PendingSend) -> asyncio.Future[Committed]:
        return self.committer.submit(send)

    async def publish(
        self,
        send: PendingSend,
        entries: list[MailboxEntry],
        conversation: Conversation,
        room_entry: RoomEntry | None = None,
    ) -> Accepted:
        """After the commit: count, remember private contacts, fan out (the distributions
        before the room message they let members read)."""
        self.accepted += 1
        self.deliveries += len(entries)
        self.sent_by[send.sender] = self.sent_by.get(send.sender, 0) + 1
        if conversation.kind is ConversationKind.DIRECT:
            a, b = sorted((send.sender.user, conversation.name))
            if (a, b) not in self._contacts:
                await self.store.record_contact(a, b, send.sent_at_ms)
                self._contacts.add((a, b))
        if entries or room_entry is None:
            await self.bus.publish(Delivered(tuple(entries)))
        if room_entry is not None:
            self.room_posts += 1
            await self.bus.publish(RoomPosted(room_entry))
            return Accepted(send.message_id, send.sent_at_ms, room_seq=room_entry.room_seq)
        return Accepted(send.message_id, send.sent_at_ms)

    def deliver(self, send: PendingSend, conversation: Conversation) -> asyncio.Task[Accepted]:
        """Commit then fan out, in a task nobody cancels: once stored, a message is always
        announced, even if the sender's call or stream goes away meanwhile. Sends handed over
        in order are stored in that order. A retry of a send still being committed here gets
        the first one's result."""
        key = (send.sender, send.client_message_id)
        first = self._sending.get(key) if send.client_message_id else None
        if first is not None:
            task = asyncio.create_task(self._again(first), name="deliver-again")
        else:
            task = asyncio.create_task(self._deliver(send, conversation), name="deliver")
            if send.client_message_id:
                self._sending[key] = task
                task.add_done_callback(lambda done: self._forget(key, done))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        return task

    def _forget(self, key: tuple[DeviceRef, str], task: asyncio.Task[Accepted]) -> None:
        if self._sending.get(key) is task:
            del self._sending[key]

    async def _again(self, first: asyncio.Task[Accepted]) -> Accepted:
        accepted = await asyncio.shield(first)
        self.duplicates += 1
        return replace(accepted, duplicate=True, full=())

    async def _deliver(self, send: PendingSend, conversation: Conversation) -> Accepted:
        done = await self.commit(send)
        if done.refused:
            self.refused_full += 1
            raise mailbox_full(done.full)
        if done.duplicate:
            self.duplicates += 1
            room_seq = 0
            if send.room_post is not None:  # the first copy's position, to answer the same
                room_seq = await self.store.room_message_seq(
                    send.room_post.room, done.message_id, done.sent_at_ms
                )
            return Accepted(done.message_id, done.sent_at_ms, duplicate=True, room_seq=room_seq)
        accepted = await self.publish(send, done.entries, conversation, done.room_entry)
        return replace(accepted, full=done.full) if done.full else accepted

    async def send(
        self,
        sender: DeviceRef,
        conversation: Conversation,
        items: Sequence[tuple[DeviceRef, bytes]],
        client_message_id: str,
        room_message: bytes = b"",
    ) -> Accepted:
        pending = await self.prepare(sender, conversation, items, client_message_id, room_message)
        return await asyncio.shield(self.deliver(pending, conversation))

    async def drain(self) -> None:
        """Wait for every send already handed over (graceful shutdown)."""
        while self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def fetch(self, device: DeviceRef, after_seq: int, limit: int) -> list[MailboxEntry]:
        """Up to ``limit`` entries after ``after_seq``, and at most chat.max_batch_bytes of them
        (a page may be shorter than the limit: fetch again after its last entry). The page's
        ciphertexts get what the entries' envelopes leave of the batch bound; the first entry
        is always returned (one message of the maximum size fits a batch)."""
        if limit == 0:
            limit = 100
        if not 0 < limit <= MAX_FETCH:
            raise InvalidArgument(f"limit must be between 1 and {MAX_FETCH}")
        budget = max(1, self.config.max_batch_bytes - limit * EVENT_OVERHEAD)
        return await self.store.fetch(device, after_seq, limit, budget)

    async def fetch_rooms(self, device: DeviceRef, limit: int, budget: int) -> list[RoomEntry]:
        """Room messages after the device's stored positions (its acks), room by room in name
        order, at most ``limit`` and about ``budget`` bytes (unary Fetch: ack them with
        AckRequest.rooms to move on)."""
        found: list[RoomEntry] = []
        for room, start in sorted((await self.store.room_starts(device)).items()):
            if len(found) >= limit or budget <= 0:
                break
            page = await self.store.fetch_room(room, start, limit - len(found), budget)
            found += page
            budget -= sum(len(entry.ciphertext) + EVENT_OVERHEAD for entry in page)
        return found

    async def ack(self, device: DeviceRef, seq: int, rooms: Sequence[tuple[str, int]] = ()) -> None:
        """Acknowledge the mailbox up to ``seq`` and each named room up to its position; a room
        the user is not in, or a position beyond the room's log, is refused (nothing stored)."""
        if rooms:
            mine = set(await self.store.rooms_of(device.user))
            for room, room_seq in rooms:
                if room not in mine:
                    raise InvalidArgument(f"cannot acknowledge room {room!r}: not a member")
                last = await self.store.last_room_seq(room)
                if room_seq > last:
                    raise InvalidArgument(
                        f"cannot acknowledge position {room_seq} of room {room!r}: only "
                        f"{last} were delivered"
                    )
        await self.store.ack(device, seq)
        if rooms:
            await self.store.ack_rooms([(device, room, room_seq) for room, room_seq in rooms])
