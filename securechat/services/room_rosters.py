"""Rooms with a signed roster: create (or upgrade a room from before rosters), join, leave,
change (remove, admins, policy) and read the roster. Each event is checked by the RosterGate,
stored with its membership change in one transaction, and pushed to the members (and to whoever
it removed) as a RosterEvent on their streams.

Rules of the upgrade (docs/protocol.md, "Rooms: signed rosters"): a room without a roster gets
one when one of its members signs a CREATE for it, keeping the room's protection (open stays
open, protected stays protected, with the authenticator of the new room password); the signer
becomes its only member and admin, and the other members are told (they are in the event's
audience) and join again with a signed JOIN.
"""

from __future__ import annotations

import logging

from securechat.bus.port import Bus
from securechat.crypto.roster_event import EventKind
from securechat.domain.events import MembershipChanged, MembershipKind, RosterAppended
from securechat.domain.model import Room, RoomSummary, RosterAppend, RosterHead
from securechat.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RosterMovedOn,
)
from securechat.services.clock import Clock
from securechat.services.passwords import HashTicket, PasswordHasher
from securechat.services.rosters import CHANGE_KINDS, RosterGate, Verified, check_authenticator
from securechat.storage.port import Store

log = logging.getLogger("securechat.rooms")

DEFAULT_ROSTER_PAGE = 256
MAX_ROSTER_PAGE = 1024


def _moved_on(room: str) -> RosterMovedOn:
    return RosterMovedOn(
        f"the roster of {room!r} moved on while your event was checked: fetch it and sign again"
    )


class SignedRooms:
    """The roster half of the Rooms service (mixed into services.rooms.Rooms)."""

    store: Store
    bus: Bus
    hasher: PasswordHasher
    clock: Clock
    gate: RosterGate

    async def summary(self, name: str, user: str) -> RoomSummary:  # pragma: no cover - Rooms
        raise NotImplementedError

    async def check_password(
        self, room: Room, password: str, user: str, source: str
    ) -> None:  # pragma: no cover - Rooms
        raise NotImplementedError

    async def _admit_creation(self, name: str, user: str) -> None:  # pragma: no cover - Rooms
        raise NotImplementedError

    async def _head(self, name: str) -> RosterHead:
        head = await self.store.roster_head(name)
        if head is None:
            raise NotFound(f"no room named {name!r}: list the rooms to see which exist")
        return head

    async def _signed(self, name: str) -> bool:
        return (await self._head(name)).length > 0

    async def _hash(self, authenticator: bytes | None, user: str, source: str) -> bytes | None:
        if authenticator is None:
            return None
        return await self.hasher.hash(authenticator, HashTicket(user, source or user))

    async def _store(
        self, checked: Verified, change: RosterAppend, *, joined: tuple[str, ...] = (),
        left: tuple[str, ...] = (),
    ) -> None:  # fmt: skip
        if not await self.store.append_roster_event(change):
            raise _moved_on(change.room)
        event = checked.event
        audience = tuple(sorted(checked.before | checked.after | {event.actor, event.subject}))
        log.info("roster event room=%s seq=%d kind=%s actor=%s subject=%s", change.room,
                 change.sequence, event.kind.name, event.actor, event.subject)  # fmt: skip
        await self.bus.publish(
            RosterAppended(change.room, change.sequence, checked.data, audience, joined, left)
        )
        if len(joined) + len(left) != 1:
            return  # an upgrade: one RosterEvent says it all (not one notice per member)
        now = self.clock.now_ms()
        kind, user = (
            (MembershipKind.JOINED, joined[0]) if joined else (MembershipKind.LEFT, left[0])
        )
        # for clients from before rosters, which show membership notices
        await self.bus.publish(MembershipChanged(change.room, user, kind, now, audience))

    def _append(self, checked: Verified, **change: object) -> RosterAppend:
        event = checked.event
        return RosterAppend(
            event.room, event.sequence, checked.data, event.hash(), checked.roster.to_bytes(),
            self.clock.now_ms(), **change,  # type: ignore[arg-type]
        )  # fmt: skip

    async def _create_signed(
        self, name: str, password: str, user: str, source: str, listed: bool, data: bytes
    ) -> RoomSummary:
        checked = await self.gate.create(name, data, user)
        authenticator = check_authenticator(password, checked.roster.policy.protected)
        existing = await self.store.get_room(name)
        if existing is not None:
            return await self._upgrade(existing, checked, authenticator, user, source)
        await self._admit_creation(name, user)
        hashed = await self._hash(authenticator, user, source)
        roster = self._append(checked)
        await self.store.create_room(name, hashed, user, roster.now_ms, listed, roster=roster)
        log.info("room created room=%s by=%s protected=%s signed", name, user, hashed is not None)
        audience = (user,)
        await self.bus.publish(RosterAppended(name, 0, data, audience, joined=audience))
        await self.bus.publish(
            MembershipChanged(name, user, MembershipKind.JOINED, roster.now_ms, audience)
        )
        return await self.summary(name, user)

    async def _upgrade(
        self, room: Room, checked: Verified, authenticator: bytes | None, user: str, source: str
    ) -> RoomSummary:
        """The first CREATE of a room from before rosters, signed by one of its members."""
        if await self._signed(room.name):
            raise AlreadyExists(
                f"room {room.name!r} exists already: join it or choose another name"
            )
        members = await self.store.room_members(room.name)
        if user not in members:
            raise PermissionDenied(
                f"room {room.name!r} has no signed roster yet: only one of its members can sign "
                "its CREATE event"
            )
        if (authenticator is not None) != room.protected:
            raise FailedPrecondition(
                f"the CREATE of {room.name!r} must keep its protection: "
                + ("set a room password" if room.protected else "it is an open room")
            )
        hashed = await self._hash(authenticator, user, source)
        before = Verified(checked.event, checked.data, checked.roster, frozenset(members))
        change = self._append(checked, only=user, set_password=True, password_hash=hashed)
        left = tuple(sorted(set(members) - {user}))
        await self._store(before, change, left=left)
        return await self.summary(room.name, user)

    async def _join_signed(
        self, room: Room, password: str, user: str, source: str, data: bytes
    ) -> RoomSummary:
        head = await self._head(room.name)
        self.gate.parse(room.name, data, frozenset({EventKind.JOIN}))
        current = await self.store.get_room(room.name)
        await self.check_password(current or room, password, user, source)
        checked = await self.gate.next(room.name, head, data, user, frozenset({EventKind.JOIN}))
        await self._store(checked, self._append(checked, add=user), joined=(user,))
        return await self.summary(room.name, user)

    async def _leave_signed(self, name: str, user: str, data: bytes) -> None:
        head = await self._head(name)
        checked = await self.gate.next(name, head, data, user, frozenset({EventKind.LEAVE}))
        await self._store(checked, self._append(checked, remove=user), left=(user,))

    async def change_roster(
        self, name: str, data: bytes, user: str, password: str = "", source: str = ""
    ) -> int:
        """A REMOVE, ADMIN_ADD, ADMIN_REMOVE or SET_POLICY event; its sequence."""
        head = await self._head(name)
        checked = await self.gate.next(name, head, data, user, CHANGE_KINDS)
        event = checked.event
        if event.kind is EventKind.SET_POLICY:
            assert event.policy is not None
            authenticator = check_authenticator(password, event.policy.protected)
            hashed = await self._hash(authenticator, user, source)
            change = self._append(checked, set_password=True, password_hash=hashed)
            await self._store(checked, change)
        elif password:
            raise InvalidArgument("only a SET_POLICY event takes a password")
        elif event.kind is EventKind.REMOVE:
            change = self._append(checked, remove=event.subject)
            await self._store(checked, change, left=(event.subject,))
        else:
            await self._store(checked, self._append(checked))
        return event.sequence

    async def roster(self, name: str, from_sequence: int, limit: int) -> tuple[list[bytes], int]:
        """A page of the room's signed events and the roster's length. Anyone who names the
        room may read it: joining needs the CREATE event's salt and policy, and members check
        every event anyway."""
        if limit > MAX_ROSTER_PAGE:
            raise InvalidArgument(f"limit must be at most {MAX_ROSTER_PAGE}")
        head = await self._head(name)
        if from_sequence >= head.length:
            return [], head.length
        events = await self.store.roster_events(name, from_sequence, limit or DEFAULT_ROSTER_PAGE)
        return events, head.length
