"""Rooms: create (optionally password-protected; limited per user), join, leave, list (only
what a user may see, a page at a time), members. Rooms with a signed roster (issue 15) are
created, joined and left with signed events: services/room_rosters.py."""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass

from securechat.bus.port import Bus
from securechat.config import LimitsConfig
from securechat.domain import names
from securechat.domain.events import MembershipChanged, MembershipKind
from securechat.domain.model import Room, RoomSummary
from securechat.domain.ratelimit import FailureThrottle, KeyedBuckets
from securechat.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)
from securechat.services.clock import Clock
from securechat.services.directory import Directory
from securechat.services.passwords import HashTicket, PasswordHasher
from securechat.services.room_rosters import SignedRooms
from securechat.services.rosters import RosterGate
from securechat.storage.port import Store

log = logging.getLogger("securechat.rooms")

MAX_ROOM_PAGE = 1000


def _page_token(last: str) -> str:
    return base64.urlsafe_b64encode(last.encode("utf-8")).decode("ascii")


def _page_after(token: str) -> str:
    """The room name a page token continues after ("" for the first page)."""
    if not token:
        return ""
    try:
        after = base64.urlsafe_b64decode(token.encode("ascii")).decode("utf-8")
        return names.check_name(after, what="room name")
    except (ValueError, UnicodeError, InvalidArgument):
        raise InvalidArgument("page_token is malformed: pass next_page_token as it came") from None


@dataclass(frozen=True, slots=True)
class Member:
    user: str
    device_ids: tuple[int, ...]
    online: bool


class Rooms(SignedRooms):
    def __init__(
        self,
        store: Store,
        bus: Bus,
        hasher: PasswordHasher,
        clock: Clock,
        directory: Directory,
        limits: LimitsConfig | None = None,
    ) -> None:
        self.limits = limits or LimitsConfig()
        self.creations = KeyedBuckets(
            self.limits.room_creations_per_hour / 3600.0, self.limits.room_creations_per_hour
        )
        self.store = store
        self.directory = directory
        self.bus = bus
        self.hasher = hasher
        self.clock = clock
        self.password_throttle = FailureThrottle(limit=10, window=600.0, lockout=300.0)
        self.gate = RosterGate(store)

    async def _get(self, name: str) -> Room:
        names.check_name(name, what="room name")
        room = await self.directory.room(name)
        if room is None:
            raise NotFound(f"no room named {name!r}: list the rooms to see which exist")
        return room

    async def _announce(self, room: str, user: str, kind: MembershipKind) -> None:
        audience = set(await self.store.room_members(room))
        audience.add(user)
        await self.bus.publish(
            MembershipChanged(room, user, kind, self.clock.now_ms(), tuple(sorted(audience)))
        )

    async def summary(self, name: str, user: str) -> RoomSummary:
        room = await self.store.room_summary(name, user)
        if room is None:  # pragma: no cover - just created or joined
            raise NotFound(f"no room named {name!r}")
        return room

    async def _admit_creation(self, name: str, user: str) -> None:
        """Per-user room limits (count and rate), checked before any hashing."""
        if await self.store.count_rooms_created_by(user) >= self.limits.rooms_per_user:
            raise ResourceExhausted(
                f"you have created {self.limits.rooms_per_user} rooms, the most allowed"
            )
        wait = self.creations.wait(user, self.clock.monotonic())
        if wait:
            raise ResourceExhausted("too many rooms created this hour", retry_after=wait)
        if await self.store.get_room(name) is not None:
            raise AlreadyExists(f"room {name!r} exists already: join it or choose another name")

    async def create(
        self,
        name: str,
        password: str,
        user: str,
        source: str = "",
        listed: bool = False,
        create_event: bytes = b"",
    ) -> RoomSummary:
        """Create a room; a protected one hashes its password under the login limits (one hash
        per user and per source at a time, bounded queue). With ``create_event`` the room gets
        its signed roster (``password`` is then the room password authenticator); a room of
        that name without a roster yet gets it too (the upgrade of a room from before rosters,
        signed by one of its members)."""
        names.check_name(name, what="room name")
        if create_event:
            return await self._create_signed(name, password, user, source, listed, create_event)
        secret = names.check_password(password, what="room password") if password else None
        await self._admit_creation(name, user)
        hashed: bytes | None = None
        if secret is not None:
            hashed = await self.hasher.hash(secret, HashTicket(user, source or user))
        self.creations.take(user, self.clock.monotonic())
        await self.store.create_room(name, hashed, user, self.clock.now_ms(), listed)
        log.info("room created room=%s by=%s protected=%s", name, user, hashed is not None)
        await self._announce(name, user, MembershipKind.JOINED)
        return await self.summary(name, user)

    async def check_password(self, room: Room, password: str, user: str, source: str) -> None:
        """A protected room's password (its authenticator for a room with a roster), bcrypt-
        checked under the login limits; wrong ones are throttled per user and room."""
        if room.password_hash is None:
            return
        key = f"{user}\x00{room.name}"
        now = self.clock.monotonic()
        wait = self.password_throttle.retry_after(key, now)
        if wait:
            raise ResourceExhausted("too many wrong room passwords", retry_after=wait)
        secret = password.encode("utf-8")
        if (
            not password
            or len(secret) > names.BCRYPT_MAX_BYTES
            or not await self.hasher.check(
                secret, room.password_hash, HashTicket(user, source or user)
            )
        ):
            self.password_throttle.fail(key, self.clock.monotonic())
            raise PermissionDenied(f"wrong password for room {room.name!r}")
        self.password_throttle.succeed(key)

    async def join(
        self, name: str, password: str, user: str, source: str = "", join_event: bytes = b""
    ) -> RoomSummary:
        room = await self._get(name)
        if join_event:
            return await self._join_signed(room, password, user, source, join_event)
        if await self._signed(name):
            raise FailedPrecondition(
                f"room {name!r} has a signed roster: joining it takes a signed JOIN event "
                "(update your client)"
            )
        if await self.store.is_member(name, user):
            return await self.summary(name, user)
        await self.check_password(room, password, user, source)
        if await self.store.add_member(name, user, self.clock.now_ms()):
            await self._announce(name, user, MembershipKind.JOINED)
        return await self.summary(name, user)

    async def leave(self, name: str, user: str, leave_event: bytes = b"") -> None:
        await self._get(name)
        if leave_event:
            await self._leave_signed(name, user, leave_event)
            return
        if await self._signed(name):
            raise FailedPrecondition(
                f"room {name!r} has a signed roster: leaving it takes a signed LEAVE event "
                "(update your client)"
            )
        if not await self.store.remove_member(name, user):
            raise FailedPrecondition(f"you are not a member of {name!r}")
        await self._announce(name, user, MembershipKind.LEFT)

    async def members(self, name: str, user: str) -> list[Member]:
        """The room's members (to a member only) with their devices and whether they are online
        anywhere, sorted by name."""
        await self.require_member(name, user)
        devices: dict[str, list[int]] = {u: [] for u in await self.directory.members(name)}
        for device in await self.directory.room_devices(name):
            devices.setdefault(device.user, []).append(device.device_id)
        online = {entry.device.user for entry in await self.bus.online()}
        return [Member(u, tuple(ids), u in online) for u, ids in sorted(devices.items())]

    async def list(
        self, user: str, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[RoomSummary], str]:
        """One page of the rooms ``user`` may see (store.list_visible_rooms) and the token of
        the next page ("" on the last)."""
        size = page_size or self.limits.room_list_page
        if size > MAX_ROOM_PAGE:
            raise InvalidArgument(f"page_size must be at most {MAX_ROOM_PAGE}")
        after = _page_after(page_token)
        rooms = await self.store.list_visible_rooms(user, after, size + 1)
        if len(rooms) > size:
            return rooms[:size], _page_token(rooms[size - 1].name)
        return rooms, ""

    async def require_member(self, name: str, user: str) -> Room:
        room = await self._get(name)
        if user not in await self.directory.members(name):
            raise PermissionDenied(f"you are not a member of {name!r}: join it first")
        return room
