"""The Bus contract: every adapter delivers events to every node and agrees on who is online."""

from __future__ import annotations

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
from tests.bus.conftest import NodeFactory, eventually

ALICE1, ALICE2, BOB1 = DeviceRef("alice", 1), DeviceRef("alice", 2), DeviceRef("bob", 1)


def every_kind_of_event() -> list[BusEvent]:
    room = Conversation(ConversationKind.ROOM, "lobby")
    direct = Conversation(ConversationKind.DIRECT, "alice")
    return [
        Delivered(
            (
                MailboxEntry(BOB1, 7, "m1", ALICE1, room, bytes(range(256)), 1_700_000_000_000),
                MailboxEntry(ALICE2, 3, "m1", ALICE1, direct, b"\x00" * 70_000, 1),
            )
        ),
        Delivered(()),
        RoomPosted(RoomEntry("lobby", 42, "m2", ALICE2, bytes(range(200)), 9)),
        RosterAppended("lobby", 3, bytes(range(180)), ("alice", "bob"), ("bob",), ()),
        RosterAppended("den", 0, b"e", ("carol",), (), ("alice", "dave")),
        PresenceChanged("alice", True, 123, ("bob", "carol")),
        PresenceChanged("alice", False, 124, ()),
        MembershipChanged("lobby", "carol", MembershipKind.IDENTITY_CHANGED, 5, ("alice",)),
        MembershipChanged("", "alice", MembershipKind.DEVICE_REMOVED, 6, ("alice", "bob")),
        UserKicked("bob", "spam \u2603"),
        DeviceRemoved(ALICE2),
        SessionEnded(bytes(range(32))),
        CertificateRevoked("ab:cd", "0f"),
    ]


async def test_publish_reaches_the_publishing_node(nodes: NodeFactory) -> None:
    node = await nodes("n1")
    for event in every_kind_of_event():
        await node.bus.publish(event)
    assert node.events == every_kind_of_event()


async def test_events_reach_every_other_node_intact(nodes: NodeFactory) -> None:
    a, b = await nodes("n1"), await nodes("n2")
    for event in every_kind_of_event():
        await a.bus.publish(event)
    await b.bus.publish(UserKicked("carol", "from b"))
    expected = [*every_kind_of_event(), UserKicked("carol", "from b")]
    await eventually(lambda: len(b.events) == len(expected) and len(a.events) == len(expected))
    kick = UserKicked("carol", "from b")
    for node in (a, b):  # exactly once, in each publisher's order (no order across nodes)
        assert [e for e in node.events if e != kick] == every_kind_of_event()
        assert node.events.count(kick) == 1


async def test_presence_first_and_last_device(nodes: NodeFactory) -> None:
    bus = (await nodes("n1")).bus
    assert await bus.mark_online(ALICE1, 100) is True
    assert await bus.mark_online(ALICE2, 200) is False  # alice was already online
    assert await bus.mark_online(ALICE1, 300) is False  # a second stream of the same device
    assert await bus.mark_offline(ALICE1) is False
    assert await bus.mark_offline(ALICE1) is False  # alice still has device 2
    assert [(o.device, o.since_ms) for o in await bus.online()] == [(ALICE2, 200)]
    assert await bus.mark_offline(ALICE2) is True
    assert await bus.mark_offline(ALICE2) is False  # unknown device: nothing changes
    assert await bus.online() == []


async def test_online_lists_every_device_with_its_node(nodes: NodeFactory) -> None:
    node = await nodes("n1")
    await node.bus.mark_online(ALICE1, 100)
    await node.bus.mark_online(BOB1, 150)
    found = sorted(
        (o.device.user, o.device.device_id, o.node, o.since_ms) for o in await node.bus.online()
    )
    assert found == [("alice", 1, "n1", 100), ("bob", 1, "n1", 150)]


async def test_presence_spans_nodes(nodes: NodeFactory) -> None:
    a, b = await nodes("n1"), await nodes("n2")
    assert await a.bus.mark_online(ALICE1, 100) is True
    assert await b.bus.mark_online(ALICE2, 200) is False  # online on n1 already
    assert await b.bus.mark_online(BOB1, 300) is True
    for bus in (a.bus, b.bus):
        found = sorted((o.device.user, o.device.device_id, o.node) for o in await bus.online())
        assert found == [("alice", 1, "n1"), ("alice", 2, "n2"), ("bob", 1, "n2")]
    assert await a.bus.mark_offline(ALICE1) is False  # still on n2
    assert await b.bus.mark_offline(ALICE2) is True  # the last device anywhere
    assert [o.device for o in await a.bus.online()] == [BOB1]


async def test_a_closed_node_leaves_at_once(nodes: NodeFactory) -> None:
    a, b = await nodes("n1"), await nodes("n2")
    await a.bus.mark_online(ALICE1, 100)
    await a.bus.close()
    assert await b.bus.online() == []
    assert await b.bus.mark_online(ALICE2, 200) is True
