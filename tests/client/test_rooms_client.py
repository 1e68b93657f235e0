"""Signed rooms on the client (issue 15): verified rosters, sender keys, a server that lies.

Accounts, devices and pairwise sessions are the real test server's; the room half is the
test's RoomRelay (tests/client/rooms_support.py), which lies where a test says so.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from securechat.client import vault as vault_module
from securechat.client.events import MessageEvent, UndecryptableEvent
from securechat.client.messenger import Messenger
from securechat.client.room_channel import CHUNK_BYTES, MAX_HELD_PER_ROOM, chunk
from securechat.client.vault import Vault
from securechat.crypto.account import Address
from securechat.crypto.room_keys import RoomKeys
from securechat.crypto.room_membership import join_event
from securechat.crypto.roster import Roster
from securechat.crypto.roster_event import EventKind, RosterEvent
from securechat.crypto.sender_chain import RESERVED_ITERATIONS
from securechat.errors import (
    DecryptionError,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    RosterRejected,
)
from securechat.node import Node
from tests.client.conftest import MakeDevice
from tests.client.live import PASSWORD
from tests.client.rooms_support import Member, RoomRelay

ROOM = "ops"


async def _room(make_device: MakeDevice, *names: str) -> tuple[RoomRelay, list[Member]]:
    """An open signed room made by the first of ``names``; the others joined it in order."""
    relay = RoomRelay()
    members = [relay.attach(await make_device(name)) for name in names]
    await members[0].messenger.actions.create(ROOM)
    for member in members[1:]:
        await member.messenger.actions.join(ROOM, _no_password)
        await relay.push(ROOM, [m.device.user for m in members if m is not member])
    return relay, members


async def _no_password() -> str:
    raise AssertionError("an open room asks for no password")


def _texts(member: Member) -> list[str]:
    return member.device.watch.texts()


def _notices(member: Member) -> list[str]:
    return member.device.watch.notices()


async def test_one_ciphertext_reaches_every_member_and_keys_go_out_once(
    make_device: MakeDevice,
) -> None:
    relay, (alice, bob, carol) = await _room(make_device, "alice", "bob", "carol")
    pinned = alice.messenger.vault.account.account_key_of
    assert sorted(alice.messenger.rosters.roster(ROOM).recipients(pinned)) == [
        "alice",
        "bob",
        "carol",
    ]  # type: ignore[union-attr]
    assert "#ops: carol joined" in _notices(alice) and "#ops: bob joined" in _notices(carol)

    first = await relay.send(alice, ROOM, "hello room", ["bob", "carol"])
    assert first.room_message and sorted(first.ciphertexts) == [bob.address, carol.address]
    second = await relay.send(alice, ROOM, "again", ["bob", "carol"])
    assert dict(second.ciphertexts) == {} and second.before == ()  # keys distributed once
    assert _texts(bob) == _texts(carol) == ["hello room", "again"]
    assert bob.messenger.vault.state.room_acks[ROOM] == 2  # the room positions processed

    reply = await relay.send(bob, ROOM, "hi alice", ["alice", "carol"])
    assert sorted(reply.ciphertexts) == [alice.address, carol.address]
    assert _texts(alice) == ["hi alice"]

    # Everything is in the keystore: a restart keeps the verified roster and the chains.
    vault = Vault.open(bob.messenger.vault.keystore.path, PASSWORD)
    assert vault.state.rosters[ROOM].version == bob.messenger.rosters.roster(ROOM).version  # type: ignore[union-attr]
    assert vault.state.room_keys[ROOM].to_bytes() == bob.messenger.rooms.keys(ROOM).to_bytes()
    assert vault.state.room_acks == {ROOM: 2}


async def test_a_message_whose_key_is_late_is_held_then_opened(make_device: MakeDevice) -> None:
    relay, (alice, bob) = await _room(make_device, "alice", "bob")
    sealed, _ = await relay.seal(alice, ROOM, "key comes later")
    pairwise, message = relay.deliveries(alice, ROOM, sealed)
    assert await bob.take(message) == []  # held: no key yet
    assert bob.messenger.vault.state.room_acks.get(ROOM, 0) == 0  # not acked past it
    events = await bob.take(pairwise[0][1])
    assert [e.text for e in events if isinstance(e, MessageEvent)] == ["key comes later"]
    assert bob.messenger.vault.state.room_acks[ROOM] == 1


async def test_held_messages_are_bounded(make_device: MakeDevice) -> None:
    relay, (alice, bob) = await _room(make_device, "alice", "bob")
    released = []
    for _ in range(MAX_HELD_PER_ROOM + 1):
        sealed, _ = await relay.seal(alice, ROOM, "never keyed")
        released.extend(await bob.take(relay.deliveries(alice, ROOM, sealed)[1]))
    assert len(released) == 1 and isinstance(released[0], UndecryptableEvent)


async def test_removal_rotates_and_the_removed_member_cannot_read_on(
    make_device: MakeDevice,
) -> None:
    relay, (alice, bob, carol) = await _room(make_device, "alice", "bob", "carol")
    await relay.send(alice, ROOM, "before", ["bob", "carol"])
    old_roster = Roster.from_bytes(carol.messenger.rosters.roster(ROOM).to_bytes())  # type: ignore[union-attr]
    old_keys = RoomKeys.from_bytes(carol.messenger.rooms.keys(ROOM).to_bytes())
    chain = alice.messenger.rooms.keys(ROOM).sending
    assert chain is not None

    await alice.messenger.actions.remove(ROOM, "carol")
    await relay.push(ROOM, ["bob", "carol"])
    assert "#ops: alice removed carol" in _notices(bob)
    assert "#ops: alice removed carol" in _notices(carol)

    after = await relay.send(alice, ROOM, "after", ["bob"])
    assert sorted(after.ciphertexts) == [bob.address]  # a fresh chain, to bob only
    assert alice.messenger.rooms.keys(ROOM).sending.chain_id != chain.chain_id  # type: ignore[union-attr]
    assert _texts(bob) == ["before", "after"]
    # carol's client, even one that ignored the removal, holds no key for the new chain
    with pytest.raises(DecryptionError):
        old_keys.decrypt(
            old_roster, after.room_message, now=0,
            accepted=carol.messenger.vault.account.account_key_of,
        )  # fmt: skip
    assert carol.messenger.rooms.keys(ROOM).receiving_chains(alice.address) == []


async def test_old_roster_message_from_a_removed_member_is_refused(
    make_device: MakeDevice,
) -> None:
    relay, (alice, bob, carol) = await _room(make_device, "alice", "bob", "carol")
    await relay.send(carol, ROOM, "while a member", ["alice", "bob"])
    stale, _ = await relay.seal(carol, ROOM, "after my removal, on my old roster")
    await alice.messenger.actions.remove(ROOM, "carol")
    await relay.push(ROOM, ["bob"])
    events = await bob.take(relay.deliveries(carol, ROOM, stale)[1])
    assert [type(e) for e in events] == [UndecryptableEvent]
    assert _texts(bob) == ["while a member"]


async def test_remove_by_a_non_admin_is_refused_on_both_ends(make_device: MakeDevice) -> None:
    relay, (alice, bob, _carol) = await _room(make_device, "alice", "bob", "carol")
    before = alice.messenger.rosters.roster(ROOM).version  # type: ignore[union-attr]
    with pytest.raises(RosterRejected):  # bob's own client will not make it
        await bob.messenger.actions.remove(ROOM, "carol")
    # a server relaying bob's (validly signed) remove anyway: alice's client rejects it
    roster = bob.messenger.rosters.roster(ROOM)
    assert roster is not None
    signer = bob.messenger.vault.account.devices.signer
    key = bob.messenger.vault.account.account_key_of("bob")
    assert key is not None
    forged = RosterEvent(
        EventKind.REMOVE, ROOM, roster.version.sequence + 1, roster.version.head, "bob", key,
        "carol",
    ).sign(signer)  # fmt: skip
    relay.events[ROOM].append(forged.to_bytes())
    await relay.push(ROOM, ["alice"])
    assert alice.messenger.rosters.roster(ROOM).version == before  # type: ignore[union-attr]
    assert any("does not verify" in w for w in alice.device.watch.warnings())
    assert alice.messenger.rosters.roster(ROOM).is_member("carol")  # type: ignore[union-attr]


async def test_ghost_member_is_never_encrypted_to(make_device: MakeDevice, server: Node) -> None:
    """The server (a) lists a ghost in ListMembers, (b) relays an unsigned join, (c) relays a
    join for an existing user signed with a key it made up: no key and no message goes to the
    ghosts. The unsigned join is refused; the made-up key's join verifies (the rules cannot
    know whose key it is), is shown, and is a stale member for clients that know mallory's real
    key: told, never a recipient."""
    relay, (alice, bob) = await _room(make_device, "alice", "bob")
    mallory = await make_device("mallory")  # a real user, who never joined
    from securechat_proto.v1 import rooms_pb2

    relay.ghosts[ROOM] = [rooms_pb2.Member(user="mallory", device_ids=[1])]
    version = alice.messenger.rosters.roster(ROOM).version  # type: ignore[union-attr]

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    server_key = Ed25519PrivateKey.generate()
    server_pub = server_key.public_key().public_bytes_raw()
    roster = alice.messenger.rosters.roster(ROOM)
    assert roster is not None
    forged = RosterEvent(
        EventKind.JOIN, ROOM, version.sequence + 1, version.head, "mallory", server_pub, "mallory"
    ).sign(server_key)
    unsigned = RosterEvent(
        EventKind.JOIN, ROOM, version.sequence + 1, version.head, "mallory", server_pub,
        "mallory", signature=b"\0" * 64,
    )  # fmt: skip
    relay.events[ROOM].append(unsigned.to_bytes())
    await relay.push(ROOM, ["alice", "bob"])
    relay.events[ROOM].pop()
    for member in (alice, bob):
        assert member.messenger.rosters.roster(ROOM).version == version  # type: ignore[union-attr]
        assert not member.messenger.rosters.roster(ROOM).is_member("mallory")  # type: ignore[union-attr]
        assert len([w for w in member.device.watch.warnings() if "does not verify" in w]) == 1
    relay.events[ROOM].append(forged.to_bytes())
    await relay.push(ROOM, ["alice", "bob"])
    for member in (alice, bob):
        verified = member.messenger.rosters.roster(ROOM)
        assert verified is not None and verified.is_member("mallory")
        pinned = member.messenger.vault.account.account_key_of
        assert pinned("mallory") == mallory.vault.account.account_key_of("mallory")
        assert "mallory" not in verified.recipients(pinned)
        assert "#ops: mallory joined" in _notices(member)
        stale = [w for w in member.device.watch.warnings() if "mallory's account key" in w]
        assert len(stale) == 1

    sealed = await relay.send(alice, ROOM, "members only", ["bob"])
    assert sealed.devices == (bob.address,)
    assert all(d.user != "mallory" for part in (*sealed.before, sealed.ciphertexts) for d in part)
    assert _texts(bob) == ["members only"]
    # the ghost gets the stored room message anyway (the server has it): it cannot read it
    ghost = relay.attach(mallory)
    _, message = relay.deliveries(alice, ROOM, sealed)
    assert not [e for e in await ghost.take(message) if isinstance(e, MessageEvent)]
    # (mallory's own client sees a join in her name under a key that is not hers, and says so)
    assert any("made a join in your name" in w for w in mallory.watch.warnings())
    with pytest.raises(DecryptionError):
        RoomKeys(ROOM, ghost.address).decrypt(
            alice.messenger.rosters.roster(ROOM),  # type: ignore[arg-type]
            sealed.room_message,
            now=0,
            accepted=ghost.messenger.vault.account.account_key_of,
        )


async def test_a_forked_roster_is_detected_by_both_members(make_device: MakeDevice) -> None:
    """The server shows alice "carol joined" and bob "dave joined" at the same position: each
    sees the other's messages name a history it does not have, and says so."""
    relay = RoomRelay()
    alice, bob, carol, dave = [
        relay.attach(await make_device(n)) for n in ("alice", "bob", "carol", "dave")
    ]
    await alice.messenger.actions.create(ROOM)
    await bob.messenger.actions.join(ROOM, _no_password)
    await relay.push(ROOM, ["alice"])
    shared = list(relay.events[ROOM])
    await carol.messenger.rosters.sync(ROOM)
    await dave.messenger.rosters.sync(ROOM)
    roster = carol.messenger.rosters.roster(ROOM)
    assert roster is not None
    carol_join = _join(carol, roster)
    dave_join = _join(dave, roster)
    relay.views[("alice", ROOM)] = [*shared, carol_join]
    relay.views[("bob", ROOM)] = [*shared, dave_join]
    await relay.push(ROOM, ["alice", "bob"])
    assert "#ops: carol joined" in _notices(alice) and "#ops: dave joined" in _notices(bob)

    await relay.send(alice, ROOM, "from alice's side", ["bob"])
    await relay.send(bob, ROOM, "from bob's side", ["alice"])
    assert _texts(alice) == _texts(bob) == []
    assert any("you and alice different member lists" in w for w in bob.device.watch.warnings())
    assert any("you and bob different member lists" in w for w in alice.device.watch.warnings())

    # the fork is also seen on the stream: an event at a known position with another hash
    await bob.messenger.rosters.receive(ROOM, len(shared), carol_join)
    assert any("you and other members" in w for w in bob.device.watch.warnings())


def _join(member: Member, roster: Roster) -> bytes:
    account = member.messenger.vault.account
    key = account.account_key_of(member.address.user)
    assert key is not None
    return join_event(roster, account.devices.signer, member.address.user, key)


async def test_protected_room_password_never_reaches_the_server(
    make_device: MakeDevice, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay = RoomRelay()
    alice, bob, carol = [relay.attach(await make_device(n)) for n in ("alice", "bob", "carol")]
    sent: list[str] = []
    for member in (alice, bob, carol):
        for name in ("create_room", "join_room"):
            inner = getattr(member.device.api, name)

            async def spy(*args: object, _inner: object = inner, **kwargs: object) -> object:
                sent.extend(str(a) for a in args)
                return await _inner(*args, **kwargs)  # type: ignore[operator]

            monkeypatch.setattr(member.device.api, name, spy)

    await alice.messenger.actions.create(ROOM, "room password 1")
    assert "#ops: alice created the room (protected by a password)" in _notices(alice)

    async def right() -> str:
        return "room password 1"

    async def wrong() -> str:
        return "not the password"

    with pytest.raises(PermissionDenied, match="wrong password"):
        await carol.messenger.actions.join(ROOM, wrong)
    await bob.messenger.actions.join(ROOM, right)
    await relay.push(ROOM, ["alice"])
    assert "#ops: bob joined" in _notices(alice)
    assert all("room password 1" not in value for value in sent)
    authenticators = [v for v in sent if len(v) == 64]
    assert len(set(authenticators)) == 1  # what the server checks: the authenticator

    # bob's proof replayed by the server for carol's join is rejected by the members
    roster = carol.messenger.rosters.roster(ROOM)
    assert roster is not None
    bob_join = RosterEvent.parse(relay.events[ROOM][1])
    key = carol.messenger.vault.account.account_key_of("carol")
    assert key is not None
    replay = RosterEvent(
        EventKind.JOIN, ROOM, 2, RosterEvent.parse(relay.events[ROOM][1]).hash(), "carol", key,
        "carol", proof=bob_join.proof,
    ).sign(carol.messenger.vault.account.devices.signer)  # fmt: skip
    relay.events[ROOM].append(replay.to_bytes())
    await relay.push(ROOM, ["alice", "bob"])
    assert not alice.messenger.rosters.roster(ROOM).is_member("carol")  # type: ignore[union-attr]
    assert any("does not verify" in w for w in bob.device.watch.warnings())


async def test_distribution_from_a_non_member_is_refused(make_device: MakeDevice) -> None:
    relay, (_alice, bob) = await _room(make_device, "alice", "bob")
    mallory = relay.attach(await make_device("mallory"))
    # mallory makes a chain for the room as if a member and sends it to bob pairwise
    keys = RoomKeys(ROOM, mallory.address)
    roster = bob.messenger.rosters.roster(ROOM)
    assert roster is not None
    with pytest.raises(InvalidArgument):
        keys.prepare_send(
            roster, [bob.address], now=0, accepted=bob.messenger.vault.account.account_key_of
        )  # not even her own core makes it
    from securechat.crypto.room_message import SenderKeyDistribution, distribution_conversation
    from securechat.crypto.sender_chain import SendingChain

    chain = SendingChain.create(roster.version, now=0)
    plaintext = SenderKeyDistribution.of(chain, ROOM, mallory.address, roster.version).to_bytes()
    await mallory.messenger.ensure_sessions([bob.address])
    envelope = mallory.messenger.vault.account.encrypt(
        bob.address, distribution_conversation(ROOM), plaintext
    )
    delivery = relay._delivery(mallory, ROOM, envelope, seq=99)
    assert await bob.take(delivery) == []
    assert any("ignored a room key from mallory" in w for w in bob.device.watch.warnings())
    assert bob.messenger.rooms.keys(ROOM).receiving_chains(mallory.address) == []


async def test_a_bare_login_device_never_blocks_a_room_send(make_device: MakeDevice) -> None:
    relay, (alice, bob) = await _room(make_device, "alice", "bob")
    from securechat.client.credentials import derive

    keys = await derive(PASSWORD, (await bob.device.api.login_parameters("bob")).login)
    await bob.device.api.login("bob", keys.authenticator_text())  # a device without keys
    sealed = await relay.send(alice, ROOM, "still works", ["bob"])
    assert sealed.devices == (bob.address,)
    assert _texts(bob) == ["still works"]


def test_distributions_are_split_into_requests_that_fit() -> None:
    envelopes = {Address(f"member{i:04}", 1): b"x" * 1800 for i in range(1000)}
    parts = chunk(envelopes, b"m" * 400)
    assert len(parts) > 1 and sum(len(p) for p in parts) == 1000
    for part in parts:
        size = sum(len(c) + len(d.user) + 16 for d, c in part.items())
        assert size <= CHUNK_BYTES
    assert chunk({}, b"m") == [{}]


async def test_admin_changes_passwords_and_leaving_are_signed_and_shown(
    make_device: MakeDevice,
) -> None:
    relay, (alice, bob) = await _room(make_device, "alice", "bob")
    await alice.messenger.actions.set_admin(ROOM, "bob", make_admin=True)
    await alice.messenger.actions.set_password(ROOM, "a room password")
    await relay.push(ROOM, ["bob"])  # bob fetches the two events he missed
    await alice.messenger.actions.set_password(ROOM, "")
    await alice.messenger.actions.set_admin(ROOM, "alice", make_admin=False)
    assert await alice.messenger.actions.leave(ROOM)
    await relay.push(ROOM, ["bob"])
    assert _notices(bob)[-5:] == [
        "#ops: alice made bob an admin", "#ops: alice set a new room password",
        "#ops: alice opened the room (no password)", "#ops: alice is no longer an admin",
        "#ops: alice left",
    ]  # fmt: skip
    roster = bob.messenger.rosters.roster(ROOM)
    assert roster is not None and sorted(roster.members) == ["bob"] and roster.is_admin("bob")
    with pytest.raises(InvalidArgument, match="already a member"):
        await bob.messenger.actions.join(ROOM, _no_password)


async def test_a_device_without_keys_is_left_out_then_gets_the_key(
    make_device: MakeDevice,
) -> None:
    """carol's device has no session to be had (no published keys): the send goes on without
    it, the user is told; once it has keys, the next send hands it the chain, and says so."""
    relay, (alice, bob, carol) = await _room(make_device, "alice", "bob", "carol")
    channel = alice.messenger.rooms
    real = channel.ensure_sessions

    async def keyless_carol(devices: Iterable[Address], *, partial: bool = False) -> list[Address]:
        return [d for d in await real(devices, partial=partial) if d.user != "carol"]

    channel.ensure_sessions = keyless_carol
    first = await relay.send(alice, ROOM, "without carol", ["bob"])
    assert sorted(first.ciphertexts) == [bob.address]
    assert any("no session with carol device 1 yet" in n for n in _notices(alice))
    channel.ensure_sessions = real
    second = await relay.send(alice, ROOM, "with carol", ["bob", "carol"])
    assert sorted(second.ciphertexts) == [carol.address]
    assert any("carol device 1 has keys now" in n for n in _notices(alice))
    assert _texts(carol) == ["with carol"] and _texts(bob) == ["without carol", "with carol"]


async def test_events_out_of_order_are_fetched_and_a_broken_chain_is_refused(
    make_device: MakeDevice,
) -> None:
    relay, (alice, bob, _carol) = await _room(make_device, "alice", "bob", "carol")
    # two events bob missed: the stream shows him only the second; he fetches and applies both
    await alice.messenger.actions.set_admin(ROOM, "carol", make_admin=True)
    await alice.messenger.actions.remove(ROOM, "carol")
    events = relay.events[ROOM]
    await bob.messenger.rosters.receive(ROOM, len(events) - 1, events[-1])
    assert _notices(bob)[-2:] == ["#ops: alice made carol an admin", "#ops: alice removed carol"]

    # an event that does not chain onto the head (a wrong previous hash) changes nothing
    roster = bob.messenger.rosters.roster(ROOM)
    assert roster is not None
    version = roster.version
    key = alice.messenger.vault.account.account_key_of("alice")
    assert key is not None
    broken = RosterEvent(
        EventKind.ADMIN_ADD, ROOM, version.sequence + 1, b"\x07" * 32, "alice", key, "bob"
    ).sign(alice.messenger.vault.account.devices.signer)
    events.append(broken.to_bytes())
    await relay.push(ROOM, ["bob"])
    assert roster.version == version and not roster.is_admin("bob")
    assert any("does not verify" in w for w in bob.device.watch.warnings())


async def test_a_room_message_with_a_bad_signature_is_not_shown(make_device: MakeDevice) -> None:
    relay, (alice, bob) = await _room(make_device, "alice", "bob")
    await relay.send(alice, ROOM, "keys first", ["bob"])
    sealed, _ = await relay.seal(alice, ROOM, "then a forgery")
    forged = sealed.room_message[:-64] + bytes(64)  # not signed with the distributed key
    message = relay.deliveries(alice, ROOM, sealed)[1]
    message.ciphertext = forged
    assert [type(e) for e in await bob.take(message)] == [UndecryptableEvent]
    assert _texts(bob) == ["keys first"]


async def test_a_rate_limited_key_claim_leaves_a_device_out_for_now(
    make_device: MakeDevice, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server limits bundle claims: the room send goes out to the devices it has sessions
    with, the user is told, and the others get the key at a later send."""
    relay = RoomRelay()
    alice, bob, carol = [relay.attach(await make_device(n)) for n in ("alice", "bob", "carol")]
    await alice.messenger.actions.create(ROOM)
    for member in (bob, carol):
        await member.messenger.actions.join(ROOM, _no_password)
    await relay.push(ROOM, ["alice"])
    real = alice.device.api.claim_bundles

    async def limited(user: str, device_ids: list[int]) -> list[object]:
        if user == "carol":
            raise ResourceExhausted("too many key bundle claims", retry_after=1.0)
        return await real(user, device_ids)  # type: ignore[return-value]

    monkeypatch.setattr(alice.device.api, "claim_bundles", limited)
    first = await relay.send(alice, ROOM, "carol later", ["bob"])
    assert sorted(first.ciphertexts) == [bob.address]
    assert any("no session with carol device 1 yet" in n for n in _notices(alice))
    monkeypatch.setattr(alice.device.api, "claim_bundles", real)
    second = await relay.send(alice, ROOM, "now carol too", ["bob", "carol"])
    assert sorted(second.ciphertexts) == [carol.address]
    assert _texts(carol) == ["now carol too"]


async def test_room_sends_save_the_keystore_once_per_reservation_and_survive_a_kill(
    make_device: MakeDevice,
) -> None:
    """Issue 15: a room send used to re-encrypt and fsync the whole keystore every time."""
    relay, (alice, bob) = await _room(make_device, "alice", "bob")
    saves = 0
    vault = alice.messenger.vault
    save = vault.save

    def counted() -> None:
        nonlocal saves
        saves += 1
        save()

    await relay.send(alice, ROOM, "m0", ["bob"])  # sessions, devices, distribution: saved
    vault.save = counted  # type: ignore[method-assign]
    sends = 2 * RESERVED_ITERATIONS + 10
    for n in range(1, sends):
        await relay.send(alice, ROOM, f"m{n}", ["bob"])
    assert 1 <= saves <= sends // RESERVED_ITERATIONS  # once per reservation run out
    # Killed now: the keystore on disk is older than the chain in memory. The chain resumes
    # at the reserved position, past every iteration used, and bob reads on.
    killed = Vault.open(vault.keystore.path, PASSWORD)
    alice.messenger.vault.state.room_keys[ROOM] = killed.state.room_keys[ROOM]
    await relay.send(alice, ROOM, "after the kill", ["bob"])
    assert _texts(bob) == [f"m{n}" for n in range(sends)] + ["after the kill"]
    assert not [n for n in _notices(bob) if "could not" in n]


async def test_a_room_message_served_twice_is_shown_once(make_device: MakeDevice) -> None:
    """A reconnect or resume can serve the same room position again: it is the same message,
    not one that "could not be decrypted"."""
    relay, (alice, bob) = await _room(make_device, "alice", "bob")
    sealed, _ = await relay.seal(alice, ROOM, "once")
    assert sealed.accepted is not None
    sealed.accepted()
    pairwise, message = relay.deliveries(alice, ROOM, sealed)
    for device, delivery in pairwise:
        if device == bob.address:
            await bob.take(delivery)
    first = await bob.take(message)
    assert [e.text for e in first if isinstance(e, MessageEvent)] == ["once"]
    assert await bob.take(message) == []  # served again in the same run
    assert bob.messenger.vault.state.room_acks[ROOM] == message.room_seq

    # and after a restart (a new client on the same keystore), from the saved position
    bob.messenger.vault.save()
    restarted = Member(bob.device, Messenger(bob.device.api, bob.messenger.vault, bob.device.watch))
    assert await restarted.take(message) == []
    assert not [e for e in bob.device.watch.events if isinstance(e, UndecryptableEvent)]
    assert _texts(bob) == ["once"]


async def test_roster_events_one_at_a_time_are_saved_together_and_a_crash_resyncs(
    make_device: MakeDevice, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A room verified one join at a time saved the whole keystore per join (a 1,000-member
    room: 15 % of the test's samples); a crash between saves loses only what the next sync
    fetches again."""
    monkeypatch.setattr(vault_module, "SAVE_SOON_S", 3600.0)  # no timer fires in this test
    names = ["alice", "bob", *(f"member{n}" for n in range(6))]
    relay = RoomRelay()
    members = [relay.attach(await make_device(name)) for name in names]
    alice = members[0]
    await alice.messenger.actions.create(ROOM)
    vault = alice.messenger.vault
    saves = 0
    save = vault.keystore.save

    def counted(state: bytes) -> None:
        nonlocal saves
        saves += 1
        save(state)

    vault.keystore.save = counted  # type: ignore[method-assign]
    for member in members[1:]:
        await member.messenger.actions.join(ROOM, _no_password)
        await relay.push(ROOM, ["alice"])  # one event per frame, as joins trickle in
    roster = alice.messenger.rosters.roster(ROOM)
    assert roster is not None and len(roster.members) == len(names)
    assert saves == 0  # not yet: one save, SAVE_SOON_S later, covers them all
    killed = Vault.open(vault.keystore.path, PASSWORD)  # a crash now
    assert len(killed.state.rosters[ROOM].members) == 1
    restarted = Messenger(alice.device.api, killed, alice.device.watch)
    resynced = await restarted.rosters.sync(ROOM)
    assert resynced is not None and resynced.version == roster.version  # fetched again

    vault.flush()  # what the session does when it ends
    assert saves == 1
    assert Vault.open(vault.keystore.path, PASSWORD).state.rosters[ROOM].version == roster.version
