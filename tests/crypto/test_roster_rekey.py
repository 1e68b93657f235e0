"""Member keys: a member whose account key changed (a reset) keeps a verifiable history, is stale
until they rejoin under the new key, and a rejoin drops admin status (docs/e2e-wire-rooms.md §1).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from securechat.crypto.room_keys import RotationReason, needs_rotation
from securechat.crypto.room_membership import join_event, leave_event, policy_event, remove_event
from securechat.crypto.room_policy import OPEN_POLICY
from securechat.crypto.roster import Roster
from securechat.crypto.roster_event import EventKind, RosterEvent
from securechat.errors import DecryptionError, InvalidArgument, RosterRejected

from ._rooms import ROOM, RoomWorld, account_key, open_room, public, reset_key
from ._support import NOW


def rejected(roster: Roster, event: bytes, match: str) -> None:
    before = roster.to_bytes()
    with pytest.raises(RosterRejected, match=match):
        roster.apply(event)
    assert roster.to_bytes() == before


def signed(
    roster: Roster, kind: EventKind, actor: str, named: bytes, signer: object, subject: str = ""
) -> bytes:
    """An event at the roster's next position naming ``named`` as the actor's key, signed by
    ``signer`` (which may be another key: a forgery)."""
    version = roster.version
    policy = OPEN_POLICY if kind is EventKind.SET_POLICY else None
    event = RosterEvent(
        kind, ROOM, version.sequence + 1, version.head, actor, named, subject or actor,
        policy=policy,
    )  # fmt: skip
    return event.sign(signer).to_bytes()  # type: ignore[arg-type]


def test_a_new_member_verifies_the_whole_history_after_a_member_reset() -> None:
    """bob joined under his first key, then reset it; carol, new, syncs from CREATE (the old
    code rejected bob's JOIN: not the key carol's client holds for bob)."""
    world = open_room("bob")
    world.make_admin("alice", "bob")
    world.reset("bob")
    world.join("carol")
    carol = world.device("carol")
    assert carol.r.members.keys() == {"alice", "bob", "carol"}
    assert [c.describe() for c in carol.changes] == [
        "alice created the room", "bob joined", "alice made bob an admin", "carol joined",
    ]  # fmt: skip
    assert [m.user for m in carol.r.stale_members(world.lookup)] == ["bob"]
    assert carol.r.recipients(world.lookup) == ["alice", "carol"]
    assert carol.r.current_member("bob", world.lookup) is None
    assert carol.r.member("bob").account_key == public("bob")  # type: ignore[union-attr]


def test_a_reset_creator_stays_the_creator_of_a_verifiable_room() -> None:
    world = open_room("bob")
    world.reset("alice")
    fresh, changes = Roster.from_events(ROOM, world.events)
    assert [c.describe() for c in changes] == ["alice created the room", "bob joined"]
    assert fresh.is_admin("alice")
    assert [m.user for m in fresh.stale_members(world.lookup)] == ["alice"]


def test_a_rekeyed_rejoin_replaces_the_membership_and_drops_admin() -> None:
    world = open_room("bob")
    world.reset("alice")  # the only admin
    world.join("alice")
    change = world.device("bob").changes[-1]
    assert change.rekeyed and change.dropped_admin and change.removes_member
    assert change.describe() == "alice rejoined with a new account key and is no longer an admin"
    for device in (world.device("alice"), world.device("bob")):
        roster = device.r
        member = roster.member("alice")
        assert member is not None and member.account_key == world.pub("alice")
        assert not roster.is_admin("alice") and member.joined_at == roster.version.sequence
        assert roster.stale_members(world.lookup) == []
        assert roster.recipients(world.lookup) == ["alice", "bob"]
        assert roster.removed_since(roster.version.sequence - 1, roster.version.sequence)
    # a fresh client replays it to the same roster
    fresh, changes = Roster.from_events(ROOM, world.events)
    fresh.mark_shown(fresh.version.sequence)
    assert fresh.to_bytes() == world.device("bob").r.to_bytes()
    assert changes[-1].describe() == change.describe()


def test_a_plain_rekeyed_rejoin_is_shown_without_an_admin_note() -> None:
    world = open_room("bob")
    world.reset("bob")
    world.join("bob")
    change = world.device("alice").changes[-1]
    assert change.rekeyed and not change.dropped_admin
    assert change.describe() == "bob rejoined with a new account key"


def test_a_join_under_the_member_key_is_still_already_a_member() -> None:
    world = open_room("bob")
    roster = world.device("alice").r
    again = signed(roster, EventKind.JOIN, "bob", public("bob"), account_key("bob"))
    rejected(roster, again, "already a member")


@pytest.mark.parametrize(
    ("kind", "actor", "subject"),
    [
        (EventKind.LEAVE, "bob", "bob"),
        (EventKind.REMOVE, "alice", "bob"),
        (EventKind.ADMIN_ADD, "alice", "bob"),
        (EventKind.ADMIN_REMOVE, "alice", "alice"),
        (EventKind.SET_POLICY, "alice", "alice"),
    ],
)
def test_a_later_event_must_be_signed_by_the_actors_member_key(
    kind: EventKind, actor: str, subject: str
) -> None:
    """After a reset (no rejoin yet), the new key cannot act for the old membership: neither
    named as the actor key, nor signing for the old one; a third key cannot either."""
    world = open_room("bob")
    world.reset(actor)
    roster = world.device("alice" if actor == "bob" else "bob").r
    new, old = reset_key(actor, 1), account_key(actor)
    new_pub = new.public_key().public_bytes_raw()
    rejected(roster, signed(roster, kind, actor, new_pub, new, subject), "not the one")
    rejected(roster, signed(roster, kind, actor, public(actor), new, subject), "not signed")
    stranger = account_key("mallory")
    rejected(roster, signed(roster, kind, actor, public("mallory"), stranger, subject), "not the")
    if kind is not EventKind.ADMIN_REMOVE:  # (the last admin cannot be demoted)
        roster.apply(signed(roster, kind, actor, public(actor), old, subject))  # the old key can


def test_after_a_rejoin_the_replaced_key_has_no_power() -> None:
    """A thief holding bob's replaced key: it acts for bob until bob rejoins, never after."""
    world = open_room("bob", "carol")
    world.make_admin("alice", "bob")
    world.reset("bob")
    roster = world.device("alice").r
    thief = account_key("bob")
    before = Roster.from_bytes(roster.to_bytes())
    before.apply(remove_event(before, thief, "bob", public("bob"), "carol"))  # until the rejoin
    world.join("bob")
    assert not roster.is_admin("bob")
    rejected(roster, signed(roster, EventKind.LEAVE, "bob", public("bob"), thief), "not the one")
    # nor can it rejoin as admin: a JOIN under the old key is a rekeyed rejoin, without admin
    back = join_event(roster, thief, "bob", public("bob"))
    change = roster.apply(back)
    assert change.rekeyed and not roster.is_admin("bob")
    assert [m.user for m in roster.stale_members(world.lookup)] == ["bob"]


def test_a_rekeyed_rejoin_with_a_bad_signature_is_rejected() -> None:
    world = open_room("bob")
    world.reset("bob")
    roster = world.device("alice").r
    honest = join_event(roster, world.key("bob"), "bob", world.pub("bob"))
    rejected(roster, honest[:-64] + bytes(64), "not signed")
    for bit in range(0, (len(honest) - 64) * 8, 7):
        tampered = bytearray(honest)
        tampered[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises((RosterRejected, InvalidArgument)):
            roster.apply(bytes(tampered))
    roster.apply(honest)


def test_a_protected_room_rejoin_needs_the_password_proof() -> None:
    world = RoomWorld()
    world.create("alice", password="room pw")
    world.join("bob", password="room pw")
    world.reset("bob")
    roster = world.device("alice").r
    # the server fabricating bob's rejoin (under any key): no proof, or bob's old proof
    fabricated = signed(roster, EventKind.JOIN, "bob", public("mallory"), account_key("mallory"))
    rejected(roster, fabricated, "password proof")
    old_proof = RosterEvent.parse(world.events[1]).proof
    version = roster.version
    replayed = RosterEvent(
        EventKind.JOIN, ROOM, version.sequence + 1, version.head, "bob", world.pub("bob"),
        "bob", proof=old_proof,
    ).sign(world.key("bob"))  # fmt: skip
    rejected(roster, replayed.to_bytes(), "password proof")
    with pytest.raises(RosterRejected, match="password proof"):
        world.join("bob", password="wrong pw")
    world.join("bob", password="room pw")
    assert roster.current_member("bob", world.lookup) is not None


def test_a_stale_member_gets_no_key_and_is_not_accepted_as_a_sender() -> None:
    world = open_room("bob", "carol")
    message = world.send("bob", b"before the reset")
    assert world.open("alice", message) == b"before the reset"
    world.reset("bob")  # everyone accepts bob's new key: his membership is stale
    alice, bob = world.device("alice"), world.device("bob")
    plan = alice.k.prepare_send(alice.r, world.member_devices(), now=NOW, accepted=world.lookup)
    assert bob.address not in plan.recipients and bob.address in plan.ignored
    # bob's own core refuses to send for a membership under another key
    with pytest.raises(InvalidArgument, match="join it again"):
        bob.k.prepare_send(bob.r, world.member_devices(), now=NOW, accepted=world.lookup)
    # his chain (installed before) no longer opens his messages, nor does a distribution
    sending = bob.k.sending
    assert sending is not None
    late = bob.k.encrypt(bob.r, b"after the reset", now=NOW, accepted=lambda u: public(u))
    with pytest.raises(DecryptionError):
        alice.k.decrypt(alice.r, late, now=NOW, accepted=world.lookup)
    with pytest.raises(DecryptionError):
        alice.k.receive_distribution(
            alice.r, bob.address, bob.k.distribution(), now=NOW, accepted=world.lookup
        )
    # a client that has not accepted the new key yet still reads him
    pinned_old = {**world.pins, "bob": public("bob")}
    assert alice.k.decrypt(alice.r, late, now=NOW, accepted=pinned_old.get).plaintext == (
        b"after the reset"
    )


def test_a_rekeyed_rejoin_rotates_every_chain_and_forgets_the_old_ones() -> None:
    world = open_room("bob", "carol")
    world.send("alice", b"first")
    world.send("bob", b"from bob")
    alice = world.device("alice")
    chain = alice.k.sending
    assert chain is not None and alice.k.receiving_chains(world.device("bob").address)
    world.reset("bob")
    world.join("bob")
    assert alice.k.receiving_chains(world.device("bob").address) == []
    assert needs_rotation(chain, alice.r, NOW) is RotationReason.MEMBER_REMOVED
    message = world.send("alice", b"after the rejoin")
    assert world.open("bob", message) == b"after the rejoin"
    assert world.open("carol", message) == b"after the rejoin"
    reply = world.send("bob", b"back")
    assert world.open("carol", reply) == b"back"


def test_a_stale_own_membership_cannot_leave_with_the_new_key() -> None:
    """The client's own core refuses the event (the members would refuse it too)."""
    world = open_room("bob")
    world.reset("bob")
    roster = world.device("bob").r
    with pytest.raises(RosterRejected, match="not the one"):
        leave_event(roster, world.key("bob"), "bob", world.pub("bob"))
    with pytest.raises(RosterRejected, match="not the one"):
        policy_event(roster, world.key("bob"), "bob", world.pub("bob"), OPEN_POLICY)


# -- properties ------------------------------------------------------------------------------

USERS = ("alice", "bob", "carol")


@st.composite
def scripts(draw: st.DrawFn) -> list[tuple[str, str]]:
    steps = st.tuples(st.sampled_from(("reset", "rejoin", "send", "admin")), st.sampled_from(USERS))
    return draw(st.lists(steps, max_size=12))


@given(scripts())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_history_of_resets_replays_and_stale_members_get_nothing(
    script: list[tuple[str, str]],
) -> None:
    world = open_room("bob", "carol")
    for step, user in script:
        roster = world.device("alice").r
        current = roster.current_member(user, world.lookup) is not None
        if step == "reset":
            world.reset(user)
        elif step == "rejoin" and not current:
            world.join(user)
        elif step == "admin" and current and not roster.is_admin(user):
            admins = [a for a in roster.members if roster.current_member(a, world.lookup)
                      and roster.is_admin(a)]  # fmt: skip
            if admins:
                world.make_admin(admins[0], user)
        elif step == "send" and current:
            message = world.send(user, b"m")
            for reader in USERS:
                device = world.device(reader)
                if reader != user and device.r.current_member(reader, world.lookup):
                    assert world.open(reader, message) == b"m"
    fresh, _ = Roster.from_events(ROOM, world.events)  # a new client replays it all
    fresh.mark_shown(fresh.version.sequence)
    assert fresh.to_bytes() == world.device("alice").r.to_bytes()
    stale = {m.user for m in fresh.stale_members(world.lookup)}
    assert stale == {u for u in USERS if fresh.member(u).account_key != world.pub(u)}  # type: ignore[union-attr]
    assert not stale & set(fresh.recipients(world.lookup))
    for user in stale:  # no event for a stale membership verifies under the user's new key
        event = signed(fresh, EventKind.LEAVE, user, world.pub(user), world.key(user))
        rejected(fresh, event, "not the one")
