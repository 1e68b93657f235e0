"""Room logs are trimmed once every member device is past a message (issue 15), over a real
server: an offline member still gets each message exactly once, and the log empties once
everyone acked."""

from __future__ import annotations

import asyncio
import logging

import pytest

from securechat import node as node_module
from securechat.node import Node
from securechat_proto.v1 import chat_pb2, rooms_pb2
from tests.conftest import ApiFactory
from tests.support.chat import ChatClient
from tests.support.rosters import Keys, RoomUser, room_message, room_user, roster_of


async def _user(connect: ApiFactory, name: str, keys: Keys) -> RoomUser:
    api = await connect()
    await api.register(name)
    await api.login(name, keys=False)
    return await room_user(api, keys)


async def _den(connect: ApiFactory, *names: str) -> list[RoomUser]:
    keys = Keys()
    users = [await _user(connect, name, keys) for name in names]
    owner = users[0]
    await owner.api.rooms.CreateRoom(
        rooms_pb2.CreateRoomRequest(name="den", create_event=owner.create("den")),
        metadata=owner.api.md,
    )
    for user in users[1:]:
        roster = await roster_of(user.api, "den", keys)
        await user.api.rooms.JoinRoom(
            rooms_pb2.JoinRoomRequest(name="den", join_event=user.join(roster)),
            metadata=user.api.md,
        )
    return users


async def _send(client: ChatClient, body: bytes, cid: str) -> int:
    request = room_message("den", body, client_id=cid)
    client.put(chat_pb2.ClientFrame(send=request))
    await client.wait_until(lambda: cid in client.results)
    assert client.results[cid].accepted, client.results[cid]
    return client.results[cid].room_seq


async def _read_and_ack(server: Node, client: ChatClient, count: int) -> list[bytes]:
    """Wait for ``count`` room messages, ack the last, close, and let the ack be stored."""
    await client.wait_until(lambda: len(client.room_deliveries("den")) >= count)
    got = client.room_deliveries("den")
    client.ack(0, {"den": got[-1].room_seq})
    await client.close()  # the server read the ack before the close
    await server.messenger.room_acks.drain()
    return [d.ciphertext for d in got]


async def _stored(server: Node) -> list[bytes]:
    return [e.ciphertext for e in await server.store.fetch_room("den", 0, 1_000)]


async def test_an_offline_member_gets_each_message_once_and_the_log_empties_once_all_acked(
    connect: ApiFactory, server: Node
) -> None:
    alice, bob, carol = await _den(connect, "alice", "bob", "carol")
    alices = ChatClient(alice.api)
    assert [await _send(alices, b"m%d" % i, f"m{i}") for i in range(3)] == [1, 2, 3]
    assert await _read_and_ack(server, ChatClient(bob.api, auto_ack=False), 3) == [
        b"m0", b"m1", b"m2",
    ]  # fmt: skip
    # carol has never been online: nothing goes (alice's own messages hold nothing back)
    assert await server.trim_room_logs() == 0
    assert await _stored(server) == [b"m0", b"m1", b"m2"]
    carols = ChatClient(carol.api, auto_ack=False)
    await carols.wait_until(lambda: len(carols.room_deliveries("den")) == 3)
    carols.ack(0, {"den": 2})  # carol processed two of them before going away
    await carols.close()
    await server.messenger.room_acks.drain()
    assert await server.trim_room_logs() == 2
    assert await _stored(server) == [b"m2"]
    # back after the trim: exactly what she had not acked, once, then the next message
    again = ChatClient(carol.api, auto_ack=False)
    await again.wait_until(lambda: len(again.room_deliveries("den")) == 1)
    assert await _send(alices, b"m3", "m3") == 4
    assert await _read_and_ack(server, again, 2) == [b"m2", b"m3"]
    assert await server.trim_room_logs() == 1  # bob (offline, at 3) still lacks m3
    assert await _stored(server) == [b"m3"]
    assert await _read_and_ack(server, ChatClient(bob.api, auto_ack=False), 1) == [b"m3"]
    assert await server.trim_room_logs() == 1
    assert await _stored(server) == []
    # the log goes on after its positions: a new message reaches everyone, once
    assert await _send(alices, b"m4", "m4") == 5
    assert await _read_and_ack(server, ChatClient(carol.api, auto_ack=False), 1) == [b"m4"]
    assert await _read_and_ack(server, ChatClient(bob.api, auto_ack=False), 1) == [b"m4"]
    assert alices.room_deliveries("den") == []  # never echoed to the sender
    await alices.close()


async def test_housekeeping_trims_the_log_and_logs_only_a_count(
    connect: ApiFactory,
    server: Node,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    alice, bob = await _den(connect, "alice", "bob")
    alices = ChatClient(alice.api)
    assert await _send(alices, b"secret body", "m0") == 1
    assert await _read_and_ack(server, ChatClient(bob.api, auto_ack=False), 1) == [b"secret body"]
    caplog.set_level(logging.INFO, logger="securechat.server")
    monkeypatch.setattr(node_module, "ROOM_TRIM_EVERY", 1)  # every tick (a second) from now

    def trimmed() -> list[str]:
        return [r.getMessage() for r in caplog.records if "trimmed" in r.getMessage()]

    async def logged() -> None:
        while not trimmed():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(logged(), 20)
    assert await _stored(server) == []
    lines = trimmed()
    assert lines == ["trimmed 1 room messages every member device has acknowledged"]
    assert not any("secret" in r.getMessage() for r in caplog.records)
    await alices.close()
