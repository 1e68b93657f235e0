"""Mapping between protobuf messages and domain values (both directions)."""

from __future__ import annotations

from securechat.domain.events import MembershipChanged, PresenceChanged
from securechat.domain.model import (
    Conversation,
    ConversationKind,
    DeviceRef,
    MailboxEntry,
    RoomSummary,
)
from securechat.errors import InvalidArgument
from securechat.services.messaging import Accepted
from securechat.services.stream import Control, OutEvent
from securechat.transport import wire
from securechat_proto.v1 import chat_pb2, common_pb2, rooms_pb2


def conversation_from_proto(message: common_pb2.Conversation) -> Conversation:
    kind = message.WhichOneof("kind")
    if kind == "room":
        return Conversation(ConversationKind.ROOM, message.room)
    if kind == "user":
        return Conversation(ConversationKind.DIRECT, message.user)
    raise InvalidArgument("the send names no conversation: set conversation.room or .user")


def conversation_to_proto(conversation: Conversation) -> common_pb2.Conversation:
    if conversation.kind is ConversationKind.ROOM:
        return common_pb2.Conversation(room=conversation.name)
    return common_pb2.Conversation(user=conversation.name)


def device_to_proto(device: DeviceRef) -> common_pb2.DeviceAddress:
    return common_pb2.DeviceAddress(user=device.user, device_id=device.device_id)


def items_from_proto(request: chat_pb2.SendRequest) -> list[tuple[DeviceRef, bytes]]:
    items = []
    for item in request.ciphertexts:
        if not item.HasField("device") or not item.device.user:
            raise InvalidArgument("every ciphertext needs a recipient device")
        items.append((DeviceRef(item.device.user, item.device.device_id), item.ciphertext))
    return items


def delivery_to_proto(entry: MailboxEntry) -> chat_pb2.Delivery:
    return chat_pb2.Delivery(
        seq=entry.seq,
        message_id=entry.message_id,
        sender=device_to_proto(entry.sender),
        conversation=conversation_to_proto(entry.conversation),
        ciphertext=entry.ciphertext,
        sent_at_ms=entry.sent_at_ms,
    )


def room_to_proto(room: RoomSummary) -> rooms_pb2.RoomInfo:
    return rooms_pb2.RoomInfo(
        name=room.name,
        member_count=room.member_count,
        protected=room.protected,
        member=room.member,
        created_at_ms=room.created_at_ms,
    )


def accepted_to_proto(client_message_id: str, accepted: Accepted) -> chat_pb2.SendResult:
    return chat_pb2.SendResult(
        client_message_id=client_message_id,
        accepted=True,
        message_id=accepted.message_id,
        server_time_ms=accepted.server_time_ms,
    )


def encode_frame(batch: list[OutEvent]) -> bytes:
    """One serialised ServerFrame: deliveries hand-encoded (the hot path), the rest by protobuf."""
    return wire.frame(
        [
            wire.delivery_event(event)
            if isinstance(event, MailboxEntry)
            else event_to_proto(event).SerializeToString()
            for event in batch
        ]
    )


def event_to_proto(event: OutEvent) -> chat_pb2.ServerEvent:
    if isinstance(event, MailboxEntry):
        return chat_pb2.ServerEvent(delivery=delivery_to_proto(event))
    if isinstance(event, PresenceChanged):
        return chat_pb2.ServerEvent(
            presence=chat_pb2.PresenceChange(
                user=event.user, online=event.online, at_ms=event.at_ms
            )
        )
    if isinstance(event, MembershipChanged):
        return chat_pb2.ServerEvent(
            membership=chat_pb2.MembershipChange(
                room=event.room,
                user=event.user,
                kind=chat_pb2.MembershipChange.Kind.ValueType(int(event.kind)),
                at_ms=event.at_ms,
            )
        )
    return control_to_proto(event)


def control_to_proto(event: Control) -> chat_pb2.ServerEvent:
    payload = event.payload
    if event.kind == "send_result":
        assert isinstance(payload, chat_pb2.SendResult)
        return chat_pb2.ServerEvent(send_result=payload)
    if event.kind == "pong":
        assert isinstance(payload, chat_pb2.Pong)
        return chat_pb2.ServerEvent(pong=payload)
    if event.kind == "opened":
        assert isinstance(payload, chat_pb2.StreamOpened)
        return chat_pb2.ServerEvent(opened=payload)
    if event.kind == "reconnect":
        assert isinstance(payload, tuple)
        retry_after_ms, reason = payload
        return chat_pb2.ServerEvent(
            reconnect=chat_pb2.ReconnectHint(retry_after_ms=retry_after_ms, reason=reason)
        )
    assert isinstance(payload, str)
    return chat_pb2.ServerEvent(notice=chat_pb2.Notice(level=chat_pb2.Notice.INFO, text=payload))
