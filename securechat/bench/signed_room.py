"""Bench members of a signed room (issue 15): real account keys, signed roster events, and one
stored-once room message per send.

A :class:`SignedMember` is a :class:`~securechat.bench.clients.SecureMember` (the client
library's Api, ChatLink and Sender) whose account has a real account key and device binding
(as a linked client publishes them), which creates the room with a signed CREATE or joins it
with a signed JOIN, and whose seal is what a signed room's send carries on the wire: no
pairwise ciphertexts, one opaque ``room_message`` (timestamped in its first 8 bytes, as the
legacy bench's per-device ciphertexts are). No sender keys are distributed or used: the server
stores and delivers the room message without reading it, which is what the bench measures
(the client's sender-key cost is ``securechat.bench.room_send``).

Members receive the message as a position in the room (``Delivery.room_seq``) and acknowledge
it through ChatLink's room positions, as the chat client does.

The roster is verified trust-on-first-use (each event's own actor key): the load processes do
not share their members' keys, and nothing in the bench decrypts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from securechat.bench.clients import SecureMember, ciphertext
from securechat.client.bundles import publish_request
from securechat.client.linking import account_request
from securechat.client.rpc import Seal
from securechat.client.rpc.sender import Sealed
from securechat.crypto.account import Address, CryptoAccount
from securechat.crypto.room_membership import create_event, join_event, new_room_salt
from securechat.crypto.roster import Roster
from securechat.errors import AlreadyExists, NotFound, RosterMovedOn

JOIN_ATTEMPTS = 200  # members of several processes race for the roster's next position


def room_seal(sent_ns: int) -> Seal:
    """A signed room's send: one timestamped opaque room message for every member device."""

    async def seal(devices: Sequence[Address]) -> Sealed:
        return Sealed({}, room_message=ciphertext(sent_ns), devices=tuple(devices))

    return seal


def first_use_roster(room: str, events: Sequence[bytes]) -> Roster:
    """The room's roster: each CREATE and JOIN checked under the key it names, every later
    event under its actor's member key (the bench pins nobody and encrypts nothing, so it never
    asks which member keys are current)."""
    roster, _ = Roster.from_events(room, events)
    return roster


@dataclass
class SharedRoster:
    """The room's roster as the members of one load process last saw it: each join fetches only
    the events after it (a 1,000-member room's set-up stays linear, not quadratic)."""

    roster: Roster | None = None


class SignedMember(SecureMember):
    """A member of a signed room: account key, signed join, one room message per send."""

    crypto: CryptoAccount | None = None
    shared: SharedRoster | None = None  # set by the load process: one per process and room

    async def publish(self) -> None:
        """A new device publishes an account key and a bound bundle (what a room's roster
        names and what the server checks signed events against), as a client's first device
        does."""
        crypto = CryptoAccount.create(
            self.user, self.device_id, now=int(time.time()), one_time_count=0, kem_one_time_count=0
        )
        await self.api.publish_account(account_request(crypto))
        await self.api.publish_bundle(
            publish_request(crypto.upload_bundle(), crypto.devices.binding)
        )
        self.crypto = crypto

    async def enter_room(self) -> None:
        """Create the room with a signed CREATE, or append a signed JOIN at the roster's head
        (again after another member's event took that position)."""
        crypto = self.crypto
        assert crypto is not None, "log in first"
        key = crypto.account_key_of(self.user)
        assert key is not None
        signer = crypto.devices.signer
        for _ in range(JOIN_ATTEMPTS):
            roster = await self._roster()
            if roster is None:
                event = create_event(self.room, signer, self.user, key, room_salt=new_room_salt())
                try:
                    await self.api.create_room(self.room, create_event=event)
                except AlreadyExists:
                    continue
                return
            event = join_event(roster, signer, self.user, key)
            try:
                await self.api.join_room(self.room, join_event=event)
            except RosterMovedOn:
                continue
            roster.apply(event)  # the server took it at the head: ours is current again
            return
        raise RuntimeError(f"could not join the signed room {self.room}")

    async def _roster(self) -> Roster | None:
        """The roster now (None: the room does not exist yet): the shared one brought up to
        date with the events after it, else the whole history."""
        shared = self.shared
        if shared is not None and shared.roster is not None:
            roster = shared.roster
            for data in await self._events(roster.version.sequence + 1):
                roster.apply(data)
            return roster
        try:
            events = await self._events(0)
        except NotFound:
            return None
        roster = first_use_roster(self.room, events)
        if shared is not None:
            shared.roster = roster
        return roster

    async def _events(self, start: int) -> list[bytes]:
        """The roster's events from ``start`` to its head, page after page."""
        events: list[bytes] = []
        while True:
            reply = await self.api.get_roster(self.room, from_sequence=start + len(events))
            events.extend(reply.events)
            if not reply.events or start + len(events) >= reply.next_sequence:
                return events

    def seal(self, sent_ns: int) -> Seal:
        return room_seal(sent_ns)
