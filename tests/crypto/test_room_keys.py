"""Sender keys: one ciphertext per room message, distribution, limits, rotation, bad input."""

from __future__ import annotations

from dataclasses import replace

import pytest

from securechat.crypto.account import Address
from securechat.crypto.room_keys import (
    MAX_SKIPPED_PER_ROOM,
    ROTATE_AFTER_MESSAGES,
    ROTATE_AFTER_SECONDS,
    RoomKeys,
    RotationReason,
    needs_rotation,
)
from securechat.crypto.room_membership import join_event
from securechat.crypto.room_message import (
    ChainPosition,
    RoomMessage,
    SenderKeyDistribution,
    distribution_conversation,
    peek_room_message,
)
from securechat.crypto.roster import RosterRelation
from securechat.crypto.roster_event import RosterVersion
from securechat.crypto.sender_chain import (
    MAX_FORWARD_JUMP,
    MAX_SKIPPED_PER_CHAIN,
    RESERVED_ITERATIONS,
    SKIPPED_KEY_LIFETIME,
    SendingChain,
)
from securechat.errors import DecryptionError, InvalidArgument

from ._rooms import RoomWorld, account_key, open_room, public
from ._support import NOW, paired

ALICE, BOB, CAROL = Address("alice", 1), Address("bob", 1), Address("carol", 1)


def refused(world: RoomWorld, user: str, message: bytes, *, now: int = NOW) -> None:
    device = world.device(user)
    before = device.k.to_bytes()
    with pytest.raises(DecryptionError):
        device.k.decrypt(device.r, message, now=now, accepted=world.lookup)
    assert device.k.to_bytes() == before


def test_one_ciphertext_opens_for_every_member_exactly_once() -> None:
    world = open_room("bob", "carol")
    message = world.send("alice", b"hello room")
    for user in ("bob", "carol"):
        opened = world.device(user).k.decrypt(
            world.device(user).r, message, now=NOW, accepted=world.lookup
        )
        assert opened.plaintext == b"hello room"
        assert opened.sender == ALICE
        assert opened.relation is RosterRelation.SAME
        refused(world, user, message)
    assert len(world.send("alice", b"hello room")) == len(message)


def test_the_distribution_is_sent_once_per_chain() -> None:
    world = open_room("bob")
    device = world.device("alice")
    world.send("alice", b"one")
    plan = device.k.prepare_send(device.r, [ALICE, BOB], now=NOW, accepted=world.lookup)
    assert plan.rotated is None
    assert plan.recipients == []
    assert plan.distribution == b""  # nothing to sign or send in the steady state


def test_messages_out_of_order_within_the_limits_open() -> None:
    world = open_room("bob")
    sent = [world.send("alice", f"m{i}".encode()) for i in range(5)]
    for index in (3, 0, 4, 1, 2):
        assert world.open("bob", sent[index]) == f"m{index}".encode()
    for message in sent:
        refused(world, "bob", message)


def send_at(world: RoomWorld, user: str, iteration: int, text: bytes) -> bytes:
    """A message at ``iteration`` of the sender's current chain, bypassing the rotation policy."""
    device = world.device(user)
    chain = device.k.sending
    assert chain is not None
    while chain.iteration < iteration:
        chain.next_message_key()
    number, key = chain.next_message_key()
    header = ChainPosition(world.room, device.r.version, device.address, chain.chain_id, number)
    return RoomMessage.seal(header, key, chain, text).to_bytes()


def test_a_skip_beyond_the_limit_fails_and_changes_nothing() -> None:
    world = open_room("bob")
    first = world.send("alice", b"first")
    far = send_at(world, "alice", MAX_FORWARD_JUMP + 1, b"far")
    refused(world, "bob", far)  # bob is at iteration 0: a jump of MAX_FORWARD_JUMP + 1
    assert world.open("bob", first) == b"first"
    assert world.open("bob", far) == b"far"  # from iteration 1 it is exactly the limit


def test_stored_skipped_keys_are_bounded_per_chain_and_expire() -> None:
    world = open_room("bob")
    sent = [world.send("alice", b"x") for _ in range(3)]
    assert world.open("bob", sent[2]) == b"x"
    receiving = world.device("bob").k.receiving_chains(ALICE)[0]
    assert sorted(receiving.skipped) == [0, 1]
    assert world.open("bob", sent[1], now=NOW + SKIPPED_KEY_LIFETIME) == b"x"
    refused(world, "bob", sent[0], now=NOW + SKIPPED_KEY_LIFETIME + 1)
    # From a chain holding 2 skipped keys at position 3, fill the store exactly...
    _, full = receiving.message_key(3 + MAX_SKIPPED_PER_CHAIN - 2, NOW)
    assert len(full.skipped) == MAX_SKIPPED_PER_CHAIN
    # ...after which a message that would store one more key fails.
    with pytest.raises(DecryptionError):
        full.message_key(full.next_iteration + 1, NOW)
    assert full.message_key(full.next_iteration, NOW)[1].next_iteration == full.next_iteration + 1


def test_skipped_keys_are_bounded_per_room_dropping_the_oldest() -> None:
    senders = ["alice", "carol", "dave", "erin", "frank", "grace"]
    world = open_room("bob", *senders[1:])
    jump = 900
    for offset, sender in enumerate(senders):
        world.send(sender, b"first (never delivered to bob)")
        later = send_at(world, sender, jump, b"later")
        assert world.open("bob", later, now=NOW + offset) == b"later"
    counts = {
        user: len(world.device("bob").k.receiving_chains(Address(user, 1))[0].skipped)
        for user in senders
    }
    assert sum(counts.values()) == MAX_SKIPPED_PER_ROOM
    dropped = len(senders) * jump - MAX_SKIPPED_PER_ROOM
    assert counts["alice"] == jump - dropped
    assert all(counts[user] == jump for user in senders[1:])


def test_a_message_signed_with_a_key_not_distributed_is_refused() -> None:
    world = open_room("bob")
    genuine = world.send("alice", b"genuine")
    receiving = world.device("bob").k.receiving_chains(ALICE)[0]
    # The server (or anyone) makes a chain of its own under alice's name and chain id.
    rogue = SendingChain.create(world.device("bob").r.version, now=NOW)
    rogue.chain_id = receiving.chain_id
    rogue.iteration = 1
    header = peek_room_message(genuine)
    forged_header = replace(header, iteration=1)
    _, key = rogue.next_message_key()
    forged = RoomMessage.seal(forged_header, key, rogue, b"forged").to_bytes()
    refused(world, "bob", forged)
    # The genuine ciphertext re-signed by another key is refused too.
    parsed = RoomMessage.parse(genuine)
    resigned = replace(parsed, signature=rogue.signing.sign(parsed._signed())).to_bytes()
    refused(world, "bob", resigned)
    assert world.open("bob", genuine) == b"genuine"


def test_a_message_from_a_removed_member_for_an_old_version_is_refused() -> None:
    world = open_room("bob", "carol")
    world.send("carol", b"while a member")
    old_version = world.device("carol").r.version
    late = world.send("carol", b"sent before the removal")
    world.remove("alice", "carol")
    assert peek_room_message(late).version == old_version
    refused(world, "bob", late)
    assert world.device("bob").k.receiving_chains(CAROL) == []


def test_a_removed_member_cannot_read_the_next_message() -> None:
    world = open_room("bob", "carol")
    world.send("alice", b"before")
    carol = world.device("carol")
    carol_keys, carol_roster = RoomKeys.from_bytes(carol.k.to_bytes()), carol.r
    world.remove("alice", "carol")
    after = world.send("alice", b"after")
    assert world.open("bob", after) == b"after"
    with pytest.raises(DecryptionError):
        carol_keys.decrypt(carol_roster, after, now=NOW, accepted=world.lookup)


def test_senders_rotate_on_every_removal_and_receivers_enforce_it() -> None:
    world = open_room("bob", "carol")
    world.send("alice", b"before")
    alice = world.device("alice")
    old_chain = alice.k.sending
    assert old_chain is not None
    world.leave("carol")
    assert needs_rotation(old_chain, alice.r, NOW) is RotationReason.MEMBER_REMOVED
    # A sender that kept its old chain after the removal is refused by receivers.
    iteration, key = old_chain.next_message_key()
    header = ChainPosition("lobby", alice.r.version, ALICE, old_chain.chain_id, iteration)
    refused(world, "bob", RoomMessage.seal(header, key, old_chain, b"stale chain").to_bytes())
    fresh = world.send("alice", b"after")
    assert alice.k.sending is not None
    assert alice.k.sending.chain_id != old_chain.chain_id
    assert world.open("bob", fresh) == b"after"


def test_rotation_after_a_bounded_number_of_messages_or_days_or_a_lost_device() -> None:
    world = open_room("bob")
    world.send("alice", b"one")
    alice = world.device("alice")
    chain = alice.k.sending
    assert chain is not None
    assert needs_rotation(chain, alice.r, NOW + ROTATE_AFTER_SECONDS - 1) is None
    assert needs_rotation(chain, alice.r, NOW + ROTATE_AFTER_SECONDS) is RotationReason.AGE_LIMIT
    assert needs_rotation(chain, alice.r, NOW, [ALICE]) is RotationReason.DEVICE_REMOVED
    assert needs_rotation(None, alice.r, NOW) is RotationReason.NO_CHAIN
    chain.iteration = ROTATE_AFTER_MESSAGES
    assert needs_rotation(chain, alice.r, NOW) is RotationReason.MESSAGE_LIMIT
    plan = alice.k.prepare_send(alice.r, [ALICE, BOB], now=NOW, accepted=world.lookup)
    assert plan.rotated is RotationReason.MESSAGE_LIMIT
    assert plan.recipients == [BOB]
    diverged = replace(chain, made_for=RosterVersion(0, bytes(32)))
    assert needs_rotation(diverged, alice.r, NOW) is RotationReason.ROSTER_DIVERGED


def test_after_a_keystore_rollback_the_sending_chain_is_never_reused() -> None:
    world = open_room("bob")
    alice = world.device("alice")
    assert world.open("bob", world.send("alice", b"one")) == b"one"
    saved = alice.k.to_bytes()  # holds the reserved position, past "one"
    for n in range(RESERVED_ITERATIONS):  # the reservation runs out and moves on
        assert world.open("bob", world.send("alice", b"two %d" % n)) == b"two %d" % n
    alice.keys = RoomKeys.from_bytes(saved)  # a restored copy: a used position again
    refused(world, "bob", alice.k.encrypt(alice.r, b"three", now=NOW, accepted=world.lookup))
    alice.keys = RoomKeys.from_bytes(saved)
    alice.k.forget_sending_chain()  # what the keystore's rollback check must trigger
    assert world.open("bob", world.send("alice", b"three")) == b"three"


def test_the_chain_is_saved_once_per_reservation_and_a_crash_never_reuses_an_iteration() -> None:
    world = open_room("bob")
    alice = world.device("alice")
    saves, saved, opened, iterations = 0, b"", [], set()
    for n in range(3 * RESERVED_ITERATIONS + 5):
        if n in (7, 40, 41, 90):  # killed: only what was saved survives
            alice.keys = RoomKeys.from_bytes(saved)
        message = world.send("alice", b"m%d" % n)
        if alice.k.unsaved:  # the client saves the keystore before the message leaves
            saved = alice.k.to_bytes()
            alice.k.saved()
            saves += 1
        iterations.add(peek_room_message(message).iteration)
        opened.append(world.open("bob", message))
    assert opened == [b"m%d" % n for n in range(3 * RESERVED_ITERATIONS + 5)]
    assert len(iterations) == len(opened)  # no iteration used twice
    # one save for the fresh chain and its first reservation, one per reservation run out, and
    # one after each of the four restarts; not one per message
    assert saves <= 3 + 4 + 1
    assert saves < len(opened) // 10


def test_encrypt_requires_membership_and_a_current_chain() -> None:
    world = open_room("bob")
    alice = world.device("alice")
    with pytest.raises(InvalidArgument, match="prepare_send"):
        alice.k.encrypt(alice.r, b"no chain yet", now=NOW, accepted=world.lookup)
    world.send("alice", b"ok")
    with pytest.raises(InvalidArgument, match="prepare_send"):
        alice.k.encrypt(alice.r, b"too old", now=NOW + ROTATE_AFTER_SECONDS, accepted=world.lookup)
    world.leave("bob")
    bob = world.device("bob")
    with pytest.raises(InvalidArgument, match="not a member"):
        bob.k.prepare_send(bob.r, [ALICE], now=NOW, accepted=world.lookup)


def test_a_distribution_from_a_device_that_is_not_a_member_is_refused() -> None:
    world = open_room("bob")
    world.device("mallory")
    mallory = RoomKeys("lobby", Address("mallory", 1))
    bob = world.device("bob")
    chain = SendingChain.create(bob.r.version, now=NOW)
    mallory.sending = chain
    data = SenderKeyDistribution.of(chain, "lobby", mallory.own, bob.r.version).to_bytes()
    before = bob.k.to_bytes()
    with pytest.raises(DecryptionError):
        bob.k.receive_distribution(bob.r, mallory.own, data, now=NOW, accepted=world.lookup)
    assert bob.k.to_bytes() == before


def test_a_distribution_must_match_its_pairwise_sender_room_and_roster() -> None:
    world = open_room("bob", "carol")
    alice, bob = world.device("alice"), world.device("bob")
    plan = alice.k.prepare_send(alice.r, [ALICE, BOB], now=NOW, accepted=world.lookup)
    parsed = SenderKeyDistribution.parse(plan.distribution)
    chain = alice.k.sending
    assert chain is not None
    other_room = SenderKeyDistribution.of(chain, "other", ALICE, parsed.position.version).to_bytes()
    forked = SenderKeyDistribution.of(chain, "lobby", ALICE, RosterVersion(2, bytes(32)))
    newer = SenderKeyDistribution.of(chain, "lobby", ALICE, RosterVersion(9, bytes(32)))
    before = bob.k.to_bytes()
    for sender, data in [
        (CAROL, plan.distribution),  # relayed by another member's session
        (BOB, plan.distribution),
        (ALICE, other_room),
        (ALICE, forked.to_bytes()),
        (ALICE, newer.to_bytes()),
        (ALICE, plan.distribution[:-1]),
    ]:
        with pytest.raises(DecryptionError):
            bob.k.receive_distribution(bob.r, sender, data, now=NOW, accepted=world.lookup)
    assert bob.k.to_bytes() == before
    assert bob.k.receive_distribution(
        bob.r, ALICE, plan.distribution, now=NOW, accepted=world.lookup
    )
    assert not bob.k.receive_distribution(
        bob.r, ALICE, plan.distribution, now=NOW, accepted=world.lookup
    )
    swapped = SendingChain.create(parsed.position.version, now=NOW)
    swapped.chain_id = parsed.position.chain_id
    clash = SenderKeyDistribution.of(swapped, "lobby", ALICE, parsed.position.version).to_bytes()
    with pytest.raises(DecryptionError):
        bob.k.receive_distribution(bob.r, ALICE, clash, now=NOW, accepted=world.lookup)


def test_a_new_member_reads_only_from_its_join_on() -> None:
    world = open_room("bob")
    before = [world.send("alice", b"before carol") for _ in range(3)]
    world.join("carol")
    after = world.send("alice", b"after carol")
    receiving = world.device("carol").k.receiving_chains(ALICE)[0]
    assert receiving.next_iteration == 3
    for message in before:
        refused(world, "carol", message)
    assert world.open("carol", after) == b"after carol"
    assert world.open("bob", after) == b"after carol"


def test_a_join_not_yet_shown_gets_no_keys_and_a_ghost_never_does() -> None:
    world = open_room("bob")
    alice = world.device("alice")
    world.send("alice", b"hi")
    world.join("carol")
    alice.r.shown_count = alice.r.version.sequence  # alice's client has not shown the join yet
    ghost = Address("ghost", 1)  # listed by the server, in no signed event
    plan = alice.k.prepare_send(alice.r, [ALICE, BOB, CAROL, ghost], now=NOW, accepted=world.lookup)
    assert plan.recipients == []
    assert plan.ignored == [CAROL, ghost]
    alice.r.mark_shown(alice.r.version.sequence)
    plan = alice.k.prepare_send(alice.r, [ALICE, BOB, CAROL, ghost], now=NOW, accepted=world.lookup)
    assert plan.recipients == [CAROL]
    assert plan.ignored == [ghost]


def test_the_senders_other_devices_get_the_chain_too() -> None:
    world = open_room("bob")
    laptop = world.device("alice", 2)
    world._sync(laptop)  # alice's linked device verifies the roster as well
    message = world.send("alice", b"to bob and my laptop")
    assert world.open("alice", message, device_id=2) == b"to bob and my laptop"
    assert world.open("bob", message) == b"to bob and my laptop"
    refused(world, "alice", message)  # the sending device has no receiving chain of its own


def test_an_older_roster_version_is_reported() -> None:
    world = open_room("bob")
    message = world.send("alice", b"sent before dave joined")
    world.join("dave")
    opened = world.device("bob").k.decrypt(
        world.device("bob").r, message, now=NOW, accepted=world.lookup
    )
    assert opened.relation is RosterRelation.OLDER


def test_members_shown_different_rosters_see_the_fork_and_refuse() -> None:
    world = open_room("bob")
    assert world.open("bob", world.send("alice", b"before the fork")) == b"before the fork"
    alice, bob = world.device("alice"), world.device("bob")
    world.pins.update(carol=public("carol"), dave=public("dave"))
    alice.r.apply(join_event(alice.r, account_key("carol"), "carol", public("carol")))
    bob.r.apply(join_event(bob.r, account_key("dave"), "dave", public("dave")))
    message = alice.k.encrypt(alice.r, b"after the fork", now=NOW, accepted=world.lookup)
    assert bob.r.relation(peek_room_message(message).version) is RosterRelation.FORKED
    refused(world, "bob", message)
    alice.r.mark_shown(2)
    plan = alice.k.prepare_send(alice.r, [ALICE, BOB], now=NOW, accepted=world.lookup)
    assert plan.recipients == []  # bob already has the chain; a fresh one would not be accepted
    fresh = SendingChain.create(alice.r.version, now=NOW)
    data = SenderKeyDistribution.of(fresh, "lobby", ALICE, alice.r.version).to_bytes()
    with pytest.raises(DecryptionError):
        bob.k.receive_distribution(bob.r, ALICE, data, now=NOW, accepted=world.lookup)


def test_a_distribution_travels_inside_a_pairwise_envelope_bound_to_the_room() -> None:
    alice_account, bob_account = paired()
    world = open_room("bob")
    alice, bob = world.device("alice"), world.device("bob")
    plan = alice.k.prepare_send(alice.r, [ALICE, BOB], now=NOW, accepted=world.lookup)
    envelope = alice_account.encrypt(BOB, distribution_conversation("lobby"), plan.distribution)
    with pytest.raises(DecryptionError):
        bob_account.decrypt(ALICE, distribution_conversation("other"), envelope, now=NOW)
    payload = bob_account.decrypt(ALICE, distribution_conversation("lobby"), envelope, now=NOW)
    assert bob.k.receive_distribution(bob.r, ALICE, payload, now=NOW, accepted=world.lookup)
    alice.k.mark_distributed(plan.recipients)
    assert world.open(
        "bob", alice.k.encrypt(alice.r, b"over sender keys", now=NOW, accepted=world.lookup)
    )


def test_state_round_trips_and_refuses_damage() -> None:
    world = open_room("bob", "carol")
    world.open("bob", world.send("alice", b"a"))
    world.send("carol", b"b")
    world.open("bob", world.send("carol", b"c"))
    keys = world.device("bob").k
    world.send("bob", b"d")
    data = keys.to_bytes()
    restored = RoomKeys.from_bytes(data)
    assert restored.to_bytes() == data
    assert restored.decrypt(
        world.device("bob").r, world.send("alice", b"e"), now=NOW, accepted=world.lookup
    )
    for damaged in (b"XXXX" + data[4:], data[:4] + b"\x00\x02" + data[6:], data[:-1], data + b"\0"):
        with pytest.raises(InvalidArgument):
            RoomKeys.from_bytes(damaged)
