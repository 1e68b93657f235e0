"""The roster state machine: verified, hash-chained membership events and their rules."""

from __future__ import annotations

from dataclasses import replace

import pytest

from securechat.crypto.room_membership import create_event, join_event, new_room_salt
from securechat.crypto.room_policy import OPEN_POLICY
from securechat.crypto.roster import MAX_HISTORY, Roster, RosterRelation
from securechat.crypto.roster_event import EventKind, RosterEvent, RosterVersion
from securechat.errors import InvalidArgument, RosterRejected

from ._rooms import ROOM, SALT, RoomWorld, account_key, open_room, public


def forge(event: bytes, **changes: object) -> RosterEvent:
    """The parsed event with some fields changed (still carrying its old signature)."""
    return replace(RosterEvent.parse(event), **changes)


def rejected(roster: Roster, event: bytes, match: str) -> None:
    before = roster.to_bytes()
    with pytest.raises(RosterRejected, match=match):
        roster.apply(event)
    assert roster.to_bytes() == before


def test_the_creator_is_the_first_member_and_admin() -> None:
    world = open_room("bob")
    roster = world.devices[next(iter(world.devices))].r
    assert roster.members.keys() == {"alice", "bob"}
    assert roster.is_admin("alice")
    assert not roster.is_admin("bob")
    assert roster.version.sequence == 1
    assert [c.describe() for c in world.device("bob").changes] == [
        "alice created the room",
        "bob joined",
    ]


def test_every_kind_of_change_is_reported_in_words() -> None:
    world = open_room("bob", "carol", "dave")
    world.make_admin("alice", "bob")
    world.remove("bob", "carol")
    world.make_admin("alice", "alice", make_admin=False)
    world.make_admin("bob", "dave")
    world.make_admin("bob", "dave", make_admin=False)
    world.set_policy("bob", world.new_policy("s3cret pw"))
    world.set_policy("bob", OPEN_POLICY)
    world.leave("dave")
    assert [c.describe() for c in world.device("alice").changes[4:]] == [
        "alice made bob an admin",
        "bob removed carol",
        "alice is no longer an admin",
        "bob made dave an admin",
        "bob removed dave as an admin",
        "bob set a new room password",
        "bob opened the room (no password)",
        "dave left",
    ]


def test_a_join_with_a_forged_signature_is_rejected() -> None:
    world = open_room()
    roster = world.device("alice").r
    world.pins["mallory"] = public("mallory")
    honest = join_event(roster, account_key("mallory"), "mallory", public("mallory"))
    world.pins["bob"] = public("bob")
    # bob's real key named, but a signature that is not bob's.
    stolen = forge(honest, actor="bob", subject="bob", actor_key=public("bob"))
    rejected(roster, stolen.sign(account_key("mallory")).to_bytes(), "not signed")
    # A key of the server's own named, but a signature by another key.
    claimed = forge(honest, actor="bob", subject="bob", actor_key=public("mallory"))
    rejected(roster, claimed.sign(account_key("bob")).to_bytes(), "not signed")


def test_a_join_under_a_key_the_client_does_not_accept_is_a_stale_member() -> None:
    """The server claims bob joined, signing with a key of its own: the join verifies under the
    key it names (the rules cannot know whose key it is), but for a client that accepts bob's
    real key (or knows none) bob is stale: never a recipient, never a valid sender."""
    world = open_room()
    roster = world.device("alice").r
    honest = join_event(roster, account_key("mallory"), "mallory", public("mallory"))
    claimed = forge(honest, actor="bob", subject="bob", actor_key=public("mallory"))
    roster.apply(claimed.sign(account_key("mallory")).to_bytes())
    roster.mark_shown(roster.version.sequence)
    assert roster.is_member("bob") and not roster.is_admin("bob")
    for pins in ({"alice": public("alice"), "bob": public("bob")}, {"alice": public("alice")}):
        assert [m.user for m in roster.stale_members(pins.get)] == ["bob"]
        assert roster.recipients(pins.get) == ["alice"]
        assert roster.current_member("bob", pins.get) is None
    served = {"alice": public("alice"), "bob": public("mallory")}  # first contact, served
    assert roster.recipients(served.get) == ["alice", "bob"]


def test_a_join_without_a_signature_is_rejected() -> None:
    world = open_room()
    roster = world.device("alice").r
    world.pins["bob"] = public("bob")
    event = join_event(roster, account_key("bob"), "bob", public("bob"))
    rejected(roster, event[:-64], "malformed")
    rejected(roster, event[:-64] + bytes(64), "not signed")


def test_applying_needs_no_client_keys_so_every_client_reaches_the_same_roster() -> None:
    world = open_room("bob")
    alone, _ = Roster.from_events(ROOM, world.events)
    alone.mark_shown(alone.version.sequence)
    assert alone.to_bytes() == world.device("bob").r.to_bytes()
    assert [m.user for m in alone.stale_members(lambda user: None)] == ["alice", "bob"]
    assert alone.recipients(lambda user: None) == []


def test_a_protected_room_needs_the_password_proof() -> None:
    world = RoomWorld()
    world.create("alice", password="correct pw")
    world.join("bob", password="correct pw")
    roster = world.device("alice").r
    assert roster.policy.protected
    world.pins["carol"] = public("carol")
    wrong = world.keys_for("wrong pw")
    with pytest.raises(RosterRejected, match="password proof"):
        join_event(roster, account_key("carol"), "carol", public("carol"), wrong)
    with pytest.raises(InvalidArgument, match="protected"):
        join_event(roster, account_key("carol"), "carol", public("carol"))
    right = world.keys_for("correct pw")
    honest = join_event(roster, account_key("carol"), "carol", public("carol"), right)
    without = forge(honest, proof=None).sign(account_key("carol")).to_bytes()
    rejected(roster, without, "password proof")
    proof = wrong.prove_join(ROOM, 2, roster.version.head, "carol", public("carol"))
    wrong_proof = forge(honest, proof=proof).sign(account_key("carol")).to_bytes()
    rejected(roster, wrong_proof, "password proof")
    roster.apply(honest)


def test_a_replayed_password_proof_is_rejected() -> None:
    world = RoomWorld()
    world.create("alice", password="correct pw")
    bobs_join = RosterEvent.parse(world.join("bob", password="correct pw"))
    world.leave("bob")
    roster = world.device("alice").r
    world.pins["mallory"] = public("mallory")
    position = {"sequence": 3, "prev_hash": roster.version.head}
    # bob's proof (for sequence 1) in a join for a later position, signed by bob himself...
    replayed = replace(bobs_join, **position).sign(account_key("bob")).to_bytes()
    rejected(roster, replayed, "password proof")
    # ...or carried into someone else's join.
    mallory = replace(
        bobs_join, actor="mallory", subject="mallory", actor_key=public("mallory"), **position
    ).sign(account_key("mallory"))
    rejected(roster, mallory.to_bytes(), "password proof")


def test_a_join_to_an_open_room_carries_no_proof() -> None:
    world = open_room()
    roster = world.device("alice").r
    world.pins["bob"] = public("bob")
    event = join_event(roster, account_key("bob"), "bob", public("bob"))
    with_proof = forge(event, proof=bytes(64)).sign(account_key("bob")).to_bytes()
    rejected(roster, with_proof, "no password proof")


def test_members_who_joined_before_a_password_change_still_check_joins() -> None:
    world = RoomWorld()
    world.create("alice", password="first password")
    world.join("bob", password="first password")
    world.set_policy("alice", world.new_policy("second password"))
    with pytest.raises(RosterRejected, match="password proof"):
        world.join("carol", password="first password")
    world.join("carol", password="second password")
    assert world.device("bob").r.is_member("carol")


def test_a_remove_by_a_non_admin_is_rejected() -> None:
    world = open_room("bob", "carol")
    roster = world.device("carol").r
    event = forge(world.remove("alice", "bob"), actor="carol", actor_key=public("carol"))
    signed = event.sign(account_key("carol")).to_bytes()
    fresh, _ = Roster.from_events(ROOM, world.events[:-1])
    assert not roster.is_member("bob")
    rejected(fresh, signed, "carol is not an admin")


@pytest.mark.parametrize(
    ("action", "match"),
    [
        (lambda w: w.remove("bob", "carol"), "bob is not an admin"),
        (lambda w: w.remove("alice", "alice"), "sign a LEAVE"),
        (lambda w: w.remove("alice", "zed"), "zed is not a member"),
        (lambda w: w.make_admin("bob", "carol"), "bob is not an admin"),
        (lambda w: w.make_admin("alice", "alice"), "already an admin"),
        (lambda w: w.make_admin("alice", "bob", make_admin=False), "bob is not an admin"),
        (lambda w: w.make_admin("alice", "alice", make_admin=False), "last admin"),
        (lambda w: w.leave("alice"), "last admin: make another admin first"),
        (lambda w: w.join("bob"), "already a member"),
        (lambda w: w.set_policy("carol", OPEN_POLICY), "carol is not an admin"),
        (lambda w: w.leave("zed"), "zed is not a member"),
    ],
)
def test_the_rules_are_enforced_before_signing(action: object, match: str) -> None:
    world = open_room("bob", "carol")
    world.device("zed")
    with pytest.raises(RosterRejected, match=match):
        action(world)
    assert len(world.events) == 3


def test_a_leave_or_join_for_someone_else_is_rejected() -> None:
    world = open_room("bob")
    roster = world.device("alice").r
    leave = forge(world.leave("bob"), subject="alice").sign(account_key("bob")).to_bytes()
    fresh, _ = Roster.from_events(ROOM, world.events[:-1])
    rejected(fresh, leave, "own actor")
    assert not roster.is_member("bob")


def test_the_last_member_leaving_closes_the_room() -> None:
    world = open_room()
    world.pins["bob"] = public("bob")
    keep, _ = Roster.from_events(ROOM, world.events)
    world.leave("alice")
    roster = world.device("alice").r
    assert roster.closed
    assert not roster.members
    late = join_event(keep, account_key("bob"), "bob", public("bob"))
    late = forge(late, sequence=2, prev_hash=roster.version.head).sign(account_key("bob"))
    rejected(roster, late.to_bytes(), "closed")


def test_events_out_of_order_or_off_the_chain_are_rejected() -> None:
    world = open_room("bob", "carol")
    fresh, _ = Roster.from_events(ROOM, world.events[:1])
    rejected(fresh, world.events[2], "out of order: expected 1")
    fresh.apply(world.events[1])
    rejected(fresh, world.events[1], "already applied")
    broken = forge(world.events[2], prev_hash=bytes(32)).sign(account_key("carol")).to_bytes()
    rejected(fresh, broken, "does not chain")
    fresh.apply(world.events[2])


def test_a_create_event_is_only_valid_first_and_for_its_room() -> None:
    world = open_room("bob")
    with pytest.raises(RosterRejected, match="first event must be its CREATE"):
        Roster.from_events(ROOM, world.events[1:])
    with pytest.raises(RosterRejected, match="not 'other'"):
        Roster.from_events("other", world.events)
    with pytest.raises(RosterRejected, match="no events"):
        Roster.from_events(ROOM, [])
    roster = world.device("alice").r
    second = create_event(ROOM, account_key("alice"), "alice", public("alice"), room_salt=SALT)
    moved = forge(second, sequence=2, prev_hash=roster.version.head)
    rejected(roster, moved.sign(account_key("alice")).to_bytes(), "only valid as")
    other = RoomWorld("other")
    other.create("alice")
    rejected(roster, other.events[0], "for room 'other'")


def test_two_creations_of_one_name_are_different_rooms() -> None:
    first = create_event(
        ROOM, account_key("alice"), "alice", public("alice"), room_salt=new_room_salt()
    )
    second = create_event(
        ROOM, account_key("alice"), "alice", public("alice"), room_salt=new_room_salt()
    )
    assert RosterEvent.parse(first).hash() != RosterEvent.parse(second).hash()


def test_out_of_bounds_argon2_parameters_in_an_event_are_rejected() -> None:
    world = RoomWorld()
    world.create("alice", password="pw pw pw pw")
    event = world.events[0]
    # memory_cost is the third u32 of the policy: set it to 4 GiB.
    index = event.index(world.device("alice").r.policy.proof_public_key or b"") - 4
    huge = event[:index] + (4 * 1024 * 1024).to_bytes(4, "big") + event[index + 4 :]
    with pytest.raises(RosterRejected, match="out of bounds"):
        Roster.from_events(ROOM, [huge])


def test_a_join_is_not_a_recipient_until_it_was_shown() -> None:
    world = open_room("bob")
    roster, _ = Roster.from_events(ROOM, world.events[:1])
    roster.mark_shown(0)
    roster.apply(world.events[1])
    assert roster.recipients(world.lookup) == ["alice"]
    assert roster.unshown_members() == ["bob"]
    with pytest.raises(InvalidArgument):
        roster.mark_shown(2)
    roster.mark_shown(1)
    assert roster.recipients(world.lookup) == ["alice", "bob"]


def test_versions_compare_as_same_older_newer_forked() -> None:
    world = open_room("bob", "carol")
    roster = world.device("alice").r
    head = roster.version
    assert roster.relation(head) is RosterRelation.SAME
    older = RosterVersion(1, RosterEvent.parse(world.events[1]).hash())
    assert roster.relation(older) is RosterRelation.OLDER
    assert roster.relation(RosterVersion(3, bytes(32))) is RosterRelation.NEWER
    assert roster.relation(RosterVersion(1, bytes(32))) is RosterRelation.FORKED
    assert roster.relation(RosterVersion(2, bytes(32))) is RosterRelation.FORKED


def test_a_server_showing_two_members_different_rosters_is_detected() -> None:
    world = open_room("bob")
    alice, bob = world.device("alice").r, world.device("bob").r
    world.pins.update(carol=public("carol"), dave=public("dave"))
    to_alice = join_event(alice, account_key("carol"), "carol", public("carol"))
    to_bob = join_event(bob, account_key("dave"), "dave", public("dave"))
    alice.apply(to_alice)
    bob.apply(to_bob)
    assert alice.version.sequence == bob.version.sequence
    assert alice.relation(bob.version) is RosterRelation.FORKED
    assert bob.relation(alice.version) is RosterRelation.FORKED
    with pytest.raises(RosterRejected, match="different histories"):
        alice.apply(to_bob)


def test_old_versions_beyond_the_window_are_too_old() -> None:
    world = open_room("bob")
    roster = world.device("alice").r
    first = roster.version
    for _ in range(MAX_HISTORY // 2 + 1):
        world.make_admin("alice", "bob")
        world.make_admin("alice", "bob", make_admin=False)
    assert roster.relation(first) is RosterRelation.TOO_OLD
    assert roster.removed_since(first.sequence, roster.version.sequence)
    assert not roster.removed_since(roster.version.sequence - 5, roster.version.sequence)
    restored = Roster.from_bytes(roster.to_bytes())
    assert restored.to_bytes() == roster.to_bytes()
    assert restored.relation(roster.version) is RosterRelation.SAME


def test_removed_since_sees_leaves_and_removals() -> None:
    world = open_room("bob", "carol")
    world.leave("bob")
    world.remove("alice", "carol")
    roster = world.device("alice").r
    assert roster.removed_since(2, 3)
    assert not roster.removed_since(0, 2)
    assert roster.removed_since(3, 4)
    assert not roster.removed_since(4, 4)


def test_state_round_trips_and_refuses_damage() -> None:
    world = RoomWorld()
    world.create("alice", password="pw pw pw pw")
    world.join("bob", password="pw pw pw pw")
    roster = world.device("alice").r
    data = roster.to_bytes()
    assert Roster.from_bytes(data).to_bytes() == data
    for damaged in (b"XXXX" + data[4:], data[:4] + b"\x00\x02" + data[6:], data[:-1], data + b"\0"):
        with pytest.raises(InvalidArgument):
            Roster.from_bytes(damaged)


def test_an_event_signed_by_a_signer_for_another_key_is_refused_locally() -> None:
    world = open_room()
    with pytest.raises(RosterRejected, match="not signed"):
        join_event(world.device("alice").r, account_key("mallory"), "bob", public("bob"))
    assert EventKind.JOIN.value == 2
