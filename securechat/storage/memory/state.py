"""The in-memory store's state: every dictionary, and the look-ups the concepts share.

Each concept (accounts.py, devices.py, rooms.py, room_log.py, mailbox.py) is a mixin over
``MemoryState``; ``MemoryStore`` (``__init__.py``) combines them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from securechat.domain.mailbox import (
    SendKey,
    Usage,
)
from securechat.domain.model import (
    AccountRecord,
    Device,
    DeviceRef,
    Invite,
    KemPreKeyRecord,
    LinkSlot,
    MailboxEntry,
    OneTimePreKeyRecord,
    PreKeyCounts,
    Room,
    RoomEntry,
    Session,
    SignedPreKeyRecord,
    User,
)
from securechat.storage import rules
from securechat.storage.room_trim import RoomTrimmer


@dataclass(slots=True)
class DeviceState:
    device: Device
    last_seq: int = 0
    signed_prekey: SignedPreKeyRecord | None = None
    one_time: dict[int, OneTimePreKeyRecord] = field(default_factory=dict)
    kem: dict[int, KemPreKeyRecord] = field(default_factory=dict)
    mailbox: dict[int, MailboxEntry] = field(default_factory=dict)

    def counts(self) -> PreKeyCounts:
        kem = sum(1 for k in self.kem.values() if not k.last_resort)
        return PreKeyCounts(one_time=len(self.one_time), kem_one_time=kem)


class MemoryState:
    """Every dictionary of the store, and the look-ups the concepts share."""

    def __init__(self) -> None:
        self._users: dict[str, User] = {}
        self._last_device_id: dict[str, int] = {}
        self._sessions: dict[bytes, Session] = {}
        self._devices: dict[DeviceRef, DeviceState] = {}
        self._rooms: dict[str, Room] = {}
        self._members: dict[str, dict[str, int]] = {}  # room -> user -> joined_at_ms
        self._contacts: set[tuple[str, str]] = set()
        self._revocations: dict[str, tuple[str, str, int]] = {}
        self._invites: dict[bytes, tuple[Invite, str | None]] = {}
        self._accounts: dict[str, AccountRecord] = {}
        self._removals: dict[str, dict[tuple[int, bytes], tuple[bytes, int]]] = {}
        self._links: dict[tuple[str, str, LinkSlot], tuple[bytes, int]] = {}
        self._sent: dict[SendKey, tuple[str, int]] = {}  # -> (message_id, sent_at_ms)
        self._rosters: dict[str, list[tuple[bytes, bytes]]] = {}  # room -> [(event, hash)]
        self._roster_states: dict[str, bytes] = {}
        self._room_logs: dict[str, dict[int, RoomEntry]] = {}
        self._room_heads: dict[str, int] = {}  # room -> last_room_seq
        self._joined_seq: dict[tuple[str, str], int] = {}  # (room, user) -> log head at join
        self._room_acks: dict[tuple[DeviceRef, str], int] = {}
        self._trimmer = RoomTrimmer()

    def _user(self, name: str) -> User:
        if name not in self._users:
            raise rules.user_not_found(name)
        return self._users[name]

    def _drop_sessions(self, doomed: Callable[[Session], bool]) -> int:
        keys = [k for k, s in self._sessions.items() if doomed(s)]
        for key in keys:
            del self._sessions[key]
        return len(keys)

    def _device(self, device: DeviceRef) -> DeviceState:
        state = self._devices.get(device)
        if state is None:
            raise rules.device_not_found(device)
        return state

    def _leave(self, room: str, user: str) -> None:
        self._members[room].pop(user, None)
        self._joined_seq.pop((room, user), None)
        for key in [k for k in self._room_acks if k[1] == room and k[0].user == user]:
            del self._room_acks[key]

    def _mailbox(self, device: DeviceRef) -> dict[int, MailboxEntry]:
        state = self._devices.get(device)
        return {} if state is None else state.mailbox

    def _usage(self, device: DeviceRef) -> Usage:
        entries = self._mailbox(device).values()
        return Usage(len(entries), sum(len(e.ciphertext) for e in entries))
