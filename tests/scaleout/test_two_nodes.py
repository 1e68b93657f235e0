"""Two server processes sharing PostgreSQL and Redis: messages, presence and kicks cross nodes,
and nothing acknowledged is lost when a node is SIGKILLed or Redis goes away for a while."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest

from securechat.pki import DevPki
from securechat_proto.v1 import admin_pb2, chat_pb2, common_pb2
from tests.bus.conftest import eventually
from tests.bus.redis_server import RedisProcess
from tests.scaleout.peer import Peer
from tests.scaleout.procs import ADMIN_PASSWORD, start_node
from tests.support.process import ServerProcess

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.e2e]
LOBBY = common_pb2.Conversation(room="lobby")


def dm(user: str) -> common_pb2.Conversation:
    return common_pb2.Conversation(user=user)


async def online_users(peer: Peer) -> list[str]:
    reply = await peer.api.chat.ListOnline(chat_pb2.ListOnlineRequest(), metadata=peer.api.md)
    return [u.user for u in reply.users]


@pytest.fixture
async def cluster(
    pki: DevPki, tmp_path: Path, pg_dsn: str, redis_url: str
) -> AsyncIterator[Callable[..., list[ServerProcess]]]:
    started: list[ServerProcess] = []

    def start(count: int = 2, bus: str = redis_url) -> list[ServerProcess]:
        nodes = []
        for i in range(count):  # one after the other: the first one migrates the database
            node = start_node(pki, tmp_path / f"node{i}", pg_dsn, bus)
            started.append(node)
            nodes.append(node)
        return nodes

    yield start
    for node in started:
        node.terminate()


async def test_messages_presence_and_kicks_cross_nodes(
    pki: DevPki, cluster: Callable[..., list[ServerProcess]]
) -> None:
    a, b = cluster()
    alice = Peer(pki, "alice", [a.port])
    bob = Peer(pki, "bob", [b.port])
    try:
        await alice.start()
        await bob.api.register("bob")  # before alice's stream is up: bob shares the lobby
        await eventually(lambda: alice.api.device_id > 0)
        await asyncio.sleep(0.3)  # alice's stream is attached
        await bob.start(register=False)
        await eventually(lambda: ("bob", True) in alice.presence)
        assert await online_users(alice) == ["alice", "bob"]
        assert await online_users(bob) == ["alice", "bob"]

        private = await alice.send(dm("bob"), [("bob", bob.api.device_id)], b"hello bob")
        room = await bob.send(LOBBY, [("alice", alice.api.device_id)], b"hello lobby")
        await eventually(lambda: bob.received[private] == 1 and alice.received[room] == 1)

        admin = Peer(pki, "root.admin", [a.port], cert="admin")
        await admin.api.login("root.admin", ADMIN_PASSWORD)
        await admin.api.admin.KickUser(admin_pb2.KickUserRequest(user="bob"), metadata=admin.api.md)
        await eventually(lambda: bob.ended == grpc.StatusCode.UNAUTHENTICATED)
        await eventually(lambda: ("bob", False) in alice.presence)
        await admin.close()
    finally:
        await alice.close()
        await bob.close()


Hook = Callable[[int], Awaitable[None]]


async def exchange(alice: Peer, bob: Peer, carol: Peer, rounds: int, hook: Hook) -> None:
    """alice and bob send room and private messages in turn (carol only listens); hook(i) runs
    after alice's round i. Then every acknowledged message must reach each of its recipients
    exactly once."""
    peers = {p.user: p for p in (alice, bob, carol)}
    expected: dict[str, set[str]] = {name: set() for name in peers}

    async def talk(me: Peer, other: Peer) -> None:
        for i in range(rounds):
            await asyncio.sleep(0.05)
            if i % 2:
                targets, conversation = [other], dm(other.user)
            else:
                targets, conversation = [p for p in peers.values() if p is not me], LOBBY
            recipients = [(p.user, p.api.device_id) for p in targets]
            message_id = await me.send(conversation, recipients, b"%s %d" % (me.user.encode(), i))
            for p in targets:
                expected[p.user].add(message_id)
            if me is alice:
                await hook(i)

    await asyncio.gather(talk(alice, bob), talk(bob, alice))

    def all_arrived() -> bool:
        return all(peers[n].received[m] for n, ids in expected.items() for m in ids)

    await eventually(all_arrived, 40)
    for name, peer in peers.items():
        assert len(expected[name]) >= rounds // 2
        duplicates = {m: n for m, n in peer.received.items() if n != 1}
        assert duplicates == {}, f"{name} got messages more than once"


async def test_sigkill_of_a_node_loses_no_acknowledged_message(
    pki: DevPki, cluster: Callable[..., list[ServerProcess]]
) -> None:
    a, b = cluster()
    ports = [a.port, b.port]
    alice, carol = Peer(pki, "alice", ports), Peer(pki, "carol", ports)
    bob = Peer(pki, "bob", ports[::-1])
    peers = [alice, bob, carol]
    try:
        for peer in peers:
            await peer.api.register(peer.user)
        for peer in peers:
            await peer.start(register=False)

        async def kill_a(i: int) -> None:
            if i == 12:
                a.kill()

        await exchange(alice, bob, carol, 40, kill_a)
        assert alice.reconnects >= 1 and carol.reconnects >= 1  # they moved to node b
    finally:
        for peer in peers:
            await peer.close()


async def test_a_redis_outage_loses_no_acknowledged_message(
    pki: DevPki, tmp_path: Path, cluster: Callable[..., list[ServerProcess]]
) -> None:
    redis = RedisProcess(tmp_path)
    redis.start()
    a, b = cluster(bus=redis.url)
    alice, carol = Peer(pki, "alice", [a.port]), Peer(pki, "carol", [a.port])
    bob = Peer(pki, "bob", [b.port])
    peers = [alice, bob, carol]
    try:
        for peer in peers:
            await peer.api.register(peer.user)
        for peer in peers:
            await peer.start(register=False)

        restart: list[asyncio.Task[None]] = []

        async def restart_later() -> None:
            await asyncio.sleep(3)
            await asyncio.to_thread(redis.start)

        async def outage(i: int) -> None:
            if i == 10:
                redis.kill()
                restart.append(asyncio.create_task(restart_later()))

        # Traffic ends while Redis is still down: only the resync after it returns delivers
        # the last messages across nodes (no later notification reveals the gap).
        await exchange(alice, bob, carol, 30, outage)
        assert restart[0].done()
    finally:
        for peer in peers:
            await peer.close()
        redis.kill()
