"""Events that travel between server nodes over the Bus and out to Chat streams."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from securechat.domain.model import DeviceRef, MailboxEntry, RoomEntry


@dataclass(frozen=True, slots=True)
class Delivered:
    """Entries just stored in mailboxes; nodes push them to the recipients' live streams."""

    entries: tuple[MailboxEntry, ...]


@dataclass(frozen=True, slots=True)
class RoomPosted:
    """A room message just stored once in its room's log; nodes push it to the live streams of
    the room's member devices (each as a position in the room, not a copy per device)."""

    entry: RoomEntry


@dataclass(frozen=True, slots=True)
class RosterAppended:
    """A signed roster event just stored with its membership change. Streams of ``audience``
    (the members after the event and anyone it removed) get the event; streams of ``joined``
    users start following the room's log, those of ``left`` users stop."""

    room: str
    sequence: int
    event: bytes
    audience: tuple[str, ...]
    joined: tuple[str, ...] = ()
    left: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    user: str
    online: bool
    at_ms: int
    # Users to tell (those sharing a room or a private conversation with ``user``).
    audience: tuple[str, ...]


class MembershipKind(enum.IntEnum):
    JOINED = 1
    LEFT = 2
    DEVICE_ADDED = 3
    IDENTITY_CHANGED = 4
    DEVICE_REMOVED = 5


@dataclass(frozen=True, slots=True)
class MembershipChanged:
    room: str
    user: str
    kind: MembershipKind
    at_ms: int
    audience: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UserKicked:
    """End every stream of the user; ``reason`` is shown to them as is."""

    user: str
    reason: str


@dataclass(frozen=True, slots=True)
class DeviceRemoved:
    """A device left its account (removed, or a reset): its streams end, its sessions are gone."""

    device: DeviceRef


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """A session was logged out: streams opened with it end."""

    token_hash: bytes


@dataclass(frozen=True, slots=True)
class CertificateRevoked:
    fingerprint: str
    serial_hex: str


@dataclass(frozen=True, slots=True)
class Resync:
    """Local only, never published: a bus adapter may have lost notifications (it was cut off
    from its broker), so every live stream re-reads its mailbox."""


BusEvent = (
    Delivered
    | RoomPosted
    | RosterAppended
    | PresenceChanged
    | MembershipChanged
    | UserKicked
    | DeviceRemoved
    | SessionEnded
    | CertificateRevoked
    | Resync
)


@dataclass(frozen=True, slots=True)
class OnlineDevice:
    device: DeviceRef
    node: str
    since_ms: int
