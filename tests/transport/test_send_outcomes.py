"""What a send's answer says beyond accepted: a retry answered with the first result, and the
devices a room message skipped because their mailbox was full (issue 13)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from securechat.node import Node
from securechat.pki import DevPki
from securechat_proto.v1 import chat_pb2
from tests.conftest import ApiFactory, server_config
from tests.support.chat import ChatClient, direct, room_send
from tests.support.net import Api, secure_channel


async def stored_for(api: Api) -> list[chat_pb2.Delivery]:
    return list((await api.chat.Fetch(chat_pb2.FetchRequest(), metadata=api.md)).deliveries)


async def test_a_send_retried_at_once_on_the_stream_is_stored_once(connect: ApiFactory) -> None:
    alice = ChatClient(await connect("alice"))
    bob = await connect("bob")
    first = chat_pb2.ClientFrame(send=direct("bob", b"once", "same-id"))
    alice.put(first)
    alice.put(first)  # before the first is committed: the retry waits for it
    await alice.wait_until(lambda: sum(e.WhichOneof("event") == "send_result"
                                       for e in alice.events) == 2)  # fmt: skip
    results = [e.send_result for e in alice.events if e.WhichOneof("event") == "send_result"]
    assert all(r.accepted for r in results)
    assert results[0].message_id == results[1].message_id
    assert sorted(r.duplicate for r in results) == [False, True]
    # Later, over the unary call, with other contents even: the first result again.
    again = await alice.api.chat.Send(direct("bob", b"other", "same-id"), metadata=alice.api.md)
    assert (again.accepted, again.duplicate, again.message_id) == (
        True, True, results[0].message_id,
    )  # fmt: skip
    assert [d.ciphertext for d in await stored_for(bob)] == [b"once"]
    await alice.close()


@pytest.fixture
async def small_mailboxes(pki: DevPki, tmp_path: Path) -> AsyncIterator[Node]:
    config = server_config(
        pki, tmp_path / "data",
        **{"chat.mailbox_max_entries": 3, "chat.mailbox_sender_max_entries": 2},
    )  # fmt: skip
    node = Node(config)
    await node.start()
    yield node
    await node.stop(grace=0)


async def test_a_room_message_skips_a_full_mailbox_and_says_so(
    small_mailboxes: Node, pki: DevPki, apis: list[Api]
) -> None:
    async def user(name: str) -> Api:
        api = Api(secure_channel(pki, small_mailboxes.port))
        apis.append(api)
        await api.register(name)
        await api.login(name)
        return api

    alice, bob, carol = await user("alice"), await user("bob"), await user("carol")
    sender = ChatClient(alice)
    for n in range(2):  # bob and carol are offline: 2 of alice's each
        assert (await room_send(sender, "lobby", b"m%d" % n)).accepted
    result = await room_send(sender, "lobby", b"third")  # over alice's share of both mailboxes
    assert (result.accepted, result.error_code) == (False, "mailbox_full")
    assert result.retry_after_s >= 1
    carols = ChatClient(carol)  # carol reads and acknowledges hers: there is room again
    await carols.wait_until(lambda: len(carols.deliveries) == 2)
    await carols.close()

    async def acknowledged() -> None:  # the acks are written in the background
        while await stored_for(carol):
            await asyncio.sleep(0.01)

    await asyncio.wait_for(acknowledged(), 20)
    result = await room_send(sender, "lobby", b"fourth")
    assert result.accepted
    assert [(d.user, d.device_id) for d in result.full_devices] == [("bob", 1)]
    assert [d.ciphertext for d in await stored_for(carol)] == [b"fourth"]
    assert [d.ciphertext for d in await stored_for(bob)] == [b"m0", b"m1"]
    await sender.close()
