"""The hand-encoded frames parse back, with the generated classes, to exactly what protobuf
would have produced."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from securechat.domain.model import (
    Conversation,
    ConversationKind,
    DeviceRef,
    MailboxEntry,
    RoomEntry,
)
from securechat.transport import convert, wire
from securechat_proto.v1 import chat_pb2

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-é", min_size=0, max_size=40)
devices = st.builds(DeviceRef, names, st.integers(0, 2**32 - 1))
conversations = st.builds(Conversation, st.sampled_from(list(ConversationKind)), names)
entries = st.builds(
    MailboxEntry,
    recipient=devices,
    seq=st.integers(0, 2**63 - 1),
    message_id=names,
    sender=devices,
    conversation=conversations,
    ciphertext=st.binary(max_size=3000),
    sent_at_ms=st.integers(0, 2**62),
)


@given(st.lists(entries, max_size=8))
def test_hand_encoded_deliveries_equal_protobufs(batch: list[MailboxEntry]) -> None:
    parsed = chat_pb2.ServerFrame.FromString(convert.encode_frame(list(batch)))
    expected = chat_pb2.ServerFrame(
        events=[chat_pb2.ServerEvent(delivery=convert.delivery_to_proto(e)) for e in batch]
    )
    assert parsed == expected


room_entries = st.builds(
    RoomEntry,
    room=names,
    room_seq=st.integers(1, 2**63 - 1),
    message_id=names,
    sender=devices,
    ciphertext=st.binary(min_size=1, max_size=3000),
    sent_at_ms=st.integers(0, 2**62),
)


@given(st.lists(st.one_of(entries, room_entries), max_size=8))
def test_room_deliveries_encoded_once_equal_protobufs_for_every_member(
    batch: list[MailboxEntry | RoomEntry],
) -> None:
    """A room message's frame part is cached for its other members: the second encoding (from
    the cache) is the same protobuf as the first."""
    expected = chat_pb2.ServerFrame(events=[convert.event_to_proto(e) for e in batch])
    first = convert.encode_frame(list(batch))
    again = convert.encode_frame(list(batch))
    assert chat_pb2.ServerFrame.FromString(first) == expected
    assert again == first


def test_a_room_message_is_encoded_once_for_all_its_members() -> None:
    entry = RoomEntry("lobby", 7, "m1", DeviceRef("ann", 1), b"sealed", 1_700_000_000_000)
    wire.room_delivery_part.cache_clear()
    frames = {convert.encode_frame([entry]) for _ in range(9)}
    info = wire.room_delivery_part.cache_info()
    assert len(frames) == 1
    assert (info.misses, info.hits) == (1, 8)


def test_varint_matches_protobuf_for_boundaries() -> None:
    for value in (0, 1, 127, 128, 300, 2**32, 2**63 - 1):
        parsed = chat_pb2.Delivery.FromString(b"\x08" + wire.varint(value))
        assert parsed.seq == value
