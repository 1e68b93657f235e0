"""Signed rosters and room messages stored once (issue 15), over a real server."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import grpc
import pytest

from securechat.crypto.account import CryptoAccount
from securechat.crypto.account_key import AccountKeyPair
from securechat.crypto.room_membership import admin_event, policy_event
from securechat.crypto.room_policy import OPEN_POLICY
from securechat.crypto.roster import Roster
from securechat.crypto.roster_event import EventKind, RosterEvent
from securechat.node import Node
from securechat_proto.v1 import chat_pb2, common_pb2, rooms_pb2
from tests.conftest import ApiFactory
from tests.support.accounts import AccountDevice, account_request, now
from tests.support.chat import ChatClient
from tests.support.net import Api
from tests.support.rosters import (
    TINY,
    Keys,
    RoomUser,
    password_keys,
    room_message,
    room_user,
    roster_of,
)

ROOM = common_pb2.Conversation(room="den")


async def _user(connect: ApiFactory, name: str, keys: Keys) -> RoomUser:
    api = await connect()
    await api.register(name)
    await api.login(name, keys=False)
    return await room_user(api, keys)


async def _create(owner: RoomUser, room: str = "den", password: str = "") -> None:
    secret = password_keys(room, password) if password else None
    await owner.api.rooms.CreateRoom(
        rooms_pb2.CreateRoomRequest(
            name=room,
            create_event=owner.create(room, secret),
            password=secret.authenticator.decode() if secret else "",
        ),
        metadata=owner.api.md,
    )


async def _join(member: RoomUser, keys: Keys, room: str = "den", password: str = "") -> None:
    roster = await roster_of(member.api, room, keys)
    secret = password_keys(room, password) if password else None
    await member.api.rooms.JoinRoom(
        rooms_pb2.JoinRoomRequest(
            name=room,
            join_event=member.join(roster, secret),
            password=secret.authenticator.decode() if secret else "",
        ),
        metadata=member.api.md,
    )


async def _members(api: Api, room: str = "den") -> list[str]:
    reply = await api.rooms.ListMembers(rooms_pb2.ListMembersRequest(name=room), metadata=api.md)
    return [m.user for m in reply.members]


async def _send(client: ChatClient, request: chat_pb2.SendRequest, cid: str) -> chat_pb2.SendResult:
    request.client_message_id = cid
    client.put(chat_pb2.ClientFrame(send=request))
    await client.wait_until(lambda: cid in client.results)
    return client.results[cid]


async def _den(connect: ApiFactory, *names: str) -> tuple[Keys, list[RoomUser]]:
    keys = Keys()
    users = [await _user(connect, name, keys) for name in names]
    await _create(users[0])
    for user in users[1:]:
        await _join(user, keys)
    return keys, users


async def _refused(call: object, code: grpc.StatusCode, match: str = "") -> str:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() == code, caught.value.details()
    assert match in (caught.value.details() or "")
    return caught.value.details() or ""


# ---- rosters ------------------------------------------------------------------------------------
async def test_a_signed_room_is_created_joined_and_read(connect: ApiFactory) -> None:
    keys, (alice, bob) = await _den(connect, "alice", "bob")
    stream = ChatClient(alice.api)
    await stream.wait_until(lambda: bool(stream.events))
    carol = await _user(connect, "carol", keys)
    await _join(carol, keys)
    await stream.wait_until(lambda: len(stream.roster_events("den")) >= 1)
    assert [e.sequence for e in stream.roster_events("den")] == [2]
    roster = await roster_of(bob.api, "den", keys)
    assert sorted(roster.members) == ["alice", "bob", "carol"]
    assert roster.is_admin("alice") and not roster.is_admin("bob")
    assert await _members(alice.api) == ["alice", "bob", "carol"]
    page = await carol.api.rooms.GetRoster(
        rooms_pb2.GetRosterRequest(name="den", from_sequence=1, limit=1), metadata=carol.api.md
    )
    assert (len(page.events), page.next_sequence) == (1, 3)
    await stream.close()


async def test_leave_and_remove_are_signed_and_told_to_the_one_who_goes(
    connect: ApiFactory,
) -> None:
    keys, (alice, bob, carol) = await _den(connect, "alice", "bob", "carol")
    bobs = ChatClient(bob.api)
    await bobs.wait_until(lambda: bool(bobs.events))
    roster = await roster_of(alice.api, "den", keys)
    reply = await alice.api.rooms.ChangeRoster(
        rooms_pb2.ChangeRosterRequest(name="den", event=alice.remove(roster, "bob")),
        metadata=alice.api.md,
    )
    assert reply.sequence == 3
    await bobs.wait_until(lambda: [e.sequence for e in bobs.roster_events("den")] == [3])
    roster = await roster_of(carol.api, "den", keys)
    await carol.api.rooms.LeaveRoom(
        rooms_pb2.LeaveRoomRequest(name="den", leave_event=carol.leave(roster)),
        metadata=carol.api.md,
    )
    assert await _members(alice.api) == ["alice"]
    # bob is out: his room message is refused, and alice's next one never reaches him
    result = await _send(bobs, room_message("den", b"still here?"), "b1")
    assert not result.accepted and result.error_code == "permission_denied"
    alices = ChatClient(alice.api)
    assert (await _send(alices, room_message("den", b"after"), "a1")).accepted
    fetched = await bob.api.chat.Fetch(chat_pb2.FetchRequest(), metadata=bob.api.md)
    assert [d.ciphertext for d in fetched.deliveries] == []
    await bobs.close()
    await alices.close()


async def test_two_events_for_one_position_one_wins_the_other_is_aborted(
    connect: ApiFactory,
) -> None:
    keys, (alice,) = await _den(connect, "alice")
    bob, carol = await _user(connect, "bob", keys), await _user(connect, "carol", keys)
    roster = await roster_of(alice.api, "den", keys)
    first, second = bob.join(roster), carol.join(roster)
    await bob.api.rooms.JoinRoom(
        rooms_pb2.JoinRoomRequest(name="den", join_event=first), metadata=bob.api.md
    )
    await _refused(
        carol.api.rooms.JoinRoom(
            rooms_pb2.JoinRoomRequest(name="den", join_event=second), metadata=carol.api.md
        ),
        grpc.StatusCode.ABORTED,
        "sign again",
    )
    await _join(carol, keys)  # fetch, sign again: in
    assert await _members(alice.api) == ["alice", "bob", "carol"]


# ---- bad input ----------------------------------------------------------------------------
async def test_joins_with_a_forged_missing_or_borrowed_signature_change_nothing(
    connect: ApiFactory,
) -> None:
    keys, (alice,) = await _den(connect, "alice")
    mallory = await _user(connect, "mallory", keys)
    roster = await roster_of(mallory.api, "den", keys)
    event = mallory.join(roster)
    forged = event[:-1] + bytes([event[-1] ^ 1])
    rooms, md = mallory.api.rooms, mallory.api.md
    await _refused(
        rooms.JoinRoom(rooms_pb2.JoinRoomRequest(name="den", join_event=forged), metadata=md),
        grpc.StatusCode.INVALID_ARGUMENT,
        "signature",
    )
    await _refused(
        rooms.JoinRoom(rooms_pb2.JoinRoomRequest(name="den"), metadata=md),
        grpc.StatusCode.FAILED_PRECONDITION,
        "signed JOIN",
    )
    # signed by mallory but naming alice's account key
    borrowed = mallory.raw(roster, EventKind.JOIN, key=alice.public)
    await _refused(
        rooms.JoinRoom(rooms_pb2.JoinRoomRequest(name="den", join_event=borrowed), metadata=md),
        grpc.StatusCode.PERMISSION_DENIED,
        "not yours",
    )
    # an event signed as someone else (a valid JOIN of carol's) sent by mallory
    carol = await _user(connect, "carol", keys)
    await _refused(
        rooms.JoinRoom(
            rooms_pb2.JoinRoomRequest(name="den", join_event=carol.join(roster)), metadata=md
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "as yourself",
    )
    await _refused(
        rooms.JoinRoom(
            rooms_pb2.JoinRoomRequest(name="den", join_event=b"\x01garbage"), metadata=md
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert await _members(alice.api) == ["alice"]
    assert len((await roster_of(alice.api, "den", keys)).members) == 1


async def test_a_protected_room_checks_the_authenticator_and_the_proof(
    connect: ApiFactory,
) -> None:
    keys = Keys()
    alice, bob, mallory = [await _user(connect, n, keys) for n in ("alice", "bob", "mallory")]
    await _create(alice, "vault", "correct horse")
    roster = await roster_of(mallory.api, "vault", keys)
    right = password_keys("vault", "correct horse")
    wrong = password_keys("vault", "wrong guess")
    md = mallory.api.md
    # wrong authenticator: refused by the server (its bcrypt check)
    await _refused(
        mallory.api.rooms.JoinRoom(
            rooms_pb2.JoinRoomRequest(
                name="vault", join_event=mallory.raw(roster, EventKind.JOIN, proof=bytes(64)),
                password=wrong.authenticator.decode(),
            ),
            metadata=md,
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "wrong password",
    )  # fmt: skip
    # the right authenticator (learnt somehow) but a proof from the wrong password
    await _refused(
        mallory.api.rooms.JoinRoom(
            rooms_pb2.JoinRoomRequest(
                name="vault", join_event=mallory.raw(roster, EventKind.JOIN, proof=bytes(64)),
                password=right.authenticator.decode(),
            ),
            metadata=md,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "proof",
    )  # fmt: skip
    await _join(bob, keys, "vault", "correct horse")
    # bob's proof replayed by mallory for the next position, with the right authenticator
    events = await mallory.api.rooms.GetRoster(
        rooms_pb2.GetRosterRequest(name="vault"), metadata=md
    )
    replayed = RosterEvent.parse(events.events[1]).proof
    roster = await roster_of(mallory.api, "vault", keys)
    await _refused(
        mallory.api.rooms.JoinRoom(
            rooms_pb2.JoinRoomRequest(
                name="vault", join_event=mallory.raw(roster, EventKind.JOIN, proof=replayed),
                password=right.authenticator.decode(),
            ),
            metadata=md,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "proof",
    )  # fmt: skip
    assert await _members(alice.api, "vault") == ["alice", "bob"]


async def test_only_admins_change_the_roster_and_stale_events_are_aborted(
    connect: ApiFactory,
) -> None:
    keys, (alice, bob, _carol) = await _den(connect, "alice", "bob", "carol")
    roster = await roster_of(bob.api, "den", keys)
    await _refused(
        bob.api.rooms.ChangeRoster(
            rooms_pb2.ChangeRosterRequest(
                name="den", event=bob.raw(roster, EventKind.REMOVE, "carol")
            ),
            metadata=bob.api.md,
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "not an admin",
    )
    stale = alice.remove(roster, "carol")
    await _join(await _user(connect, "dave", keys), keys)  # the roster moves on
    await _refused(
        alice.api.rooms.ChangeRoster(
            rooms_pb2.ChangeRosterRequest(name="den", event=stale), metadata=alice.api.md
        ),
        grpc.StatusCode.ABORTED,
    )
    # right position, wrong previous hash (a broken chain)
    current = await roster_of(alice.api, "den", keys)
    good = RosterEvent.parse(alice.remove(current, "carol"))
    broken = replace(good, prev_hash=bytes(32), signature=b"").sign(alice.key).to_bytes()
    await _refused(
        alice.api.rooms.ChangeRoster(
            rooms_pb2.ChangeRosterRequest(name="den", event=broken), metadata=alice.api.md
        ),
        grpc.StatusCode.ABORTED,
    )
    # a JOIN does not belong in ChangeRoster
    await _refused(
        alice.api.rooms.ChangeRoster(
            rooms_pb2.ChangeRosterRequest(
                name="den", event=alice.raw(current, EventKind.JOIN, "alice")
            ),
            metadata=alice.api.md,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert await _members(alice.api) == ["alice", "bob", "carol", "dave"]


async def test_a_reset_member_rejoins_under_the_new_key_without_admin(connect: ApiFactory) -> None:
    """alice (the admin) resets her account key: her old key can no longer sign anything, her
    new key cannot act for the old membership, and her rejoin under the new key is taken,
    without admin status."""
    keys, (alice, bob) = await _den(connect, "alice", "bob")
    api = await connect()
    await api.login("alice", keys=False)
    key = AccountKeyPair.generate()
    crypto = CryptoAccount.create(
        "alice", api.device_id, now=now(), one_time_count=2, kem_one_time_count=2,
        account_key=key,
    )  # fmt: skip
    await api.keys.PublishAccount(account_request(crypto, reset=True), metadata=api.md)
    new_alice = RoomUser(AccountDevice(api, crypto), key)
    roster = await roster_of(bob.api, "den", keys)
    await _refused(
        api.rooms.ChangeRoster(
            rooms_pb2.ChangeRosterRequest(name="den", event=alice.remove(roster, "bob")),
            metadata=api.md,
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "not yours",
    )
    await _refused(
        api.rooms.ChangeRoster(
            rooms_pb2.ChangeRosterRequest(
                name="den", event=new_alice.raw(roster, EventKind.REMOVE, "bob")
            ),
            metadata=api.md,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "not the one alice joined with",
    )
    await api.rooms.JoinRoom(
        rooms_pb2.JoinRoomRequest(name="den", join_event=new_alice.join(roster)), metadata=api.md
    )
    after = await roster_of(bob.api, "den", keys)
    member = after.member("alice")
    assert member is not None and member.account_key == new_alice.public
    assert not after.is_admin("alice") and after.version.sequence == roster.version.sequence + 1
    assert await _members(bob.api) == ["alice", "bob"]
    await _refused(
        api.rooms.ChangeRoster(
            rooms_pb2.ChangeRosterRequest(
                name="den", event=new_alice.raw(after, EventKind.REMOVE, "bob")
            ),
            metadata=api.md,
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "not an admin",
    )


# ---- room messages ------------------------------------------------------------------------------
async def test_a_room_message_is_stored_once_and_reaches_every_member_after_its_keys(
    connect: ApiFactory,
) -> None:
    _keys, (alice, bob, carol) = await _den(connect, "alice", "bob", "carol")
    bobs, carols = ChatClient(bob.api), ChatClient(carol.api)
    alices = ChatClient(alice.api)
    result = await _send(
        alices, room_message("den", b"room ciphertext", {("bob", 1): b"keys for bob"}), "m1"
    )
    assert result.accepted and result.room_seq == 1, result
    await bobs.wait_until(lambda: len(bobs.room_deliveries("den")) == 1)
    await carols.wait_until(lambda: len(carols.room_deliveries("den")) == 1)
    kinds = [(d.seq, d.room_seq, d.ciphertext) for d in bobs.deliveries]
    assert kinds == [(1, 0, b"keys for bob"), (0, 1, b"room ciphertext")]  # keys first
    assert [(d.seq, d.room_seq) for d in carols.deliveries] == [(0, 1)]
    delivery = carols.deliveries[0]
    assert delivery.sender.user == "alice" and delivery.conversation.room == "den"
    assert alices.room_deliveries("den") == []  # not echoed to the sender's own device
    # a distributions-only send, then a room message without distributions
    assert (await _send(alices, room_message("den", b"", {("carol", 1): b"k"}), "m2")).accepted
    assert (await _send(alices, room_message("den", b"second"), "m3")).room_seq == 2
    retried = await alice.api.chat.Send(room_message("den", b"second", client_id="m3"),
                                        metadata=alice.api.md)  # fmt: skip
    assert retried.duplicate and retried.room_seq == 2  # stored once, answered the same
    await carols.wait_until(lambda: len(carols.room_deliveries("den")) == 2)
    assert [d.ciphertext for d in carols.deliveries] == [b"room ciphertext", b"k", b"second"]
    for client in (alices, bobs, carols):
        await client.close()


async def test_room_positions_resume_from_the_ack_and_a_joiner_starts_at_the_head(
    connect: ApiFactory, server: Node
) -> None:
    keys, (alice, bob) = await _den(connect, "alice", "bob")
    alices = ChatClient(alice.api)
    for i in range(3):
        assert (await _send(alices, room_message("den", b"m%d" % i), f"m{i}")).accepted
    bobs = ChatClient(bob.api, auto_ack=False)
    await bobs.wait_until(lambda: len(bobs.room_deliveries("den")) == 3)
    bobs.ack(0, {"den": 2})
    await bobs.close()  # the server read the ack before the close
    await server.messenger.room_acks.drain()
    again = ChatClient(bob.api)
    await again.wait_until(lambda: len(again.room_deliveries("den")) == 1)
    assert [d.ciphertext for d in again.deliveries] == [b"m2"]
    await again.close()
    # resume_rooms beyond the stored ack
    later = ChatClient(bob.api, resume_rooms={"den": 3})
    assert (await _send(alices, room_message("den", b"m3"), "m3")).room_seq == 4
    await later.wait_until(lambda: len(later.room_deliveries("den")) == 1)
    assert [d.ciphertext for d in later.deliveries] == [b"m3"]
    await later.close()
    # carol joins now: nothing from before her join, on the stream or by Fetch
    carol = await _user(connect, "carol", keys)
    await _join(carol, keys)
    fetched = await carol.api.chat.Fetch(chat_pb2.FetchRequest(), metadata=carol.api.md)
    assert list(fetched.deliveries) == []
    carols = ChatClient(carol.api)
    assert (await _send(alices, room_message("den", b"m4"), "m4")).room_seq == 5
    await carols.wait_until(lambda: len(carols.room_deliveries("den")) == 1)
    assert [d.ciphertext for d in carols.deliveries] == [b"m4"]
    await carols.close()
    await alices.close()


async def test_unary_fetch_and_ack_cover_room_messages(connect: ApiFactory) -> None:
    _keys, (alice, bob) = await _den(connect, "alice", "bob")
    sent = await alice.api.chat.Send(
        room_message("den", b"hello", {("bob", 1): b"keys"}), metadata=alice.api.md
    )
    assert sent.accepted and sent.room_seq == 1
    md = bob.api.md
    fetched = await bob.api.chat.Fetch(chat_pb2.FetchRequest(), metadata=md)
    assert [(d.seq, d.room_seq, d.ciphertext) for d in fetched.deliveries] == [
        (1, 0, b"keys"),
        (0, 1, b"hello"),
    ]
    await bob.api.chat.Ack(
        chat_pb2.AckRequest(seq=1, rooms=[chat_pb2.RoomPosition(room="den", room_seq=1)]),
        metadata=md,
    )
    assert list((await bob.api.chat.Fetch(chat_pb2.FetchRequest(), metadata=md)).deliveries) == []
    await _refused(
        bob.api.chat.Ack(
            chat_pb2.AckRequest(rooms=[chat_pb2.RoomPosition(room="den", room_seq=9)]),
            metadata=md,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "only 1",
    )
    await _refused(
        bob.api.chat.Ack(
            chat_pb2.AckRequest(rooms=[chat_pb2.RoomPosition(room="nowhere", room_seq=1)]),
            metadata=md,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "not a member",
    )


async def test_bad_room_sends_are_refused_and_store_nothing(connect: ApiFactory) -> None:
    keys, (alice, bob) = await _den(connect, "alice", "bob")
    outsider = await _user(connect, "mallory", keys)
    cases = [
        (outsider, room_message("den", b"let me in"), "permission_denied"),
        (alice, room_message("den", bytes(64 * 1024 + 1)), "invalid_argument"),
        (alice, room_message("den", b"x", {("mallory", 1): b"k"}), "invalid_argument"),
        (alice, room_message("den", b"x", {("alice", 1): b"k"}), "invalid_argument"),
        (alice, room_message("den", b""), "invalid_argument"),
    ]
    for n, (who, request, code) in enumerate(cases):
        client = ChatClient(who.api)
        result = await _send(client, request, f"bad{n}")
        assert not result.accepted and result.error_code == code, (n, result)
        await client.close()
    private = chat_pb2.SendRequest(conversation=common_pb2.Conversation(user="bob"),
                                   room_message=b"x")  # fmt: skip
    await _refused(alice.api.chat.Send(private, metadata=alice.api.md),
                   grpc.StatusCode.INVALID_ARGUMENT, "for a room")  # fmt: skip
    fetched = await bob.api.chat.Fetch(chat_pb2.FetchRequest(), metadata=bob.api.md)
    assert list(fetched.deliveries) == []


async def test_acking_or_resuming_a_room_position_never_delivered_is_refused(
    connect: ApiFactory,
) -> None:
    _keys, (alice, bob) = await _den(connect, "alice", "bob")
    await alice.api.chat.Send(room_message("den", b"one"), metadata=alice.api.md)
    bobs = ChatClient(bob.api, auto_ack=False)
    await bobs.wait_until(lambda: len(bobs.room_deliveries("den")) == 1)
    bobs.ack(0, {"den": 2})
    error = await bobs.wait_ended()
    assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "only 1 were delivered" in (error.details() or "")
    ahead = ChatClient(bob.api, resume_rooms={"den": 5})
    error = await ahead.wait_ended()
    assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT
    again = ChatClient(bob.api)  # nothing was acked: the message comes again
    await again.wait_until(lambda: len(again.room_deliveries("den")) == 1)
    await again.close()


# ---- rooms from before rosters -------------------------------------------------------------
async def test_a_legacy_room_keeps_working_until_a_member_signs_its_create(
    connect: ApiFactory,
) -> None:
    keys = Keys()
    alice, bob, _carol = [await _user(connect, n, keys) for n in ("alice", "bob", "carol")]
    lobby = common_pb2.Conversation(room="lobby")
    md = alice.api.md
    # an old-style per-device send to the legacy lobby still works, and waits in bob's mailbox
    old = chat_pb2.SendRequest(
        conversation=lobby,
        ciphertexts=[
            chat_pb2.RecipientCiphertext(
                device=common_pb2.DeviceAddress(user=u, device_id=1),
                ciphertext=b"old " + u.encode(),
            )
            for u in ("bob", "carol")
        ],
    )
    assert (await alice.api.chat.Send(old, metadata=md)).accepted
    await _refused(
        alice.api.chat.Send(room_message("lobby", b"new"), metadata=md),
        grpc.StatusCode.FAILED_PRECONDITION,
        "no signed roster",
    )
    outsider = await _user(connect, "mallory", keys)
    await outsider.api.rooms.LeaveRoom(rooms_pb2.LeaveRoomRequest(name="lobby"),
                                       metadata=outsider.api.md)  # fmt: skip
    await _refused(
        outsider.api.rooms.CreateRoom(
            rooms_pb2.CreateRoomRequest(name="lobby", create_event=outsider.create("lobby")),
            metadata=outsider.api.md,
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "only one of its members",
    )
    bobs = ChatClient(bob.api)
    await bobs.wait_until(lambda: bool(bobs.events))  # roster events are live: be connected
    await alice.api.rooms.CreateRoom(
        rooms_pb2.CreateRoomRequest(name="lobby", create_event=alice.create("lobby")), metadata=md
    )
    await bobs.wait_until(lambda: len(bobs.roster_events("lobby")) == 1)
    assert bobs.texts()[0] == b"old bob"  # the undelivered pairwise message still arrives
    assert await _members(alice.api, "lobby") == ["alice"]
    await _refused(
        bob.api.rooms.JoinRoom(rooms_pb2.JoinRoomRequest(name="lobby"), metadata=bob.api.md),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    await _join(bob, keys, "lobby")
    assert (await alice.api.chat.Send(room_message("lobby", b"new"), metadata=md)).room_seq == 1
    await bobs.wait_until(lambda: len(bobs.room_deliveries("lobby")) == 1)
    # new users are no longer put in a signed lobby by the server
    await _user(connect, "dave", keys)
    assert await _members(alice.api, "lobby") == ["alice", "bob"]
    await bobs.close()


async def test_many_concurrent_room_sends_reach_each_member_once_in_order(
    connect: ApiFactory,
) -> None:
    _keys, users = await _den(connect, "alice", "bob", "carol", "dave")
    clients = [ChatClient(u.api) for u in users]

    async def sends(client: ChatClient) -> None:
        for n in range(5):
            request = room_message("den", f"{client.api.user}:{n}".encode())
            assert (await _send(client, request, f"{client.api.user}{n}")).accepted

    await asyncio.gather(*(sends(c) for c in clients))
    for client in clients:
        await client.wait_until(lambda c=client: len(c.room_deliveries("den")) == 15)
        positions = [d.room_seq for d in client.room_deliveries("den")]
        assert positions == sorted(set(positions))
        by_sender: dict[str, list[int]] = {}
        for d in client.room_deliveries("den"):
            user, n = d.ciphertext.decode().split(":")
            by_sender.setdefault(user, []).append(int(n))
        assert all(ns == list(range(5)) for ns in by_sender.values())
        assert client.api.user not in by_sender
    await asyncio.gather(*(c.close() for c in clients))


async def _change(who: RoomUser, event: bytes, password: str = "", room: str = "den") -> int:
    reply = await who.api.rooms.ChangeRoster(
        rooms_pb2.ChangeRosterRequest(name=room, event=event, password=password),
        metadata=who.api.md,
    )
    return int(reply.sequence)


async def test_admins_and_room_passwords_change_by_signed_events(connect: ApiFactory) -> None:
    keys, (alice, bob) = await _den(connect, "alice", "bob")
    roster = await roster_of(alice.api, "den", keys)
    assert await _change(alice, admin_event(roster, alice.key, "alice", alice.public, "bob",
                                            make_admin=True)) == 2  # fmt: skip
    roster = await roster_of(bob.api, "den", keys)
    secret = password_keys("den", "new secret")
    protect = policy_event(roster, bob.key, "bob", bob.public, secret.policy(TINY))
    await _refused(
        bob.api.rooms.ChangeRoster(rooms_pb2.ChangeRosterRequest(name="den", event=protect),
                                   metadata=bob.api.md),
        grpc.StatusCode.INVALID_ARGUMENT, "authenticator",
    )  # fmt: skip
    assert await _change(bob, protect, secret.authenticator.decode()) == 3
    listing = await alice.api.rooms.ListRooms(rooms_pb2.ListRoomsRequest(), metadata=alice.api.md)
    assert [r.protected for r in listing.rooms if r.name == "den"] == [True]
    carol = await _user(connect, "carol", keys)
    await _refused(_join_call(carol, await roster_of(carol.api, "den", keys), "den"),
                   grpc.StatusCode.PERMISSION_DENIED, "wrong password")  # fmt: skip
    await _join(carol, keys, "den", "new secret")
    roster = await roster_of(alice.api, "den", keys)
    demote = admin_event(roster, alice.key, "alice", alice.public, "bob", make_admin=False)
    await _refused(
        alice.api.rooms.ChangeRoster(
            rooms_pb2.ChangeRosterRequest(name="den", event=demote, password="x"),
            metadata=alice.api.md,
        ),
        grpc.StatusCode.INVALID_ARGUMENT, "only a SET_POLICY",
    )  # fmt: skip
    assert await _change(alice, demote) == 5
    roster = await roster_of(alice.api, "den", keys)
    opened = policy_event(roster, alice.key, "alice", alice.public, OPEN_POLICY)
    await _refused(
        alice.api.rooms.ChangeRoster(
            rooms_pb2.ChangeRosterRequest(name="den", event=opened, password="x" * 64),
            metadata=alice.api.md,
        ),
        grpc.StatusCode.INVALID_ARGUMENT, "open room takes no password",
    )  # fmt: skip
    assert await _change(alice, opened) == 6
    await _join(await _user(connect, "dave", keys), keys)  # open again: no password
    assert await _members(alice.api) == ["alice", "bob", "carol", "dave"]


def _join_call(who: RoomUser, roster: Roster, room: str) -> object:
    return who.api.rooms.JoinRoom(
        rooms_pb2.JoinRoomRequest(name=room, join_event=who.raw(roster, EventKind.JOIN)),
        metadata=who.api.md,
    )


async def test_bad_creates_and_roster_reads_are_refused(connect: ApiFactory) -> None:
    keys, (alice,) = await _den(connect, "alice")
    rooms, md = alice.api.rooms, alice.api.md

    def create(name: str, event: bytes, password: str = "") -> object:
        request = rooms_pb2.CreateRoomRequest(name=name, create_event=event, password=password)
        return rooms.CreateRoom(request, metadata=md)

    await _refused(create("den", alice.create("den")), grpc.StatusCode.ALREADY_EXISTS)
    await _refused(create("attic", alice.create("cellar")), grpc.StatusCode.INVALID_ARGUMENT,
                   "is for room")  # fmt: skip
    await _refused(create("attic", alice.create("attic", password_keys("attic", "pw"))),
                   grpc.StatusCode.INVALID_ARGUMENT, "authenticator")  # fmt: skip
    await _refused(create("attic", alice.create("attic"), "secret password"),
                   grpc.StatusCode.INVALID_ARGUMENT, "no password")  # fmt: skip
    roster = await roster_of(alice.api, "den", keys)
    await _refused(create("den", alice.raw(roster, EventKind.LEAVE)),
                   grpc.StatusCode.INVALID_ARGUMENT, "does not belong")  # fmt: skip
    # a legacy protected room keeps its protection when a member signs its CREATE
    await rooms.CreateRoom(rooms_pb2.CreateRoomRequest(name="old", password="old password!"),
                           metadata=md)  # fmt: skip
    await _refused(create("old", alice.create("old")), grpc.StatusCode.FAILED_PRECONDITION,
                   "protection")  # fmt: skip
    await _refused(
        rooms.JoinRoom(rooms_pb2.JoinRoomRequest(name="old", join_event=alice.create("old")),
                       metadata=md),
        grpc.StatusCode.INVALID_ARGUMENT,
    )  # fmt: skip
    # no account key: nothing to check a signature against
    keyless = await connect("zed")
    stranger = RoomUser(AccountDevice(keyless, None), AccountKeyPair.generate())  # type: ignore[arg-type]
    await _refused(
        keyless.rooms.CreateRoom(
            rooms_pb2.CreateRoomRequest(name="zroom", create_event=stranger.create("zroom")),
            metadata=keyless.md,
        ),
        grpc.StatusCode.FAILED_PRECONDITION, "no account key",
    )  # fmt: skip
    await _refused(
        rooms.ChangeRoster(rooms_pb2.ChangeRosterRequest(name="den"), metadata=md),
        grpc.StatusCode.INVALID_ARGUMENT, "no signed roster event",
    )  # fmt: skip
    await _refused(
        rooms.GetRoster(rooms_pb2.GetRosterRequest(name="den", limit=2000), metadata=md),
        grpc.StatusCode.INVALID_ARGUMENT,
    )  # fmt: skip
    await _refused(rooms.GetRoster(rooms_pb2.GetRosterRequest(name="nowhere"), metadata=md),
                   grpc.StatusCode.NOT_FOUND)  # fmt: skip
    past = await rooms.GetRoster(rooms_pb2.GetRosterRequest(name="den", from_sequence=9),
                                 metadata=md)  # fmt: skip
    assert (list(past.events), past.next_sequence) == ([], 1)
    await _refused(
        rooms.ChangeRoster(rooms_pb2.ChangeRosterRequest(name="old", event=b"x"), metadata=md),
        grpc.StatusCode.INVALID_ARGUMENT,
    )  # fmt: skip
