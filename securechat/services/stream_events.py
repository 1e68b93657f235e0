"""What a Chat stream says to its client: one small typed event per kind, and how it ends.

The stream's queue holds mailbox entries and bus events as they are, plus the events below; the
transport converts each to its protobuf form when it writes a frame (transport/convert.py). None
of them carries protobuf or an untyped payload.

A stream ends with an :data:`Ending`: a :class:`~securechat.errors.SecureChatError` (the
transport sends its status, message and ``securechat-error`` trailer), or :class:`Closed` when
the client itself half-closed or went away and there is nothing left to tell it.
"""

from __future__ import annotations

from dataclasses import dataclass

from securechat.domain.events import MembershipChanged, PresenceChanged, RosterAppended
from securechat.domain.model import DeviceRef, MailboxEntry, RoomEntry
from securechat.errors import SecureChatError


@dataclass(frozen=True, slots=True)
class Opened:
    """The first event of every stream: it is attached; ``pending`` entries are replayed next."""

    device: DeviceRef
    pending: int
    server_time_ms: int


@dataclass(frozen=True, slots=True)
class SendAccepted:
    """A stream send was stored in every recipient's mailbox (except ``full`` ones, over a
    quota); ``duplicate``: stored before, this is the first copy's result. ``room_seq``: the
    room message's position in its room's log (a sender-key send)."""

    client_message_id: str
    message_id: str
    server_time_ms: int
    duplicate: bool = False
    full: tuple[DeviceRef, ...] = ()
    room_seq: int = 0


@dataclass(frozen=True, slots=True)
class SendRejected:
    """A stream send was refused and nothing was stored; the stream goes on."""

    client_message_id: str
    error: SecureChatError


@dataclass(frozen=True, slots=True)
class Pong:
    client_time_ms: int
    server_time_ms: int


@dataclass(frozen=True, slots=True)
class ReconnectHint:
    """The server is going away: reconnect (to any node) after ``retry_after_ms``."""

    retry_after_ms: int
    reason: str


@dataclass(frozen=True, slots=True)
class Closed:
    """A graceful ending: the client closed its side or its connection is gone."""

    reason: str


# Everything queued for a stream that is not a mailbox entry.
Notification = (
    PresenceChanged
    | MembershipChanged
    | RosterAppended
    | Opened
    | SendAccepted
    | SendRejected
    | Pong
    | ReconnectHint
)
OutEvent = MailboxEntry | RoomEntry | Notification
Ending = SecureChatError | Closed

# What one event can take on the wire at most besides its variable parts: tags, lengths,
# sequence numbers, times, ids and one 32-character name or two (checked in the transport tests).
EVENT_OVERHEAD = 256
DEVICE_BYTES = 48  # one DeviceAddress in a list


def wire_size(event: OutEvent) -> int:
    """An upper bound of the event's encoded size, to bound batches in bytes without encoding."""
    if type(event) is MailboxEntry or type(event) is RoomEntry:
        return EVENT_OVERHEAD + len(event.ciphertext)
    if isinstance(event, RosterAppended):
        return EVENT_OVERHEAD + len(event.event)
    if isinstance(event, SendRejected):
        devices = len(getattr(event.error, "devices", ()))
        return EVENT_OVERHEAD + len(event.error.message.encode()) + DEVICE_BYTES * devices
    if isinstance(event, SendAccepted):
        return EVENT_OVERHEAD + DEVICE_BYTES * len(event.full)
    if isinstance(event, ReconnectHint):
        return EVENT_OVERHEAD + len(event.reason.encode())
    return EVENT_OVERHEAD
