"""Signed rosters and the stored-once room logs in memory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from securechat.domain.model import (
    DeviceRef,
    PendingSend,
    RoomEntry,
    RosterAppend,
    RosterHead,
)
from securechat.storage import rules
from securechat.storage.memory.state import MemoryState
from securechat.storage.room_trim import Reader, trim_bound
from securechat.storage.rules import MAX_ROSTER_PAGE, page_end


def post_room_messages(state: MemoryState, stored: Sequence[PendingSend]) -> list[RoomEntry | None]:
    """Give each stored send's room message the next position of its room (inside the
    commit, as room_log_tx.post does)."""
    posted: list[RoomEntry | None] = []
    for send in stored:
        post = send.room_post
        if post is None:
            posted.append(None)
            continue
        seq = state._room_heads.get(post.room, 0) + 1
        state._room_heads[post.room] = seq
        entry = RoomEntry(
            post.room, seq, send.message_id, send.sender, bytes(post.ciphertext),
            send.sent_at_ms,
        )  # fmt: skip
        state._room_logs.setdefault(post.room, {})[seq] = entry
        posted.append(entry)
    return posted


class RoomLogMemory(MemoryState):
    """Signed rosters, the stored-once room logs, device positions and log trimming."""

    # ---- signed rosters and room logs ------------------------------------------------------
    async def roster_head(self, room: str) -> RosterHead | None:
        if room not in self._rooms:
            return None
        events = self._rosters.get(room, [])
        head = events[-1][1] if events else b""
        return RosterHead(len(events), head, self._roster_states.get(room, b""))

    async def append_roster_event(self, change: RosterAppend) -> bool:
        room = change.room
        if room not in self._rooms:
            raise rules.room_not_found(room)
        for joining in (change.only, change.add):
            if joining:
                self._user(joining)
        events = self._rosters.setdefault(room, [])
        if len(events) != change.sequence:
            return False
        events.append((change.event, change.event_hash))
        self._roster_states[room] = change.state
        self._rooms[room] = replace(self._rooms[room], signed=True)
        if change.set_password:
            self._rooms[room] = replace(self._rooms[room], password_hash=change.password_hash)
        members = self._members[room]
        if change.only:
            for user in [u for u in members if u != change.only]:
                self._leave(room, user)
        for joining in (change.only, change.add):
            if joining and joining not in members:
                members[joining] = change.now_ms
                self._joined_seq[(room, joining)] = self._room_heads.get(room, 0)
        if change.remove:
            self._leave(room, change.remove)
        return True

    async def roster_events(self, room: str, from_sequence: int, limit: int) -> list[bytes]:
        if not 1 <= limit <= MAX_ROSTER_PAGE:
            raise rules.bad_roster_page(limit, MAX_ROSTER_PAGE)
        events = self._rosters.get(room, [])
        return [event for event, _ in events[from_sequence : from_sequence + limit]]

    async def last_room_seq(self, room: str) -> int:
        if room not in self._rooms:
            raise rules.room_not_found(room)
        return self._room_heads.get(room, 0)

    async def fetch_room(
        self, room: str, after_room_seq: int, limit: int, max_bytes: int = 0
    ) -> list[RoomEntry]:
        rules.check_limit(limit)
        log = self._room_logs.get(room, {})
        found = [log[seq] for seq in sorted(log) if seq > after_room_seq][:limit]
        if max_bytes and found:
            end = page_end([(e.room_seq, len(e.ciphertext)) for e in found], max_bytes)
            found = [e for e in found if e.room_seq <= end]
        return found

    async def room_message_seq(self, room: str, message_id: str, sent_at_ms: int) -> int:
        for entry in self._room_logs.get(room, {}).values():
            if entry.message_id == message_id and entry.sent_at_ms == sent_at_ms:
                return entry.room_seq
        return 0

    async def room_starts(self, device: DeviceRef) -> dict[str, int]:
        state = self._devices.get(device)
        created = state.device.created_at_ms if state is not None else 0
        starts = {}
        for room, members in self._members.items():
            if device.user not in members:
                continue
            before = [seq for seq, e in self._room_logs.get(room, {}).items()
                      if e.sent_at_ms < created]  # fmt: skip
            starts[room] = max(
                self._joined_seq.get((room, device.user), 0),
                self._room_acks.get((device, room), 0),
                max(before, default=0),
            )
        return starts

    async def ack_rooms(self, acks: Sequence[tuple[DeviceRef, str, int]]) -> None:
        for device, room, seq in acks:
            key = (device, room)
            self._room_acks[key] = max(seq, self._room_acks.get(key, 0))

    # ---- trimming the logs (room_trim.py) -------------------------------------------------
    async def trim_room_logs(self, batch: int, budget: int) -> int:
        return await self._trimmer.run(
            self._logged_rooms, self._trim_bound, self._trim_batch, batch, budget
        )

    async def _logged_rooms(self, after: str) -> list[str]:
        return sorted(room for room, log in self._room_logs.items() if log and room > after)

    async def _trim_bound(self, room: str) -> int:
        log = self._room_logs.get(room, {})
        members = self._members.get(room, {})
        readers = [
            Reader(
                ref,
                max(self._joined_seq.get((room, ref.user), 0), self._room_acks.get((ref, room), 0)),
                state.device.created_at_ms,
            )
            for ref, state in self._devices.items()
            if ref.user in members
        ]

        async def first_needed(reader: Reader, after: int, upto: int) -> int | None:
            needed = (
                seq
                for seq, entry in log.items()
                if after < seq <= upto
                and entry.sender != reader.device
                and entry.sent_at_ms >= reader.created_at_ms
            )
            return min(needed, default=None)

        if not log:
            return 0
        head = self._room_heads.get(room, 0)
        return await trim_bound(readers, head, first_needed, lowest=min(log))

    async def _trim_batch(self, room: str, bound: int, limit: int) -> int:
        """One "transaction": the lowest ``limit`` rows of the room at or below ``bound``."""
        log = self._room_logs.get(room, {})
        doomed = sorted(seq for seq in log if seq <= bound)[:limit]
        for seq in doomed:
            del log[seq]
        return len(doomed)
