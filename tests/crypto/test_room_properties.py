"""Hypothesis: room messages decrypt exactly once in any order; rosters accept one order only."""

from __future__ import annotations

from random import Random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from securechat.crypto.room_membership import join_event
from securechat.crypto.roster import Roster, RosterRelation
from securechat.errors import DecryptionError, RosterRejected

from ._rooms import ROOM, RoomWorld, account_key, public
from ._support import NOW

SENDERS = ("alice", "carol")
USERS = ("bob", "carol", "dave", "erin")


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[dict[str, int], list[tuple[str, int]]]:
    """How many messages each sender sends, and a delivery schedule with drops and duplicates."""
    counts = {sender: draw(st.integers(1, 8)) for sender in SENDERS}
    slots = st.sampled_from([(s, i) for s in SENDERS for i in range(counts[s])])
    return counts, draw(st.lists(slots, max_size=24))


@given(deliveries())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_delivered_room_message_decrypts_exactly_once(
    plan: tuple[dict[str, int], list[tuple[str, int]]],
) -> None:
    counts, schedule = plan
    world = RoomWorld()
    world.create("alice")
    world.join("bob")
    world.join("carol")
    sent = {
        sender: [world.send(sender, f"{sender} {i}".encode()) for i in range(count)]
        for sender, count in counts.items()
    }
    bob = world.device("bob")
    opened: set[tuple[str, int]] = set()
    for sender, index in schedule:
        message = sent[sender][index]
        if (sender, index) in opened:
            with pytest.raises(DecryptionError):
                bob.k.decrypt(bob.r, message, now=NOW, accepted=world.lookup)
        else:
            assert (
                bob.k.decrypt(bob.r, message, now=NOW, accepted=world.lookup).plaintext
                == f"{sender} {index}".encode()
            )
            opened.add((sender, index))


def histories() -> st.SearchStrategy[list[int]]:
    """Choices among the operations valid at each step (see :func:`play`)."""
    return st.lists(st.integers(0, 1 << 16), min_size=3, max_size=14)


def valid_operations(world: RoomWorld) -> list[tuple[str, str, str]]:
    roster = world.any_roster()
    members = roster.members
    admins = [user for user, member in members.items() if member.admin]
    operations = [("join", user, user) for user in USERS if user not in members]
    for user in members:
        if admins != [user] or len(members) == 1:
            operations.append(("leave", user, user))
        for admin in admins:
            if user != admin:
                operations.append(("remove", admin, user))
            if not members[user].admin:
                operations.append(("admin", admin, user))
            elif len(admins) > 1:
                operations.append(("unadmin", admin, user))
    return operations


def play(choices: list[int]) -> RoomWorld:
    """A room history made of valid membership operations picked by ``choices``."""
    world = RoomWorld()
    world.create("alice")
    for choice in choices:
        if world.any_roster_or_none() is None:
            break  # the last member left: the room is closed
        operations = valid_operations(world)
        kind, actor, subject = operations[choice % len(operations)]
        if kind == "join":
            world.join(actor)
        elif kind == "leave":
            world.leave(actor)
        elif kind == "remove":
            world.remove(actor, subject)
        else:
            world.make_admin(actor, subject, make_admin=kind == "admin")
    return world


@given(histories(), st.randoms(use_true_random=False))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_roster_accepts_its_events_in_one_order_only(script: list[int], random: Random) -> None:
    world = play(script)
    events = world.events
    roster, _ = Roster.from_events(ROOM, events)
    assert roster.to_bytes().startswith(b"SCRS")
    assert roster.version.sequence == len(events) - 1
    if len(events) < 3:
        return
    order = list(range(1, len(events)))
    random.shuffle(order)
    if order == sorted(order):
        order[0], order[1] = order[1], order[0]
    replay, _ = Roster.from_events(ROOM, events[:1])
    for position, index in enumerate(order, start=1):
        if index != position:
            before = replay.to_bytes()
            with pytest.raises(RosterRejected):
                replay.apply(events[index])
            assert replay.to_bytes() == before
            break
        replay.apply(events[index])
    else:  # pragma: no cover - the order is never the identity
        raise AssertionError("a reordered history was accepted")


@given(histories(), st.sampled_from(USERS), st.sampled_from(USERS))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_two_valid_events_at_one_position_are_a_visible_fork(
    script: list[int], first: str, second: str
) -> None:
    world = play(script)
    base = world.events
    left, _ = Roster.from_events(ROOM, base)
    right, _ = Roster.from_events(ROOM, base)
    if left.closed or first == second or left.is_member(first) or left.is_member(second):
        return
    world.pins.update({first: public(first), second: public(second)})
    to_left = join_event(left, account_key(first), first, public(first))
    to_right = join_event(right, account_key(second), second, public(second))
    left.apply(to_left)
    right.apply(to_right)
    assert left.relation(right.version) is RosterRelation.FORKED
    assert right.relation(left.version) is RosterRelation.FORKED
    with pytest.raises(RosterRejected):
        left.apply(to_right)
    with pytest.raises(RosterRejected):
        right.apply(to_left)
