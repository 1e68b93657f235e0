"""Rooms: create (optionally password-protected), join, leave, list, members."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from securechat.bus.port import Bus
from securechat.domain import names
from securechat.domain.events import MembershipChanged, MembershipKind
from securechat.domain.model import Room, RoomSummary
from securechat.domain.ratelimit import FailureThrottle
from securechat.errors import (
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)
from securechat.services.clock import Clock
from securechat.services.directory import Directory
from securechat.services.passwords import PasswordHasher
from securechat.storage.port import Store

log = logging.getLogger("securechat.rooms")


@dataclass(frozen=True, slots=True)
class Member:
    user: str
    device_ids: tuple[int, ...]
    online: bool


class Rooms:
    def __init__(
        self, store: Store, bus: Bus, hasher: PasswordHasher, clock: Clock, directory: Directory
    ) -> None:
        self.store = store
        self.directory = directory
        self.bus = bus
        self.hasher = hasher
        self.clock = clock
        self.password_throttle = FailureThrottle(limit=10, window=600.0, lockout=300.0)

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
        for room in await self.store.list_rooms(user):
            if room.name == name:
                return room
        raise NotFound(f"no room named {name!r}")  # pragma: no cover - just created or joined

    async def create(self, name: str, password: str, user: str) -> RoomSummary:
        names.check_name(name, what="room name")
        hashed: bytes | None = None
        if password:
            hashed = await self.hasher.hash(names.check_password(password, what="room password"))
        await self.store.create_room(name, hashed, user, self.clock.now_ms())
        log.info("room created room=%s by=%s protected=%s", name, user, hashed is not None)
        await self._announce(name, user, MembershipKind.JOINED)
        return await self.summary(name, user)

    async def join(self, name: str, password: str, user: str) -> RoomSummary:
        room = await self._get(name)
        if await self.store.is_member(name, user):
            return await self.summary(name, user)
        if room.password_hash is not None:
            key = f"{user}\x00{name}"
            now = self.clock.monotonic()
            wait = self.password_throttle.retry_after(key, now)
            if wait:
                raise ResourceExhausted("too many wrong room passwords", retry_after=wait)
            secret = password.encode("utf-8")
            if (
                not password
                or len(secret) > names.BCRYPT_MAX_BYTES
                or not await self.hasher.check(secret, room.password_hash)
            ):
                self.password_throttle.fail(key, self.clock.monotonic())
                raise PermissionDenied(f"wrong password for room {name!r}")
            self.password_throttle.succeed(key)
        if await self.store.add_member(name, user, self.clock.now_ms()):
            await self._announce(name, user, MembershipKind.JOINED)
        return await self.summary(name, user)

    async def leave(self, name: str, user: str) -> None:
        await self._get(name)
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

    async def list(self, user: str) -> list[RoomSummary]:
        return await self.store.list_rooms(user)

    async def require_member(self, name: str, user: str) -> Room:
        room = await self._get(name)
        if user not in await self.directory.members(name):
            raise PermissionDenied(f"you are not a member of {name!r}: join it first")
        return room
