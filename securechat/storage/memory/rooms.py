"""Rooms in memory: rooms, membership and contacts."""

from __future__ import annotations

from securechat.domain.model import (
    DeviceRef,
    Room,
    RoomSummary,
    RosterAppend,
)
from securechat.storage import rules
from securechat.storage.memory.state import MemoryState


class RoomsMemory(MemoryState):
    """Rooms, their members and contacts."""

    # ---- rooms ----------------------------------------------------------------------------
    async def create_room(
        self,
        name: str,
        password_hash: bytes | None,
        creator: str,
        now_ms: int,
        listed: bool = False,
        roster: RosterAppend | None = None,
    ) -> Room:
        self._user(creator)
        if name in self._rooms:
            raise rules.room_taken(name)
        room = Room(name, password_hash, creator, now_ms, listed, roster is not None)
        self._rooms[name] = room
        self._members[name] = {creator: now_ms}
        self._joined_seq[(name, creator)] = 0
        if roster is not None:
            self._rosters[name] = [(roster.event, roster.event_hash)]
            self._roster_states[name] = roster.state
        return room

    async def get_room(self, name: str) -> Room | None:
        return self._rooms.get(name)

    def _summary(self, room: Room, user: str) -> RoomSummary:
        members = self._members[room.name]
        return RoomSummary(
            room.name, len(members), room.protected, user in members, room.created_at_ms
        )

    async def list_rooms(self, for_user: str) -> list[RoomSummary]:
        return [
            self._summary(room, for_user)
            for room in sorted(self._rooms.values(), key=lambda r: r.name)
        ]

    async def list_visible_rooms(self, user: str, after: str, limit: int) -> list[RoomSummary]:
        rules.check_page(limit)
        visible = [
            room
            for room in self._rooms.values()
            if room.name > after
            and (not room.protected or room.listed or user in self._members[room.name])
        ]
        visible.sort(key=lambda r: r.name)
        return [self._summary(room, user) for room in visible[:limit]]

    async def room_summary(self, name: str, user: str) -> RoomSummary | None:
        room = self._rooms.get(name)
        return None if room is None else self._summary(room, user)

    async def count_rooms_created_by(self, user: str) -> int:
        return sum(1 for room in self._rooms.values() if room.created_by == user)

    async def add_member(self, room: str, user: str, now_ms: int) -> bool:
        if room not in self._rooms:
            raise rules.room_not_found(room)
        self._user(user)
        members = self._members[room]
        if user in members:
            return False
        members[user] = now_ms
        self._joined_seq[(room, user)] = self._room_heads.get(room, 0)
        return True

    async def remove_member(self, room: str, user: str) -> bool:
        if user not in self._members.get(room, {}):
            return False
        self._leave(room, user)
        return True

    async def is_member(self, room: str, user: str) -> bool:
        return user in self._members.get(room, {})

    async def room_members(self, room: str) -> list[str]:
        return sorted(self._members.get(room, {}))

    async def room_devices(self, room: str) -> list[DeviceRef]:
        members = self._members.get(room, {})
        return sorted(
            (ref for ref in self._devices if ref.user in members),
            key=lambda r: (r.user, r.device_id),
        )

    async def rooms_of(self, user: str) -> list[str]:
        return sorted(name for name, members in self._members.items() if user in members)

    async def record_contact(self, a: str, b: str, now_ms: int) -> None:
        pair = rules.contact_pair(a, b)
        self._user(pair[0])
        self._user(pair[1])
        self._contacts.add(pair)

    async def private_contacts_of(self, user: str) -> set[str]:
        found = {b for a, b in self._contacts if a == user}
        found.update(a for a, b in self._contacts if b == user)
        return found

    async def contacts_of(self, user: str) -> set[str]:
        found = {u for m in self._members.values() if user in m for u in m}
        found.update(b for a, b in self._contacts if a == user)
        found.update(a for a, b in self._contacts if b == user)
        found.discard(user)
        return found
