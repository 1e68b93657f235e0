"""Chat core over a real server: rooms, private messages, mailboxes, resume, ordering."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from securechat.node import Node
from securechat.pki import DevPki
from securechat_proto.v1 import chat_pb2, common_pb2, rooms_pb2
from tests.conftest import ApiFactory
from tests.support.chat import ChatClient, room_devices, room_send
from tests.support.net import Api, secure_channel


async def test_two_clients_in_a_room_get_each_message_once_in_order(connect: ApiFactory) -> None:
    alice = ChatClient(await connect("alice"))
    bob = ChatClient(await connect("bob"))
    for i in range(20):
        sender = alice if i % 2 == 0 else bob
        result = await room_send(sender, "lobby", f"{sender.api.user}:{i}".encode())
        assert result.accepted, result.error_message
    await alice.wait_until(lambda: len(alice.deliveries) == 10)
    await bob.wait_until(lambda: len(bob.deliveries) == 10)
    assert bob.texts() == [f"alice:{i}".encode() for i in range(0, 20, 2)]
    assert alice.texts() == [f"bob:{i}".encode() for i in range(1, 20, 2)]
    assert {d.conversation.room for d in bob.deliveries} == {"lobby"}
    await alice.close()
    await bob.close()


async def test_fifty_clients_receive_every_message_exactly_once_in_sender_order(
    connect: ApiFactory,
) -> None:
    apis = [await connect(f"user{i:02d}") for i in range(50)]
    clients = [ChatClient(api) for api in apis]
    per_sender = 3

    async def client_sends(c: ChatClient) -> None:
        for n in range(per_sender):
            result = await room_send(c, "lobby", f"{c.api.user}:{n}".encode())
            assert result.accepted, result.error_message

    await asyncio.gather(*(client_sends(c) for c in clients))
    expected = per_sender * 49
    for c in clients:
        await c.wait_until(lambda c=c: len(c.deliveries) >= expected, timeout=60)
    for c in clients:
        assert len(c.deliveries) == expected
        assert len({d.message_id for d in c.deliveries}) == expected
        seen: dict[str, list[int]] = defaultdict(list)
        for d in c.deliveries:
            user, n = d.ciphertext.decode().split(":")
            seen[user].append(int(n))
        assert all(ns == list(range(per_sender)) for ns in seen.values())
        assert c.api.user not in seen
        seqs = [d.seq for d in c.deliveries]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    await asyncio.gather(*(c.close() for c in clients))


async def test_private_message_reaches_only_its_recipient(connect: ApiFactory) -> None:
    alice = ChatClient(await connect("alice"))
    bob = ChatClient(await connect("bob"))
    carol = ChatClient(await connect("carol"))
    result = await alice.send(common_pb2.Conversation(user="bob"), {("bob", 1): b"psst"})
    assert result.accepted
    await bob.wait_until(lambda: len(bob.deliveries) == 1)
    delivery = bob.deliveries[0]
    assert delivery.ciphertext == b"psst"
    assert delivery.conversation.user == "alice"
    assert delivery.sender.user == "alice"
    # A room message afterwards proves carol's stream works and got nothing private.
    await room_send(alice, "lobby", b"hello all")
    await carol.wait_until(lambda: len(carol.deliveries) == 1)
    assert carol.texts() == [b"hello all"]
    for c in (alice, bob, carol):
        await c.close()


async def test_offline_user_gets_all_hundred_messages_on_reconnect(connect: ApiFactory) -> None:
    bob_api = await connect("bob")
    alice = ChatClient(await connect("alice"))
    for i in range(100):
        result = await alice.send(common_pb2.Conversation(user="bob"), {("bob", 1): b"%d" % i})
        assert result.accepted
    bob = ChatClient(bob_api)
    await bob.wait_until(lambda: len(bob.deliveries) == 100)
    assert bob.texts() == [b"%d" % i for i in range(100)]
    opened = bob.events[0].opened
    assert opened.pending == 100
    await bob.close()
    await alice.close()


async def test_killed_client_resumes_from_last_ack_and_misses_nothing(connect: ApiFactory) -> None:
    bob_api = await connect("bob")
    alice = ChatClient(await connect("alice"))
    bob = ChatClient(bob_api, auto_ack=False)
    for i in range(10):
        await alice.send(common_pb2.Conversation(user="bob"), {("bob", 1): b"%d" % i})
    await bob.wait_until(lambda: len(bob.deliveries) == 10)
    bob.ack(bob.deliveries[4].seq)  # processed 0..4, then killed before acking more
    await asyncio.sleep(0.2)
    await bob.kill()
    for i in range(10, 15):
        await alice.send(common_pb2.Conversation(user="bob"), {("bob", 1): b"%d" % i})
    # Restart: resume after the last processed sequence.
    again = ChatClient(bob_api, resume_after=bob.deliveries[4].seq)
    await again.wait_until(lambda: len(again.deliveries) == 10)
    assert again.texts() == [b"%d" % i for i in range(5, 15)]
    await again.close()
    await alice.close()


async def test_unary_send_fetch_and_ack(connect: ApiFactory) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    request = chat_pb2.SendRequest(
        conversation=common_pb2.Conversation(user="bob"),
        client_message_id="x1",
        ciphertexts=[
            chat_pb2.RecipientCiphertext(
                device=common_pb2.DeviceAddress(user="bob", device_id=1), ciphertext=b"hi"
            )
        ],
    )
    result = await alice.chat.Send(request, metadata=alice.md)
    assert result.accepted and result.client_message_id == "x1" and result.message_id
    fetched = await bob.chat.Fetch(chat_pb2.FetchRequest(), metadata=bob.md)
    assert [d.ciphertext for d in fetched.deliveries] == [b"hi"]
    await bob.chat.Ack(chat_pb2.AckRequest(seq=fetched.deliveries[0].seq), metadata=bob.md)
    again = await bob.chat.Fetch(chat_pb2.FetchRequest(), metadata=bob.md)
    assert list(again.deliveries) == []


async def test_room_join_and_leave_are_announced_to_members(connect: ApiFactory) -> None:
    alice = ChatClient(await connect("alice"))
    bob_api = await connect("bob")
    await alice.api.rooms.CreateRoom(rooms_pb2.CreateRoomRequest(name="den"), metadata=alice.api.md)
    await bob_api.rooms.JoinRoom(rooms_pb2.JoinRoomRequest(name="den"), metadata=bob_api.md)
    await bob_api.rooms.LeaveRoom(rooms_pb2.LeaveRoomRequest(name="den"), metadata=bob_api.md)

    def changes() -> list[tuple[str, str, int]]:
        return [
            (e.membership.room, e.membership.user, e.membership.kind)
            for e in alice.events
            if e.WhichOneof("event") == "membership" and e.membership.room == "den"
        ]

    joined, left = chat_pb2.MembershipChange.KIND_JOINED, chat_pb2.MembershipChange.KIND_LEFT
    await alice.wait_until(lambda: len(changes()) == 3)
    assert changes() == [("den", "alice", joined), ("den", "bob", joined), ("den", "bob", left)]
    assert await room_devices(alice.api, "den") == [("alice", 1)]
    await alice.close()


async def test_presence_is_pushed_to_contacts_and_listed(connect: ApiFactory) -> None:
    alice = ChatClient(await connect("alice"))
    bob_api = await connect("bob")
    await alice.wait_until(lambda: any(e.WhichOneof("event") == "opened" for e in alice.events))
    bob = ChatClient(bob_api)

    def presence() -> list[tuple[str, bool]]:
        return [
            (e.presence.user, e.presence.online)
            for e in alice.events
            if e.WhichOneof("event") == "presence"
        ]

    await alice.wait_until(lambda: ("bob", True) in presence())
    online = await alice.api.chat.ListOnline(chat_pb2.ListOnlineRequest(), metadata=alice.api.md)
    assert [u.user for u in online.users] == ["alice", "bob"]
    await bob.close()
    await alice.wait_until(lambda: ("bob", False) in presence())
    await alice.close()


async def test_messages_survive_a_server_restart(
    server: Node, connect: ApiFactory, pki: DevPki
) -> None:
    alice = await connect("alice")
    await connect("bob")
    request = chat_pb2.SendRequest(
        conversation=common_pb2.Conversation(user="bob"),
        ciphertexts=[
            chat_pb2.RecipientCiphertext(
                device=common_pb2.DeviceAddress(user="bob", device_id=1), ciphertext=b"kept"
            )
        ],
    )
    assert (await alice.chat.Send(request, metadata=alice.md)).accepted
    await server.stop(grace=0.5)
    again = Node(server.config)  # same data dir
    await again.start()
    bob = Api(secure_channel(pki, again.port, "bob"))
    try:
        await bob.login("bob", device_id=1)
        fetched = await bob.chat.Fetch(chat_pb2.FetchRequest(), metadata=bob.md)
        assert [d.ciphertext for d in fetched.deliveries] == [b"kept"]
    finally:
        await bob.channel.close()
        await again.stop(grace=0)


async def test_a_second_device_joins_the_first_and_senders_must_re_encrypt(
    connect: ApiFactory,
) -> None:
    """Devices are added, never swapped: the first device keeps its stream and its mail."""
    alice = ChatClient(await connect("alice"))
    old_bob = ChatClient(await connect("bob"))
    await old_bob.wait_until(lambda: len(old_bob.events) >= 1)
    new_bob = await connect("bob", register=False)
    assert new_bob.device_id == 2
    stale = await alice.send(common_pb2.Conversation(user="bob"), {("bob", 1): b"old"})
    assert not stale.accepted and stale.error_code == "stale_devices"
    assert [(d.user, d.device_id) for d in stale.current_devices] == [("bob", 1), ("bob", 2)]
    both = {("bob", 1): b"to one", ("bob", 2): b"to two"}
    assert (await alice.send(common_pb2.Conversation(user="bob"), both)).accepted
    await old_bob.wait_until(lambda: old_bob.texts() == [b"to one"])
    assert old_bob.error is None  # still connected
    await alice.close()
    await old_bob.close()


async def test_a_bare_login_without_keys_never_blocks_anyone(connect: ApiFactory) -> None:
    """A device that logged in but never published keys (grpcurl's Login, `securechat-admin
    stats`) is nobody's recipient; members are told when a device gets keys."""
    alice = ChatClient(await connect("alice"))
    bob = ChatClient(await connect("bob"))
    await connect("carol")
    bare = await connect()
    await bare.login("carol", keys=False)  # a second device of carol, without keys
    assert bare.device_id == 2
    await alice.wait_until(lambda: len(alice.events) >= 1)
    assert sorted(await room_devices(alice.api, "lobby")) == [
        ("alice", 1),
        ("bob", 1),
        ("carol", 1),
    ]
    assert (await room_send(alice, "lobby", b"everyone with keys")).accepted
    to_carol = await alice.send(common_pb2.Conversation(user="carol"), {("carol", 1): b"hi"})
    assert to_carol.accepted

    await bare.publish_keys()  # now it is a recipient, and the members hear of it
    await bob.wait_until(lambda: any(
        e.WhichOneof("event") == "membership"
        and e.membership.user == "carol"
        and e.membership.kind == chat_pb2.MembershipChange.KIND_DEVICE_ADDED
        for e in bob.events
    ))  # fmt: skip
    stale = await room_send(alice, "lobby", b"cached list", client_id="x1")
    assert stale.accepted  # room_send lists the members afresh: carol/2 is in it
    assert ("carol", 2) in await room_devices(alice.api, "lobby")
    old_list = {("bob", 1): b"x", ("carol", 1): b"x"}
    refused = await alice.send(common_pb2.Conversation(room="lobby"), old_list)
    assert refused.error_code == "stale_devices"
    assert ("carol", 2) in [(d.user, d.device_id) for d in refused.current_devices]
    for client in (alice, bob):
        await client.close()
