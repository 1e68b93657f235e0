"""A cached view of rooms, members and device lists: the send path's reads, without I/O.

The device lists are the *receiving* devices (domain/recipients.py): those with published keys
and, for an account with an account key, certified and named by its signed device list.

Every change to membership or devices is announced on the bus (MembershipChanged, UserKicked,
DeviceRemoved), and a bus reconnect emits Resync; each of them invalidates what it may have
changed. A read that
raced with an invalidation is not cached (generation check), so the cache never holds data older
than the last announcement it saw.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from securechat.domain.events import (
    BusEvent,
    DeviceRemoved,
    MembershipChanged,
    Resync,
    RosterAppended,
    UserKicked,
)
from securechat.domain.model import Device, DeviceRef, Room
from securechat.domain.recipients import receiving_devices
from securechat.storage.port import Store

T = TypeVar("T")
MAX_ENTRIES = 20_000


class Directory:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._generation = 0
        self._rooms: dict[str, Room] = {}
        self._members: dict[str, frozenset[str]] = {}
        self._room_devices: dict[str, tuple[DeviceRef, ...]] = {}
        self._user_devices: dict[str, tuple[DeviceRef, ...]] = {}
        self._rooms_of: dict[str, tuple[str, ...]] = {}

    async def _cached(
        self, table: dict[str, T], key: str, load: Callable[[], Awaitable[T | None]]
    ) -> T | None:
        if key in table:
            return table[key]
        generation = self._generation
        value = await load()
        if value is not None and generation == self._generation:
            if len(table) >= MAX_ENTRIES:
                table.clear()
            table[key] = value
        return value

    async def room(self, name: str) -> Room | None:
        return await self._cached(self._rooms, name, lambda: self.store.get_room(name))

    async def members(self, room: str) -> frozenset[str]:
        async def load() -> frozenset[str]:
            return frozenset(await self.store.room_members(room))

        return await self._cached(self._members, room, load) or frozenset()

    async def room_devices(self, room: str) -> tuple[DeviceRef, ...]:
        """Every receiving device of every member, ordered by (user, device_id)."""

        async def load() -> tuple[DeviceRef, ...]:
            by_user: dict[str, list[Device]] = {}
            for device in await self.store.list_room_device_records(room):
                by_user.setdefault(device.user, []).append(device)
            accounts = {a.user: a for a in await self.store.get_accounts(sorted(by_user))}
            return tuple(
                ref
                for user in sorted(by_user)
                for ref in receiving_devices(by_user[user], accounts.get(user))
            )

        return await self._cached(self._room_devices, room, load) or ()

    async def user_devices(self, user: str) -> tuple[DeviceRef, ...]:
        """The receiving devices of ``user``."""

        async def load() -> tuple[DeviceRef, ...]:
            devices = await self.store.list_devices(user)
            account = await self.store.get_account(user) if devices else None
            return tuple(receiving_devices(devices, account))

        return await self._cached(self._user_devices, user, load) or ()

    async def rooms_of(self, user: str) -> tuple[str, ...]:
        async def load() -> tuple[str, ...]:
            return tuple(await self.store.rooms_of(user))

        return await self._cached(self._rooms_of, user, load) or ()

    async def presence_audience(self, user: str, room_limit: int) -> set[str]:
        """Who hears that ``user`` came or went: private contacts, and members of the rooms
        they share of at most ``room_limit`` members (presence is not broadcast to big rooms,
        where it would cost every connect a message to every member; ListOnline still works)."""
        audience = await self.store.private_contacts_of(user)
        for room in await self.rooms_of(user):
            members = await self.members(room)
            if len(members) <= room_limit:
                audience.update(members)
        audience.discard(user)
        return audience

    def observe(self, event: BusEvent) -> None:
        """Drop whatever the event may have changed."""
        if isinstance(event, MembershipChanged) and event.room:
            self._generation += 1
            self._members.pop(event.room, None)
            self._room_devices.pop(event.room, None)
            self._rooms.pop(event.room, None)
            self._rooms_of.pop(event.user, None)
        elif isinstance(event, RosterAppended):
            self._generation += 1
            self._members.pop(event.room, None)
            self._room_devices.pop(event.room, None)
            self._rooms.pop(event.room, None)
            for user in (*event.joined, *event.left):
                self._rooms_of.pop(user, None)
        elif isinstance(event, MembershipChanged | UserKicked | DeviceRemoved | Resync):
            self.invalidate()

    def invalidate(self) -> None:
        self._generation += 1
        self._rooms.clear()
        self._members.clear()
        self._room_devices.clear()
        self._user_devices.clear()
        self._rooms_of.clear()
