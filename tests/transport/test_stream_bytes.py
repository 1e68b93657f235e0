"""A Chat stream's memory is bounded in bytes, not only in events (issue 13): a reader that never
reads holds at most chat.stream_queue_max_bytes on the server, then is cut off; frames stay
within chat.max_batch_bytes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from securechat.domain.model import DeviceRef
from securechat.node import Node
from securechat.pki import DevPki
from securechat_proto.v1 import chat_pb2
from tests.conftest import server_config
from tests.support.chat import ChatClient, direct
from tests.support.net import Api, credentials

BATCH = 128 * 1024
QUEUE = 512 * 1024
SMALL_WINDOW = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1024)]


@pytest.fixture
async def node(pki: DevPki, tmp_path: Path) -> AsyncIterator[Node]:
    overrides = {"chat.max_batch_bytes": BATCH, "chat.stream_queue_max_bytes": QUEUE}
    node = Node(server_config(pki, tmp_path / "data", **overrides))
    await node.start()
    yield node
    await node.stop(grace=0)


async def login(node: Node, pki: DevPki, apis: list[Api], name: str) -> Api:
    paths = pki.client("client")
    channel = grpc.aio.secure_channel(
        f"localhost:{node.port}",
        credentials(pki.ca_cert, paths.cert, paths.key),
        options=SMALL_WINDOW,
    )
    api = Api(channel)
    apis.append(api)
    await api.register(name)
    await api.login(name)
    return api


def never_read(api: Api) -> grpc.aio.StreamStreamCall:
    async def frames() -> AsyncIterator[chat_pb2.ClientFrame]:
        yield chat_pb2.ClientFrame(open=chat_pb2.OpenStream(device_id=1))
        await asyncio.Event().wait()

    return api.chat.Chat(frames(), metadata=api.md)


async def test_a_reader_that_never_reads_is_cut_off_by_bytes(
    node: Node, pki: DevPki, apis: list[Api]
) -> None:
    alice = await login(node, pki, apis, "alice")
    carol = await login(node, pki, apis, "carol")
    stalled = never_read(carol)
    carol_device = DeviceRef("carol", 1)
    while carol_device not in node.hub.streams:
        await asyncio.sleep(0.01)
    stream = node.hub.streams[carol_device]
    sent = 0
    while stream.ending is None:  # 64 KiB each: far fewer events than the bound of 2000
        assert sent < 200, "the stream held 12 MiB and was not cut off"
        await alice.chat.Send(direct("carol", b"z" * 65_000, f"m{sent}"), metadata=alice.md)
        sent += 1
        assert stream.queued_bytes <= QUEUE
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in stalled:
            pass
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert dict(info.value.trailing_metadata() or ())["securechat-error"] == "slow_consumer"
    assert sent < 40  # cut at its byte bound (half a MiB and what grpc holds), not at 2000
    # Nothing was lost: a reader that reads gets everything, in frames within the batch bound.
    reader = ChatClient(carol, auto_ack=False)
    await reader.wait_until(lambda: len(reader.deliveries) == sent)
    assert reader.frames >= sent * 65_000 // BATCH
    await reader.close()


async def test_a_big_backlog_is_read_no_faster_than_the_reader_takes_it(
    node: Node, pki: DevPki, apis: list[Api]
) -> None:
    alice = await login(node, pki, apis, "alice")
    carol = await login(node, pki, apis, "carol")
    for n in range(100):  # 6.2 MiB waiting
        await alice.chat.Send(direct("carol", b"y" * 65_000, f"m{n}"), metadata=alice.md)
    stalled = never_read(carol)
    carol_device = DeviceRef("carol", 1)
    while carol_device not in node.hub.streams:
        await asyncio.sleep(0.01)
    stream = node.hub.streams[carol_device]
    for _ in range(20):  # the replay pauses; the stream is not cut off and holds its bound
        await asyncio.sleep(0.05)
        assert stream.queued_bytes <= QUEUE
    assert stream.ending is None
    stalled.cancel()
