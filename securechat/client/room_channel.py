"""Room messages with sender keys: one ciphertext per message, keys handed out pairwise.

For a room with a verified roster (client/rosters.py) this device keeps a
:class:`~securechat.crypto.room_keys.RoomKeys` in the keystore. Sending (:meth:`RoomChannel.seal`):
the recipient devices are the certified devices of the members in ``Roster.recipients()``
(shown joins only, and only members whose member key is the account key this client accepts for
them: a stale member is neither sent to nor accepted from; the server's member list is never
asked); a device without published keys
is skipped, never blocks the send, and gets the chain at the first send after it has keys (the
user is told both). The chain rotates when ``needs_rotation`` says so (every removal, a removed
device, age, count); its distribution is sealed over the pairwise sessions under the
conversation ``room-keys:<room>`` to the devices that lack it, split into several
distributions-only sends when it would not fit one request; then the message is encrypted once
and the keystore saved before anything leaves whenever a pairwise ratchet moved or the sending
chain's saved position ran out (``SendingChain.reserve``: once per 32 messages, not per send).
The chain is marked as distributed only once the server accepted the send.

Receiving: a room delivery (``room_seq``) is checked against the roster (a NEWER version is
fetched first, a FORKED one is told and not decrypted) and opened with the sender's chain. A
message whose chain has not arrived yet is held (bounded, in memory) and opened as soon as the
distribution arrives; the room's acknowledged position stays below the oldest held message, so
a restart replays it. A distribution from a device that is not a member's is refused and told.
One from a *stale* member (one who rejoined under a new account key the user has not accepted
yet) is kept in memory, with that member's messages held, and installed once the key is
accepted: at the member's next message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from google.protobuf.message import DecodeError

from securechat.client.events import Event, MessageEvent, NoticeEvent, Target, UndecryptableEvent
from securechat.client.rosters import RosterBook
from securechat.client.rpc.sender import Sealed
from securechat.client.vault import Vault, now_s
from securechat.crypto.account import Address
from securechat.crypto.room_keys import RoomKeys
from securechat.crypto.room_message import (
    SenderKeyDistribution,
    distribution_conversation,
    peek_room_message,
)
from securechat.crypto.roster import Roster, RosterRelation
from securechat.crypto.roster_event import RosterVersion
from securechat.errors import DecryptionError, InvalidArgument
from securechat_proto.v1 import chat_pb2, content_pb2

# One send request is at most 64 KiB + 4 KiB: distributions beyond this go in sends of their own.
CHUNK_BYTES = 60_000
MAX_HELD_PER_ROOM = 200
MAX_PARKED_PER_SENDER = 4  # key distributions kept (in memory) from a member stale for us
_USABLE = (RosterRelation.SAME, RosterRelation.OLDER)


class EnsureSessions(Protocol):
    def __call__(
        self, devices: Iterable[Address], *, partial: bool = False
    ) -> Awaitable[list[Address]]: ...


Certified = Callable[[Address], Awaitable[bool | None]]
Notify = Callable[[Event], None]


def chunk(envelopes: Mapping[Address, bytes], room_message: bytes) -> list[dict[Address, bytes]]:
    """Split distributions so each request stays under CHUNK_BYTES (the last one also carries
    the room message)."""
    chunks: list[dict[Address, bytes]] = [{}]
    size = 0
    for device, envelope in sorted(envelopes.items()):
        cost = len(envelope) + len(device.user) + 16
        if chunks[-1] and size + cost > CHUNK_BYTES:
            chunks.append({})
            size = 0
        chunks[-1][device] = envelope
        size += cost
    if chunks[-1] and size + len(room_message) > CHUNK_BYTES:
        chunks.append({})
    return chunks


@dataclass
class _Held:
    room_seq: int
    delivery: chat_pb2.Delivery


@dataclass
class _RoomRun:
    """What this process remembers of one room besides the keystore."""

    held: dict[Address, list[_Held]] = field(default_factory=dict)
    parked: dict[Address, list[bytes]] = field(default_factory=dict)  # keys from stale members
    keyless: set[Address] = field(default_factory=set)
    highest: int = 0  # the highest room position processed (held or not)
    done: set[int] = field(default_factory=set)  # positions above the ack already processed

    def held_count(self) -> int:
        return sum(len(items) for items in self.held.values())

    def lowest_held(self) -> int | None:
        seqs = [h.room_seq for items in self.held.values() for h in items]
        return min(seqs) if seqs else None


class RoomChannel:
    """Sender-key encryption and decryption of this device's signed rooms."""

    def __init__(
        self,
        vault: Vault,
        rosters: RosterBook,
        ensure_sessions: EnsureSessions,
        certified: Certified,
        notify: Notify | None = None,
    ) -> None:
        self.vault = vault
        self.rosters = rosters
        self.ensure_sessions = ensure_sessions
        self.certified = certified
        self.notify = notify
        self.me = vault.account.address
        self._runs: dict[str, _RoomRun] = {}

    def _run(self, room: str) -> _RoomRun:
        return self._runs.setdefault(room, _RoomRun())

    def _tell(self, room: str, text: str, *, warning: bool = False) -> None:
        if self.notify is not None:
            self.notify(NoticeEvent(text, warning=warning, target=Target.room(room)))

    def keys(self, room: str) -> RoomKeys:
        rooms = self.vault.state.room_keys
        keys = rooms.get(room)
        if keys is None:
            keys = rooms[room] = RoomKeys(room, self.me)
        return keys

    # -- sending ---------------------------------------------------------------------------

    async def seal(
        self,
        roster: Roster,
        devices: Sequence[Address],
        plaintext: bytes,
        expected: Mapping[str, bytes],
    ) -> Sealed:
        """One room ciphertext, plus the distributions the devices lacking the chain need."""
        room = roster.room
        run = self._run(room)
        pinned = self.rosters.account_key_of
        self.rosters.tell_stale(room, roster)  # (a key accepted since: told at the send)
        shown = set(roster.recipients(pinned))
        wanted = [d for d in devices if d.user in shown and d != self.me]
        ready = await self.ensure_sessions(wanted, partial=True)
        for device in sorted(set(wanted) - set(ready) - run.keyless):
            run.keyless.add(device)
            self._tell(
                room,
                f"#{room}: no session with {device.user} device {device.device_id} yet (it has "
                "no published keys, or the server limits key fetches): it is left out of the "
                "room's messages until then",
            )
        keys = self.keys(room)
        now = now_s()
        plan = keys.prepare_send(roster, ready, now=now, accepted=pinned)
        for device in sorted(run.keyless & set(plan.recipients)):
            run.keyless.discard(device)
            self._tell(
                room,
                f"#{room}: {device.user} device {device.device_id} has keys now: it gets the "
                "room's key and the messages from now on",
            )
        account = self.vault.account
        envelopes: dict[Address, bytes] = {}
        if plan.recipients:
            envelopes = account.encrypt_for_devices(
                plan.recipients, distribution_conversation(room), plan.distribution,
                expected=expected,
            )  # fmt: skip
        message = keys.encrypt(roster, plaintext, now=now, accepted=pinned)
        if envelopes or keys.unsaved:  # pairwise ratchets moved, or the chain's reservation
            self.vault.save()  # persisted before the ciphertext leaves
            keys.saved()
        parts = chunk(envelopes, message)
        distributed = tuple(plan.recipients)

        def accepted() -> None:
            if distributed:
                self.keys(room).mark_distributed(distributed)
                self.vault.save()

        return Sealed(parts[-1], message, tuple(parts[:-1]), tuple(sorted(ready)), accepted)

    # -- receiving -------------------------------------------------------------------------

    def position(self, room: str, room_seq: int) -> None:
        """``room_seq`` is processed: the room's ack position moves up to it, but stays below
        a held message (it is replayed after a restart)."""
        run = self._run(room)
        run.highest = max(run.highest, room_seq)
        lowest = run.lowest_held()
        upto = run.highest if lowest is None else min(run.highest, lowest - 1)
        acks = self.vault.state.room_acks
        if upto > acks.get(room, 0):
            acks[room] = upto
        acked = acks.get(room, 0)
        run.done = {seq for seq in run.done if seq > acked}

    def _served_before(self, room: str, room_seq: int) -> bool:
        """The server serves a room position again after a reconnect or resume that came
        before its ack: it was processed (shown, or held for its key), so it is not opened a
        second time (its message key is gone: it would show as undecryptable)."""
        if room_seq <= self.vault.state.room_acks.get(room, 0):
            return True
        return room_seq in self._run(room).done or any(
            h.room_seq == room_seq for h in self._held(room)
        )

    async def open(self, delivery: chat_pb2.Delivery) -> list[Event]:
        """A room message stored once (``delivery.room_seq``); [] for one served again."""
        room = delivery.conversation.room
        if self._served_before(room, delivery.room_seq):
            return []
        events = await self._open(delivery)
        if not any(h.room_seq == delivery.room_seq for h in self._held(room)):
            self._run(room).done.add(delivery.room_seq)
        self.position(room, delivery.room_seq)
        return events

    def _held(self, room: str) -> list[_Held]:
        return [h for items in self._run(room).held.values() for h in items]

    async def _open(self, delivery: chat_pb2.Delivery) -> list[Event]:
        room = delivery.conversation.room
        roster = self.rosters.roster(room) or await self.rosters.sync(room)
        try:
            header = peek_room_message(delivery.ciphertext)
        except (DecryptionError, InvalidArgument, ValueError):
            return [self._undecryptable(delivery, None)]
        if roster is None or header.room != room or not roster.is_member(self.me.user):
            return [self._undecryptable(delivery, header.sender)]
        relation = await self.rosters.relation(room, header.version, header.sender.user)
        if relation not in _USABLE:
            return [self._undecryptable(delivery, header.sender)]
        keys = self.keys(room)
        has_chain = any(c.chain_id == header.chain_id for c in keys.receiving_chains(header.sender))
        accepted = self.rosters.account_key_of
        if not has_chain and roster.is_member(header.sender.user):
            run = self._run(room)
            current = roster.current_member(header.sender.user, accepted) is not None
            parked = run.parked.get(header.sender)
            if parked and current:  # its key came while the member was stale for us
                del run.parked[header.sender]
                events: list[Event] = []
                for plaintext in parked:
                    events.extend(await self.distribution(header.sender, room, plaintext))
                return [*events, *await self._open(delivery)]
            if current or parked:  # (a stale member with no key waiting: undecryptable)
                return self._hold(room, header.sender, delivery)
        try:
            opened = keys.decrypt(roster, delivery.ciphertext, now=now_s(), accepted=accepted)
            content = content_pb2.MessageContent.FromString(opened.plaintext)
        except (DecryptionError, DecodeError):
            return [self._undecryptable(delivery, header.sender)]
        state = self.vault.state
        message_id = content.message_id or delivery.message_id
        if message_id in state.seen:
            return []
        state.remember(message_id)
        certified = await self.certified(opened.sender)
        return [
            MessageEvent(
                message_id, opened.sender.user, opened.sender.device_id, Target.room(room),
                content.body, delivery.sent_at_ms, content.reply_to, certified,
            )
        ]  # fmt: skip

    def _undecryptable(self, delivery: chat_pb2.Delivery, sender: Address | None) -> Event:
        who = sender or Address(delivery.sender.user, delivery.sender.device_id)
        target = Target.room(delivery.conversation.room)
        return UndecryptableEvent(
            delivery.message_id, who.user, who.device_id, target, delivery.sent_at_ms
        )

    def _hold(self, room: str, sender: Address, delivery: chat_pb2.Delivery) -> list[Event]:
        """No chain from ``sender`` yet: keep the message until its distribution arrives."""
        run = self._run(room)
        held = run.held.setdefault(sender, [])
        if any(item.room_seq == delivery.room_seq for item in held):
            return []  # served again (not acked past it): already held
        held.append(_Held(delivery.room_seq, delivery))
        released: list[Event] = []
        while run.held_count() > MAX_HELD_PER_ROOM:
            oldest = min(
                (items[0] for items in run.held.values() if items), key=lambda h: h.room_seq
            )
            for items in run.held.values():
                if items and items[0] is oldest:
                    items.pop(0)
            released.append(self._undecryptable(oldest.delivery, None))
        return released

    async def distribution(self, sender: Address, room: str, plaintext: bytes) -> list[Event]:
        """A sender-key distribution that arrived over the pairwise session with ``sender``;
        the messages held for it are opened now."""
        roster = self.rosters.roster(room) or await self.rosters.sync(room)
        if roster is None:
            return []
        try:
            header = peek_distribution(plaintext)
            relation = await self.rosters.relation(room, header, sender.user)
            if relation is RosterRelation.FORKED:
                return []
            if self._stale_sender(roster, sender):
                parked = self._run(room).parked.setdefault(sender, [])
                parked[:] = [*parked, plaintext][-MAX_PARKED_PER_SENDER:]
                return []  # installed once the user accepts the sender's key (next message)
            self.keys(room).receive_distribution(
                roster, sender, plaintext, now=now_s(), accepted=self.rosters.account_key_of
            )
        except (DecryptionError, InvalidArgument, ValueError):
            self._tell(
                room,
                f"#{room}: ignored a room key from {sender.user} device {sender.device_id}: "
                f"{sender.user} is not a member in your verified member list (or is one under an "
                "account key you have not accepted), or it does not verify",
                warning=True,
            )
            return []
        self.vault.save()
        run = self._run(room)
        held = run.held.pop(sender, [])
        events: list[Event] = []
        for item in held:
            events.extend(await self._open(item.delivery))
            run.done.add(item.room_seq)
        self.position(room, 0)
        return events

    def _stale_sender(self, roster: Roster, sender: Address) -> bool:
        """A member whose member key is not the key we accept for them: typically one who
        rejoined under a new key that the user has not accepted yet."""
        user = sender.user
        return (
            roster.is_member(user)
            and roster.current_member(user, self.rosters.account_key_of) is None
        )


def peek_distribution(plaintext: bytes) -> RosterVersion:
    """The roster version a distribution names (unauthenticated, to compare first)."""
    return SenderKeyDistribution.parse(plaintext).position.version
