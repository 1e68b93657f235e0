"""The byte bound of a batch holds on the wire: every event encodes to at most the size the
stream counts for it (services/stream_events.wire_size), even with the longest names and ids."""

from __future__ import annotations

import pytest

from securechat.domain.events import MembershipChanged, MembershipKind, PresenceChanged
from securechat.domain.model import Conversation, ConversationKind, DeviceRef, MailboxEntry
from securechat.errors import InvalidArgument, MailboxFull, StaleDevices
from securechat.services.stream_events import (
    Opened,
    OutEvent,
    Pong,
    ReconnectHint,
    SendAccepted,
    SendRejected,
    wire_size,
)
from securechat.transport.convert import encode_frame

NAME = "n" * 32  # the longest user or room name
SEQ = 2**63 - 1
TIME = 2**62
CLIENT_ID = "c" * 64  # the longest client message id
DEVICE = DeviceRef(NAME, 2**31 - 1)
DEVICES = [(f"{NAME[:-4]}{i:04d}", 2**31 - 1) for i in range(1000)]

EVENTS: list[OutEvent] = [
    MailboxEntry(
        DEVICE,
        SEQ,
        "f" * 24,
        DEVICE,
        Conversation(ConversationKind.ROOM, NAME),
        b"x" * 65_536,
        TIME,
    ),
    MailboxEntry(
        DEVICE, SEQ, "f" * 24, DEVICE, Conversation(ConversationKind.DIRECT, NAME), b"", TIME
    ),
    SendAccepted(CLIENT_ID, "f" * 24, TIME, True, tuple(DeviceRef(u, d) for u, d in DEVICES)),
    SendRejected(CLIENT_ID, StaleDevices(DEVICES)),
    SendRejected(CLIENT_ID, MailboxFull("x" * 2000, retry_after=60)),
    SendRejected(CLIENT_ID, InvalidArgument("y" * 300)),
    PresenceChanged(NAME, True, TIME, (NAME,)),
    MembershipChanged(NAME, NAME, MembershipKind.IDENTITY_CHANGED, TIME, (NAME,)),
    Opened(DEVICE, SEQ, TIME),
    Pong(-1, TIME),
    ReconnectHint(2**32 - 1, "z" * 500),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_an_event_is_never_bigger_on_the_wire_than_counted(event: OutEvent) -> None:
    assert len(encode_frame([event])) <= wire_size(event)


def test_a_batch_is_never_bigger_than_its_events_counted() -> None:
    assert len(encode_frame(EVENTS)) <= sum(wire_size(e) for e in EVENTS)
