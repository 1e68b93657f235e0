"""Mapping between protobuf messages and domain values (both directions)."""

from __future__ import annotations

from securechat.domain.events import MembershipChanged, PresenceChanged, RosterAppended
from securechat.domain.model import (
    Conversation,
    ConversationKind,
    DeviceRef,
    MailboxEntry,
    RoomEntry,
    RoomSummary,
)
from securechat.errors import StaleDevices
from securechat.services.stream_events import (
    Opened,
    OutEvent,
    Pong,
    ReconnectHint,
    SendAccepted,
    SendRejected,
)
from securechat.transport import fields, wire
from securechat.transport.errors import retry_after_s
from securechat_proto.v1 import chat_pb2, common_pb2, rooms_pb2

Items = list[tuple[DeviceRef, bytes]]


def conversation_from_proto(message: common_pb2.Conversation) -> Conversation | None:
    """The conversation a send names; None when it names none (the service refuses that)."""
    kind = message.WhichOneof("kind")
    if kind == "room":
        return Conversation(ConversationKind.ROOM, message.room)
    if kind == "user":
        return Conversation(ConversationKind.DIRECT, message.user)
    return None


def conversation_to_proto(conversation: Conversation) -> common_pb2.Conversation:
    if conversation.kind is ConversationKind.ROOM:
        return common_pb2.Conversation(room=conversation.name)
    return common_pb2.Conversation(user=conversation.name)


def device_to_proto(device: DeviceRef) -> common_pb2.DeviceAddress:
    return common_pb2.DeviceAddress(user=device.user, device_id=device.device_id)


def send_from_proto(
    request: chat_pb2.SendRequest,
) -> tuple[Conversation | None, Items, str, bytes]:
    """(conversation, [(recipient device, ciphertext)], client_message_id, room_message); a
    ciphertext without a device has an empty user, which the service refuses."""
    items = [
        (
            DeviceRef(
                item.device.user, fields.device_id(item.device.device_id, "ciphertexts.device")
            ),
            item.ciphertext,
        )
        for item in request.ciphertexts
    ]
    return (
        conversation_from_proto(request.conversation),
        items,
        request.client_message_id,
        request.room_message,
    )


def delivery_to_proto(entry: MailboxEntry) -> chat_pb2.Delivery:
    return chat_pb2.Delivery(
        seq=entry.seq,
        message_id=entry.message_id,
        sender=device_to_proto(entry.sender),
        conversation=conversation_to_proto(entry.conversation),
        ciphertext=entry.ciphertext,
        sent_at_ms=entry.sent_at_ms,
    )


def room_delivery_to_proto(entry: RoomEntry) -> chat_pb2.Delivery:
    return chat_pb2.Delivery(
        message_id=entry.message_id,
        sender=device_to_proto(entry.sender),
        conversation=common_pb2.Conversation(room=entry.room),
        ciphertext=entry.ciphertext,
        sent_at_ms=entry.sent_at_ms,
        room_seq=entry.room_seq,
    )


def any_delivery_to_proto(entry: MailboxEntry | RoomEntry) -> chat_pb2.Delivery:
    if isinstance(entry, RoomEntry):
        return room_delivery_to_proto(entry)
    return delivery_to_proto(entry)


def room_to_proto(room: RoomSummary) -> rooms_pb2.RoomInfo:
    return rooms_pb2.RoomInfo(
        name=room.name,
        member_count=room.member_count,
        protected=room.protected,
        member=room.member,
        created_at_ms=room.created_at_ms,
    )


def send_result(outcome: SendAccepted | SendRejected) -> chat_pb2.SendResult:
    if isinstance(outcome, SendAccepted):
        return chat_pb2.SendResult(
            client_message_id=outcome.client_message_id,
            accepted=True,
            message_id=outcome.message_id,
            server_time_ms=outcome.server_time_ms,
            duplicate=outcome.duplicate,
            full_devices=[device_to_proto(device) for device in outcome.full],
            room_seq=outcome.room_seq,
        )
    error = outcome.error
    result = chat_pb2.SendResult(
        client_message_id=outcome.client_message_id,
        accepted=False,
        error_code=error.code,
        error_message=error.message,
        retry_after_s=retry_after_s(error) or 0,
    )
    if isinstance(error, StaleDevices):
        result.current_devices.extend(
            device_to_proto(DeviceRef(user, device)) for user, device in error.devices
        )
    return result


def encode_frame(batch: list[OutEvent]) -> bytes:
    """One serialised ServerFrame: deliveries hand-encoded (the hot path), the rest by protobuf."""
    return wire.frame([_part(event) for event in batch])


def _part(event: OutEvent) -> bytes:
    if type(event) is RoomEntry:
        return wire.room_delivery_part(event)
    if type(event) is MailboxEntry:
        return wire.frame_part(wire.delivery_event(event))
    return wire.frame_part(event_to_proto(event).SerializeToString())


def event_to_proto(event: OutEvent) -> chat_pb2.ServerEvent:
    if isinstance(event, MailboxEntry):
        return chat_pb2.ServerEvent(delivery=delivery_to_proto(event))
    if isinstance(event, RoomEntry):
        return chat_pb2.ServerEvent(delivery=room_delivery_to_proto(event))
    if isinstance(event, RosterAppended):
        return chat_pb2.ServerEvent(
            roster=chat_pb2.RosterEvent(room=event.room, sequence=event.sequence, event=event.event)
        )
    if isinstance(event, SendAccepted | SendRejected):
        return chat_pb2.ServerEvent(send_result=send_result(event))
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
    if isinstance(event, Pong):
        return chat_pb2.ServerEvent(
            pong=chat_pb2.Pong(
                client_time_ms=event.client_time_ms, server_time_ms=event.server_time_ms
            )
        )
    if isinstance(event, Opened):
        return chat_pb2.ServerEvent(
            opened=chat_pb2.StreamOpened(
                device=device_to_proto(event.device),
                pending=event.pending,
                server_time_ms=event.server_time_ms,
            )
        )
    assert isinstance(event, ReconnectHint)
    return chat_pb2.ServerEvent(
        reconnect=chat_pb2.ReconnectHint(retry_after_ms=event.retry_after_ms, reason=event.reason)
    )
