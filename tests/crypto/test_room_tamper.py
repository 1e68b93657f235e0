"""Single-bit tampering of a roster event, distribution or room message always fails, harmlessly."""

from __future__ import annotations

from dataclasses import replace

import pytest

from securechat.crypto.account import Address
from securechat.crypto.room_message import RoomMessage
from securechat.crypto.roster import Roster
from securechat.crypto.roster_event import RosterEvent
from securechat.errors import DecryptionError, RosterRejected

from ._rooms import ROOM, RoomWorld
from ._support import NOW, flip_bit

ALICE = Address("alice", 1)


def protected_room() -> RoomWorld:
    world = RoomWorld()
    world.create("alice", password="room password")
    world.join("bob", password="room password")
    return world


def test_every_bit_of_a_create_event_is_protected() -> None:
    world = protected_room()
    create = world.events[0]
    for bit in range(len(create) * 8):
        with pytest.raises(RosterRejected):
            Roster.from_events(ROOM, [flip_bit(create, bit)])


def test_every_bit_of_a_protected_join_is_protected() -> None:
    world = protected_room()
    join = world.events[1]
    assert RosterEvent.parse(join).proof is not None
    roster, _ = Roster.from_events(ROOM, world.events[:1])
    before = roster.to_bytes()
    for bit in range(len(join) * 8):
        with pytest.raises(RosterRejected):
            roster.apply(flip_bit(join, bit))
    assert roster.to_bytes() == before
    roster.apply(join)


def test_every_bit_of_a_distribution_is_protected() -> None:
    world = protected_room()
    alice, bob = world.device("alice"), world.device("bob")
    plan = alice.k.prepare_send(alice.r, [ALICE, bob.address], now=NOW, accepted=world.lookup)
    before = bob.k.to_bytes()
    for bit in range(len(plan.distribution) * 8):
        with pytest.raises(DecryptionError):
            bob.k.receive_distribution(
                bob.r, ALICE, flip_bit(plan.distribution, bit), now=NOW, accepted=world.lookup
            )
    assert bob.k.to_bytes() == before
    assert bob.k.receive_distribution(
        bob.r, ALICE, plan.distribution, now=NOW, accepted=world.lookup
    )


def test_every_bit_of_a_room_message_is_protected() -> None:
    world = protected_room()
    message = world.send("alice", b"tamper with me")
    bob = world.device("bob")
    before = bob.k.to_bytes()
    for bit in range(len(message) * 8):
        with pytest.raises(DecryptionError):
            bob.k.decrypt(bob.r, flip_bit(message, bit), now=NOW, accepted=world.lookup)
    assert bob.k.to_bytes() == before
    assert world.open("bob", message) == b"tamper with me"


def test_the_header_is_bound_by_the_aead_as_well_as_the_signature() -> None:
    world = protected_room()
    world.send("alice", b"warm up")
    world.join("carol", password="room password")
    message = RoomMessage.parse(world.send("alice", b"for the newest roster"))
    chain = world.device("alice").k.sending
    assert chain is not None
    older = RosterEvent.parse(world.events[1])
    moved = replace(message.header, version=replace(message.header.version, sequence=1))
    moved = replace(moved, version=replace(moved.version, head=older.hash()))
    unsigned = replace(message, header=moved)
    resigned = replace(unsigned, signature=chain.signing.sign(unsigned._signed()))
    bob = world.device("bob")
    with pytest.raises(DecryptionError):
        bob.k.decrypt(bob.r, resigned.to_bytes(), now=NOW, accepted=world.lookup)
    assert world.open("bob", message.to_bytes()) == b"for the newest roster"
