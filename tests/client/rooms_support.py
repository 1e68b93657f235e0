"""A room relay that can lie, for the client's signed-room tests.

The accounts, devices, key bundles and pairwise sessions are the real test server's; the room
half (the roster calls and the delivery of room sends) is played by :class:`RoomRelay`, which
the test controls: it can show each member a different roster history (a fork), slip in events
of its own making (forged or unsigned joins), list ghosts, and deliver room messages and key
distributions in any order. This is the position of a malicious server operator; what is
checked is what the *clients* do about it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from securechat.client.events import Event, Target
from securechat.client.history import Entry
from securechat.client.messenger import Messenger, now_ms
from securechat.client.rpc.sender import Sealed
from securechat.crypto.account import Address
from securechat.crypto.roster_event import RosterEvent
from securechat.errors import RosterMovedOn, SecureChatError
from securechat_proto.v1 import chat_pb2, content_pb2, rooms_pb2
from tests.client.live import Device


@dataclass
class Member:
    device: Device
    messenger: Messenger
    inbox: list[chat_pb2.Delivery] = field(default_factory=list)

    @property
    def address(self) -> Address:
        return self.messenger.me

    async def take(self, delivery: chat_pb2.Delivery) -> list[Event]:
        events = await self.messenger.open(delivery)
        for event in events:
            self.device.watch(event)
        return events


class RoomRelay:
    """The room half of a server: one history per room, or one per viewer when it lies."""

    def __init__(self) -> None:
        self.events: dict[str, list[bytes]] = {}
        self.views: dict[tuple[str, str], list[bytes]] = {}  # (user, room) -> a private history
        self.members: dict[str, Member] = {}
        self.seq = 0
        self.room_seq: dict[str, int] = {}
        self.ghosts: dict[str, list[rooms_pb2.Member]] = {}

    def history(self, user: str, room: str) -> list[bytes]:
        return self.views.get((user, room), self.events.setdefault(room, []))

    def attach(self, device: Device) -> Member:
        member = Member(device, device.messenger())
        self.members[device.user] = member
        api, user = device.api, device.user
        real_members = api.list_members

        async def get_roster(
            name: str, from_sequence: int = 0, limit: int = 0
        ) -> rooms_pb2.GetRosterResponse:
            events = self.history(user, name)
            return rooms_pb2.GetRosterResponse(
                events=events[from_sequence:], next_sequence=len(events)
            )

        async def create_room(
            name: str, password: str = "", *, create_event: bytes = b"", listed: bool = False
        ) -> rooms_pb2.RoomInfo:
            self.events[name] = [create_event]
            return rooms_pb2.RoomInfo(name=name, member_count=1, member=True)

        def append(name: str, event: bytes) -> int:
            events = self.history(user, name)
            if RosterEvent.parse(event).sequence != len(events):
                raise RosterMovedOn()
            events.append(event)
            return len(events) - 1

        async def join_room(
            name: str, password: str = "", *, join_event: bytes = b""
        ) -> rooms_pb2.RoomInfo:
            append(name, join_event)
            return rooms_pb2.RoomInfo(name=name, member=True)

        async def leave_room(name: str, *, leave_event: bytes = b"") -> None:
            append(name, leave_event)

        async def change_roster(name: str, event: bytes, password: str = "") -> int:
            return append(name, event)

        async def list_members(name: str) -> list[rooms_pb2.Member]:
            return [*await real_members(name), *self.ghosts.get(name, [])]

        api.get_roster = get_roster  # type: ignore[method-assign]
        api.create_room = create_room  # type: ignore[method-assign]
        api.join_room = join_room  # type: ignore[method-assign]
        api.leave_room = leave_room  # type: ignore[method-assign]
        api.change_roster = change_roster  # type: ignore[method-assign]
        api.list_members = list_members  # type: ignore[method-assign]
        return member

    async def push(self, room: str, users: Iterable[str] | None = None) -> None:
        """Hand every member its history's latest event over the stream (RosterEvent)."""
        for name in users if users is not None else list(self.members):
            events = self.history(name, room)
            await self.members[name].messenger.rosters.receive(room, len(events) - 1, events[-1])

    async def seal(self, sender: Member, room: str, text: str) -> tuple[Sealed, str]:
        """What ``sender``'s client hands the send path for ``text`` in ``room``."""
        target = Target.room(room)
        content = content_pb2.MessageContent(
            message_id=uuid.uuid4().hex, sent_at_ms=now_ms(), body=text
        )
        devices = await sender.messenger.book.devices(target)
        sealed = await sender.messenger.seal(target, content)(devices)
        assert isinstance(sealed, Sealed)
        return sealed, content.message_id

    def deliveries(
        self, sender: Member, room: str, sealed: Sealed
    ) -> tuple[list[tuple[Address, chat_pb2.Delivery]], chat_pb2.Delivery]:
        """The pairwise distribution deliveries (to whom) and the one stored room message."""
        pairwise = []
        for part in (*sealed.before, sealed.ciphertexts):
            for device, envelope in part.items():
                self.seq += 1
                pairwise.append((device, self._delivery(sender, room, envelope, seq=self.seq)))
        self.room_seq[room] = self.room_seq.get(room, 0) + 1
        message = self._delivery(sender, room, sealed.room_message, room_seq=self.room_seq[room])
        return pairwise, message

    def _delivery(
        self, sender: Member, room: str, data: bytes, *, seq: int = 0, room_seq: int = 0
    ) -> chat_pb2.Delivery:
        delivery = chat_pb2.Delivery(
            seq=seq, message_id=uuid.uuid4().hex, ciphertext=data, sent_at_ms=now_ms(),
            room_seq=room_seq,
        )  # fmt: skip
        delivery.sender.user, delivery.sender.device_id = (
            sender.address.user,
            sender.address.device_id,
        )
        delivery.conversation.room = room
        return delivery

    async def send(self, sender: Member, room: str, text: str, to: Iterable[str]) -> Sealed:
        """Seal and deliver: distributions first, then the room message, to each of ``to``."""
        sealed, _ = await self.seal(sender, room, text)
        if sealed.accepted is not None:
            sealed.accepted()
        pairwise, message = self.deliveries(sender, room, sealed)
        for name in to:
            member = self.members[name]
            for device, delivery in pairwise:
                if device == member.address:
                    await member.take(delivery)
            await member.take(message)
        return sealed


class Recorder:
    """A View without a screen: what the engine says, and the secrets it is given."""

    def __init__(self, room: str) -> None:
        self.current = Target.room(room)
        self.lines: list[str] = []
        self.answers: list[str] = []
        self.asked: list[str] = []

    def show_entry(self, entry: Entry, error: SecureChatError | None) -> None:
        self.lines.append(entry.body)

    def show_event(self, event: Event) -> None:
        self.lines.append(str(getattr(event, "text", event)))

    def say(self, text: str, *, target: Target | None = None, warning: bool = False) -> None:
        self.lines.append(text)

    def switch(self, target: Target) -> None:
        self.current = target

    def show_search(self, query: str, entries: list[Entry]) -> None:
        raise AssertionError("no search here")

    async def ask_secret(self, prompt: str) -> str | None:
        self.asked.append(prompt)
        return self.answers.pop(0) if self.answers else None

    async def confirm(self, question: str) -> bool:
        raise AssertionError("nothing to confirm here")
