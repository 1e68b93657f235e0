"""The rooms labels are unique, versioned and distinct from every other label."""

from __future__ import annotations

from securechat.crypto import labels


def test_room_labels_are_unique_versioned_and_new() -> None:
    every = (*labels.ALL_LABELS, *labels.ROOM_LABELS)
    assert len(set(every)) == len(every)
    for label in labels.ROOM_LABELS:
        assert label.startswith(labels.PROTOCOL_PREFIX)
        assert len(label) > len(labels.PROTOCOL_PREFIX)
    constants = {
        value for name, value in vars(labels).items() if name.isupper() and isinstance(value, bytes)
    }
    room_block = {value for value in constants if b"room" in value or b"roster" in value}
    room_block |= {labels.SENDER_KEY_DISTRIBUTION}
    assert room_block == set(labels.ROOM_LABELS)
