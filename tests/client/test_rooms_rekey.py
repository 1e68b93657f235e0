"""Signed rooms after a member's account-key reset (docs/e2e-wire-rooms.md §1, member keys).

Accounts, devices, resets and pairwise sessions are the real test server's; the room half is
the test's RoomRelay (tests/client/rooms_support.py), which lies where a test says so.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from securechat.client.events import IdentityEvent, Target
from securechat.crypto.roster import Roster
from securechat.crypto.roster_event import EventKind, RosterEvent
from securechat.errors import FailedPrecondition, IdentityChanged, InvalidArgument, RosterRejected
from tests.client.conftest import MakeDevice, Reset
from tests.client.rooms_support import Member, RoomRelay

ROOM = "ops"


async def _no_password() -> str:
    raise AssertionError("an open room asks for no password")


async def _room(
    make_device: MakeDevice, *names: str, password: str = ""
) -> tuple[RoomRelay, list[Member]]:
    """A signed room made by the first of ``names``; the others joined it in order."""
    relay = RoomRelay()
    members = [relay.attach(await make_device(name)) for name in names]

    async def ask() -> str:
        return password

    await members[0].messenger.actions.create(ROOM, password)
    for member in members[1:]:
        await member.messenger.actions.join(ROOM, ask if password else _no_password)
        await relay.push(ROOM, [m.device.user for m in members if m is not member])
    return relay, members


async def _accept_new_key(member: Member, user: str) -> None:
    """The user of ``member`` accepts ``user``'s new account key (as after /accept)."""
    accounts = member.messenger.accounts
    with pytest.raises(IdentityChanged):
        await member.messenger.book.refresh(Target.user(user))
    account = member.messenger.vault.account
    account.accept_identity(user, account.safety_number(user), verified=False)
    await accounts.refresh(user)


def _roster(member: Member) -> Roster:
    roster = member.messenger.rosters.roster(ROOM)
    assert roster is not None
    return roster


def _pinned(member: Member) -> Callable[[str], bytes | None]:
    return member.messenger.vault.account.account_key_of


def _warnings(member: Member, text: str) -> list[str]:
    return [w for w in member.device.watch.warnings() if text in w]


async def test_after_a_reset_a_new_member_verifies_the_history_and_the_member_rejoins(
    make_device: MakeDevice, reset_device: Reset
) -> None:
    relay, (alice, bob, carol) = await _room(make_device, "alice", "bob", "carol")
    await relay.send(alice, ROOM, "before the reset", ["bob", "carol"])
    assert carol.device.watch.texts() == ["before the reset"]

    # carol starts over with a new account key (her old device is gone)
    new_carol = relay.attach(await reset_device("carol"))

    # dave, brand new, verifies the whole history from CREATE, carol's old-key JOIN included
    # (the old code rejected it: "not carol's key", and dave had no roster for the room at all)
    dave = relay.attach(await make_device("dave"))
    await dave.messenger.actions.join(ROOM, _no_password)
    await relay.push(ROOM, ["alice", "bob"])
    roster = _roster(dave)
    assert sorted(roster.members) == ["alice", "bob", "carol", "dave"]
    assert not _warnings(dave, "does not verify")
    assert [m.user for m in roster.stale_members(_pinned(dave))] == ["carol"]
    assert roster.recipients(_pinned(dave)) == ["alice", "bob", "dave"]
    assert len(_warnings(dave, "carol's account key changed since carol joined")) == 1

    # alice accepts carol's new key: carol is stale for her, told once, and gets nothing
    await _accept_new_key(alice, "carol")
    sealed = await relay.send(alice, ROOM, "while carol is stale", ["bob", "dave"])
    assert "carol" not in {d.user for d in sealed.devices}
    assert all(d.user != "carol" for part in (*sealed.before, sealed.ciphertexts) for d in part)
    await relay.send(alice, ROOM, "still stale", ["bob", "dave"])
    assert len(_warnings(alice, "carol's account key changed since carol joined")) == 1
    assert dave.device.watch.texts() == ["while carol is stale", "still stale"]

    # the server relays a LEAVE by carol's new key for her old membership: refused everywhere
    version = _roster(alice).version
    new_key = new_carol.messenger.vault.account.account_key_of("carol")
    assert new_key is not None
    forged = RosterEvent(
        EventKind.LEAVE, ROOM, version.sequence + 1, version.head, "carol", new_key, "carol"
    ).sign(new_carol.messenger.vault.account.devices.signer)
    relay.events[ROOM].append(forged.to_bytes())
    await relay.push(ROOM, ["alice", "dave"])
    relay.events[ROOM].pop()
    for member in (alice, dave):
        assert _roster(member).version == version and _roster(member).is_member("carol")
        assert any("not the one carol joined with" in w for w in _warnings(member, "verify"))

    # carol's new client finds itself stale in the room and rejoins under its key by itself
    await new_carol.messenger.rosters.sync(ROOM)
    assert len(_warnings(new_carol, "your membership is under an account key")) == 1
    assert RosterEvent.parse(relay.events[ROOM][-1]).actor_key == new_key
    await relay.push(ROOM, ["alice", "bob", "dave"])
    assert "#ops: carol rejoined with a new account key" in alice.device.watch.notices()
    # bob's client, seeing her JOIN under another key, fetched her account: the change is his
    # to decide (key-change prompt), and she is stale for him until he does
    assert any(isinstance(e, IdentityEvent) and e.user == "carol" for e in bob.device.watch.events)
    assert "carol" not in _roster(bob).recipients(_pinned(bob))
    assert _roster(alice).recipients(_pinned(alice)) == ["alice", "bob", "carol", "dave"]
    assert _roster(new_carol).recipients(_pinned(new_carol)) == ["alice", "bob", "carol", "dave"]

    # she receives room messages again, and is read again
    await relay.send(alice, ROOM, "welcome back", ["bob", "carol", "dave"])
    assert new_carol.device.watch.texts() == ["welcome back"]
    await relay.send(new_carol, ROOM, "thanks", ["alice", "bob", "dave"])
    assert alice.device.watch.texts()[-1] == dave.device.watch.texts()[-1] == "thanks"
    # bob has not accepted her new key yet: her key and message wait (never opened as from a
    # stale member) until he does; her next message then brings both
    assert "thanks" not in bob.device.watch.texts()
    await _accept_new_key(bob, "carol")
    await relay.send(new_carol, ROOM, "bob too", ["bob"])
    assert bob.device.watch.texts()[-2:] == ["thanks", "bob too"]


async def test_a_reset_admin_rejoins_without_admin_status(
    make_device: MakeDevice, reset_device: Reset
) -> None:
    relay, (_alice, bob) = await _room(make_device, "alice", "bob")
    assert _roster(bob).is_admin("alice")
    new_alice = relay.attach(await reset_device("alice"))
    await new_alice.messenger.rosters.sync(ROOM)  # stale: rejoins under the new key
    await relay.push(ROOM, ["bob"])
    assert (
        "#ops: alice rejoined with a new account key and is no longer an admin"
        in bob.device.watch.notices()
    )
    for member in (bob, new_alice):
        assert _roster(member).is_member("alice") and not _roster(member).is_admin("alice")
    with pytest.raises(RosterRejected, match="not an admin"):
        await new_alice.messenger.actions.remove(ROOM, "bob")


async def test_an_explicit_join_of_a_stale_member_is_the_rejoin(
    make_device: MakeDevice, reset_device: Reset
) -> None:
    """/join by a member whose key changed signs one rekeyed JOIN (the sync it starts does not
    rejoin first and then call the join "already a member")."""
    relay, (alice, _bob) = await _room(make_device, "alice", "bob")
    new_bob = relay.attach(await reset_device("bob"))
    length = len(relay.events[ROOM])
    await new_bob.messenger.actions.join(ROOM, _no_password)
    assert len(relay.events[ROOM]) == length + 1
    await relay.push(ROOM, ["alice"])
    assert "#ops: bob rejoined with a new account key" in alice.device.watch.notices()
    with pytest.raises(InvalidArgument, match="already a member"):
        await new_bob.messenger.actions.join(ROOM, _no_password)


async def test_a_stale_member_leaves_an_open_room_by_rejoining_first(
    make_device: MakeDevice, reset_device: Reset
) -> None:
    relay, (alice, _bob) = await _room(make_device, "alice", "bob")
    new_bob = relay.attach(await reset_device("bob"))
    assert await new_bob.messenger.actions.leave(ROOM)
    kinds = [RosterEvent.parse(e).kind for e in relay.events[ROOM][-2:]]
    assert kinds == [EventKind.JOIN, EventKind.LEAVE]
    await relay.push(ROOM, ["alice"])
    assert alice.device.watch.notices()[-2:] == [
        "#ops: bob rejoined with a new account key", "#ops: bob left",
    ]  # fmt: skip


async def test_a_protected_room_asks_a_reset_member_to_rejoin_with_the_password(
    make_device: MakeDevice, reset_device: Reset
) -> None:
    relay, (alice, _bob) = await _room(make_device, "alice", "bob", password="room password")
    new_bob = relay.attach(await reset_device("bob"))
    length = len(relay.events[ROOM])
    await new_bob.messenger.rosters.sync(ROOM)
    assert len(relay.events[ROOM]) == length  # no rejoin without the password
    told = _warnings(new_bob, "your membership is under an account key")
    assert len(told) == 1 and "join it again with the room password (/join #ops)" in told[0]

    async def right() -> str:
        return "room password"

    with pytest.raises(FailedPrecondition, match="join it again with its room password"):
        await new_bob.messenger.actions.leave(ROOM)  # (a LEAVE needs the old key)
    await new_bob.messenger.actions.join(ROOM, right)  # not "already a member"
    await relay.push(ROOM, ["alice"])
    assert "#ops: bob rejoined with a new account key" in alice.device.watch.notices()
    assert _roster(alice).member(
        "bob"
    ).account_key == new_bob.messenger.vault.account.account_key_of("bob")  # type: ignore[union-attr]


async def test_a_lying_server_fabricating_a_rejoin(make_device: MakeDevice) -> None:
    """The server signs a JOIN for bob, a member, under a key of its own. In the open room it
    verifies: bob is shown as rejoined, stale for everyone (nothing is encrypted to the fake
    key), and bob's own client rejoins under his real key. In a protected room it is refused."""
    relay, (alice, bob, carol) = await _room(make_device, "alice", "bob", "carol")
    fake = Ed25519PrivateKey.generate()
    fake_pub = fake.public_key().public_bytes_raw()
    version = _roster(alice).version
    fabricated = RosterEvent(
        EventKind.JOIN, ROOM, version.sequence + 1, version.head, "bob", fake_pub, "bob"
    ).sign(fake)
    relay.events[ROOM].append(fabricated.to_bytes())
    await relay.push(ROOM, ["alice", "carol"])
    assert "#ops: bob rejoined with a new account key" in alice.device.watch.notices()
    assert "bob" not in _roster(alice).recipients(_pinned(alice))
    assert len(_warnings(alice, "bob's account key changed since bob joined")) == 1
    sealed = await relay.send(alice, ROOM, "not for the fake bob", ["carol"])
    assert all(d.user != "bob" for part in (*sealed.before, sealed.ciphertexts) for d in part)
    assert carol.device.watch.texts() == ["not for the fake bob"]

    await relay.push(ROOM, ["bob"])  # bob sees a join in his name under a key not his ...
    assert len(_warnings(bob, "made a join in your name")) == 1
    assert RosterEvent.parse(relay.events[ROOM][-1]).actor_key == _pinned(bob)("bob")
    await relay.push(ROOM, ["alice", "carol"])  # ... and rejoined: current again everywhere
    assert "bob" in _roster(alice).recipients(_pinned(alice))
    await relay.send(alice, ROOM, "bob is back", ["bob", "carol"])
    assert bob.device.watch.texts()[-1] == "bob is back"


async def test_a_fabricated_join_in_a_protected_room_is_refused(make_device: MakeDevice) -> None:
    relay, (alice, bob) = await _room(make_device, "alice", "bob", password="room password")
    fake = Ed25519PrivateKey.generate()
    version = _roster(alice).version
    for user in ("bob", "mallory"):
        fabricated = RosterEvent(
            EventKind.JOIN, ROOM, version.sequence + 1, version.head, user,
            fake.public_key().public_bytes_raw(), user,
            proof=bytes(64),
        ).sign(fake)  # fmt: skip
        relay.events[ROOM].append(fabricated.to_bytes())
        await relay.push(ROOM, ["alice", "bob"])
        relay.events[ROOM].pop()
    for member in (alice, bob):
        assert _roster(member).version == version
        assert len(_warnings(member, "password proof")) == 2
        assert not _warnings(member, "account key changed")


async def test_reset_and_rejoin_through_the_real_server(
    make_device: MakeDevice, reset_device: Reset
) -> None:
    """No relay: the server's own gate refuses an event for the old membership signed by the
    new key, takes the rekeyed JOIN (signed by the caller's current key), and the streams carry
    it to the members."""
    alice, bob = await make_device("alice"), await make_device("bob")
    chat = await alice.start()
    await chat.messenger.actions.create(ROOM)
    await bob.messenger().actions.join(ROOM, _no_password)  # (bob's old device: no stream)
    await alice.watch.until(lambda: "#ops: bob joined" in alice.watch.notices())

    new_bob = await reset_device("bob")
    reply = await new_bob.api.get_roster(ROOM, 0, 100)
    roster, _ = Roster.from_events(ROOM, list(reply.events))
    account = new_bob.vault.account
    key = account.account_key_of("bob")
    assert key is not None
    version = roster.version
    leave = RosterEvent(
        EventKind.LEAVE, ROOM, version.sequence + 1, version.head, "bob", key, "bob"
    ).sign(account.devices.signer)
    with pytest.raises(InvalidArgument, match="not the one bob joined with"):
        await new_bob.api.leave_room(ROOM, leave_event=leave.to_bytes())

    session = await new_bob.start()
    await session.messenger.rosters.sync(ROOM)  # stale: it rejoins under its key by itself
    await alice.watch.until(
        lambda: "#ops: bob rejoined with a new account key" in alice.watch.notices()
    )
    await alice.watch.until(
        lambda: any(
            "bob's account key changed since bob joined" in w for w in alice.watch.warnings()
        )
    )
    messenger = chat.messenger
    with pytest.raises(IdentityChanged):
        await messenger.book.refresh(Target.user("bob"))
    mine = messenger.vault.account
    mine.accept_identity("bob", mine.safety_number("bob"), verified=False)
    await messenger.accounts.refresh("bob")
    await chat.send(Target.room(ROOM), "welcome back")
    await new_bob.watch.until(lambda: new_bob.watch.texts() == ["welcome back"])
    await session.send(Target.room(ROOM), "thanks")
    await alice.watch.until(lambda: alice.watch.texts() == ["thanks"])
