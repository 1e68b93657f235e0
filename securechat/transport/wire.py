"""Hand-encoded ServerFrame bytes for the fan-out hot path.

A room message becomes one Delivery per recipient device, each written to a different stream.
Building protobuf objects for each and serialising them cost more server CPU than anything else
on that path, so a Delivery is encoded straight to bytes here: the part every recipient shares
(message id, sender, conversation, time) is encoded once per message and cached, and a frame is a
join of length-prefixed events. A room message is the same event for every member device, so its
whole frame part is encoded once and shared by the member streams' writers (a small cache: the
writers take it within moments of the fan-out). The output is ordinary protobuf (tests parse it
back with the generated classes and compare); other, rarer events are serialised by protobuf
itself.
"""

from __future__ import annotations

from functools import lru_cache

from securechat.domain.model import (
    Conversation,
    ConversationKind,
    DeviceRef,
    MailboxEntry,
    RoomEntry,
)

# Field tags (field number << 3 | wire type) from protos/securechat/v1/{common,chat}.proto.
_FRAME_EVENTS = 0x0A  # ServerFrame.events = 1, length-delimited
_EVENT_DELIVERY = 0x12  # ServerEvent.delivery = 2
_SEQ = 0x08  # Delivery.seq = 1, varint
_MESSAGE_ID = 0x12  # Delivery.message_id = 2
_SENDER = 0x1A  # Delivery.sender = 3
_CONVERSATION = 0x22  # Delivery.conversation = 4
_CIPHERTEXT = 0x2A  # Delivery.ciphertext = 5
_SENT_AT = 0x30  # Delivery.sent_at_ms = 6, varint
_ROOM_SEQ = 0x38  # Delivery.room_seq = 7, varint
_ADDRESS_USER = 0x0A  # DeviceAddress.user = 1
_ADDRESS_DEVICE = 0x10  # DeviceAddress.device_id = 2, varint
_CONVERSATION_ROOM = 0x0A  # Conversation.room = 1
_CONVERSATION_USER = 0x12  # Conversation.user = 2


def varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return bytes((tag,)) + varint(len(payload)) + payload


def _address(device: DeviceRef) -> bytes:
    body = field(_ADDRESS_USER, device.user.encode()) if device.user else b""
    if device.device_id:
        body += bytes((_ADDRESS_DEVICE,)) + varint(device.device_id)
    return body


def _conversation(conversation: Conversation) -> bytes:
    tag = _CONVERSATION_ROOM if conversation.kind is ConversationKind.ROOM else _CONVERSATION_USER
    return field(tag, conversation.name.encode())


@lru_cache(maxsize=8192)
def _shared(message_id: str, sender: DeviceRef, conversation: Conversation, sent_at: int) -> bytes:
    """The part of a Delivery that is the same for every recipient of one message."""
    out = field(_MESSAGE_ID, message_id.encode()) if message_id else b""
    out += field(_SENDER, _address(sender))
    out += field(_CONVERSATION, _conversation(conversation))
    if sent_at:
        out += bytes((_SENT_AT,)) + varint(sent_at)
    return out


def delivery_event(entry: MailboxEntry) -> bytes:
    """A ServerEvent{delivery} for one mailbox entry, serialised."""
    body = bytes((_SEQ,)) + varint(entry.seq) if entry.seq else b""
    body += _shared(entry.message_id, entry.sender, entry.conversation, entry.sent_at_ms)
    if entry.ciphertext:
        body += field(_CIPHERTEXT, entry.ciphertext)
    return field(_EVENT_DELIVERY, body)


def room_delivery_event(entry: RoomEntry) -> bytes:
    """A ServerEvent{delivery} for one room message (seq 0, its position in ``room_seq``): the
    same bytes for every member device of the room."""
    conversation = Conversation(ConversationKind.ROOM, entry.room)
    body = _shared(entry.message_id, entry.sender, conversation, entry.sent_at_ms)
    body += field(_CIPHERTEXT, entry.ciphertext)
    body += bytes((_ROOM_SEQ,)) + varint(entry.room_seq)
    return field(_EVENT_DELIVERY, body)


# Room messages whose frame part is kept: enough for the fan-out of the latest messages to reach
# every member's writer (a miss only encodes again); at most this many × chat.max_message_bytes.
ROOM_PARTS_CACHED = 64


def frame_part(event: bytes) -> bytes:
    """One serialised ServerEvent as a part of a ServerFrame (its ``events`` field)."""
    return field(_FRAME_EVENTS, event)


@lru_cache(maxsize=ROOM_PARTS_CACHED)
def room_delivery_part(entry: RoomEntry) -> bytes:
    """``frame_part(room_delivery_event(entry))``, encoded once for all the room's members."""
    return frame_part(room_delivery_event(entry))


def frame(parts: list[bytes]) -> bytes:
    """A ServerFrame from its parts (``frame_part``, ``room_delivery_part``)."""
    return b"".join(parts)
