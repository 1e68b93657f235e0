"""The wire form of bus events between nodes: a JSON header plus a raw binary tail.

One frame carries a batch of events published by one node::

    u32 big-endian header length | header (UTF-8 JSON) | ciphertexts, concatenated

The header is ``[version, origin_node, [event, ...]]``; each event is a short list tagged by its
first element. Ciphertexts are not base64-encoded: a Delivered entry records its ciphertext's
length and the bytes follow the header in order. Unknown tags are skipped (a newer node may send
events an older one does not know), so nodes can be upgraded one at a time.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from securechat.domain.events import (
    BusEvent,
    CertificateRevoked,
    Delivered,
    DeviceRemoved,
    MembershipChanged,
    MembershipKind,
    PresenceChanged,
    RoomPosted,
    RosterAppended,
    SessionEnded,
    UserKicked,
)
from securechat.domain.model import (
    Conversation,
    ConversationKind,
    DeviceRef,
    MailboxEntry,
    RoomEntry,
)
from securechat.errors import InvalidArgument

VERSION = 1
_LEN = struct.Struct(">I")
#: A control tag (not a BusEvent): "the sender may have lost events; re-read your mailboxes".
RESYNC = "Z"


@dataclass(frozen=True, slots=True)
class Frame:
    origin: str
    events: tuple[BusEvent, ...]
    resync: bool = False


def _entry_header(entry: MailboxEntry) -> list[object]:
    conversation = entry.conversation
    return [
        entry.recipient.user,
        entry.recipient.device_id,
        entry.seq,
        entry.message_id,
        entry.sender.user,
        entry.sender.device_id,
        conversation.kind.value,
        conversation.name,
        len(entry.ciphertext),
        entry.sent_at_ms,
    ]


def _room_entry_header(entry: RoomEntry) -> list[object]:
    return [
        entry.room,
        entry.room_seq,
        entry.message_id,
        entry.sender.user,
        entry.sender.device_id,
        len(entry.ciphertext),
        entry.sent_at_ms,
    ]


def _room_entry(fields: list[object], data: memoryview, offset: int) -> tuple[RoomEntry, int]:
    (room, room_seq, message_id, suser, sdev, size, sent_at) = fields
    assert isinstance(size, int)
    end = offset + size
    if end > len(data):
        raise ValueError("frame truncated")
    entry = RoomEntry(
        room=str(room),
        room_seq=int(room_seq),  # type: ignore[call-overload]
        message_id=str(message_id),
        sender=DeviceRef(str(suser), int(sdev)),  # type: ignore[call-overload]
        ciphertext=bytes(data[offset:end]),
        sent_at_ms=int(sent_at),  # type: ignore[call-overload]
    )
    return entry, end


def _event_header(event: BusEvent, blobs: list[bytes]) -> list[object]:
    if isinstance(event, Delivered):
        blobs.extend(entry.ciphertext for entry in event.entries)
        return ["D", [_entry_header(entry) for entry in event.entries]]
    if isinstance(event, RoomPosted):
        blobs.append(event.entry.ciphertext)
        return ["Q", _room_entry_header(event.entry)]
    if isinstance(event, RosterAppended):
        return ["E", event.room, event.sequence, event.event.hex(), list(event.audience),
                list(event.joined), list(event.left)]  # fmt: skip
    if isinstance(event, PresenceChanged):
        return ["P", event.user, event.online, event.at_ms, list(event.audience)]
    if isinstance(event, MembershipChanged):
        return ["M", event.room, event.user, int(event.kind), event.at_ms, list(event.audience)]
    if isinstance(event, UserKicked):
        return ["K", event.user, event.reason]
    if isinstance(event, DeviceRemoved):
        return ["X", event.device.user, event.device.device_id]
    if isinstance(event, SessionEnded):
        return ["S", event.token_hash.hex()]
    if isinstance(event, CertificateRevoked):
        return ["R", event.fingerprint, event.serial_hex]
    raise InvalidArgument(f"cannot encode bus event {type(event).__name__}")  # pragma: no cover


def encode(origin: str, events: Iterable[BusEvent], *, resync: bool = False) -> bytes:
    """One frame for a batch of events (``resync`` adds the control tag)."""
    blobs: list[bytes] = []
    headers = [_event_header(event, blobs) for event in events]
    if resync:
        headers.append([RESYNC])
    header = json.dumps([VERSION, origin, headers], separators=(",", ":")).encode()
    return b"".join([_LEN.pack(len(header)), header, *blobs])


def _entry(fields: list[object], data: memoryview, offset: int) -> tuple[MailboxEntry, int]:
    (ruser, rdev, seq, message_id, suser, sdev, kind, name, size, sent_at) = fields
    assert isinstance(size, int)
    end = offset + size
    if end > len(data):
        raise ValueError("frame truncated")
    entry = MailboxEntry(
        recipient=DeviceRef(str(ruser), int(rdev)),  # type: ignore[call-overload]
        seq=int(seq),  # type: ignore[call-overload]
        message_id=str(message_id),
        sender=DeviceRef(str(suser), int(sdev)),  # type: ignore[call-overload]
        conversation=Conversation(ConversationKind(str(kind)), str(name)),
        ciphertext=bytes(data[offset:end]),
        sent_at_ms=int(sent_at),  # type: ignore[call-overload]
    )
    return entry, end


def decode(raw: bytes) -> Frame:
    """Parse one frame; raises ValueError (or KeyError/TypeError) on a malformed one."""
    data = memoryview(raw)
    if len(data) < _LEN.size:
        raise ValueError("frame too short")
    (length,) = _LEN.unpack_from(data)
    offset = _LEN.size + length
    if offset > len(data):
        raise ValueError("frame truncated")
    version, origin, headers = json.loads(bytes(data[_LEN.size : offset]))
    if version != VERSION:
        raise ValueError(f"unsupported frame version {version!r}")
    events: list[BusEvent] = []
    resync = False
    for header in headers:
        tag, args = header[0], header[1:]
        if tag == "D":
            entries = []
            for fields in args[0]:
                entry, offset = _entry(fields, data, offset)
                entries.append(entry)
            events.append(Delivered(tuple(entries)))
        elif tag == "Q":
            posted, offset = _room_entry(args[0], data, offset)
            events.append(RoomPosted(posted))
        elif tag == "E":
            room, sequence, event, audience, joined, left = args
            events.append(
                RosterAppended(str(room), int(sequence), bytes.fromhex(event), tuple(audience),
                               tuple(joined), tuple(left))
            )  # fmt: skip
        elif tag == "P":
            user, online, at_ms, audience = args
            events.append(PresenceChanged(user, bool(online), int(at_ms), tuple(audience)))
        elif tag == "M":
            room, user, kind, at_ms, audience = args
            events.append(
                MembershipChanged(room, user, MembershipKind(kind), int(at_ms), tuple(audience))
            )
        elif tag == "K":
            events.append(UserKicked(str(args[0]), str(args[1])))
        elif tag == "X":
            events.append(DeviceRemoved(DeviceRef(str(args[0]), int(args[1]))))
        elif tag == "S":
            events.append(SessionEnded(bytes.fromhex(args[0])))
        elif tag == "R":
            events.append(CertificateRevoked(str(args[0]), str(args[1])))
        elif tag == RESYNC:
            resync = True
        # else: an event kind this node does not know yet; skip it.
    return Frame(str(origin), tuple(events), resync)
