"""Every way the server ends a Chat stream, as the client sees it: the status, the message, the
machine-readable `securechat-error` trailer (and `retry-after` where waiting is the remedy), and
the status the metrics record for it (`securechat_rpcs_total{method="Chat"}`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from securechat.domain.model import DeviceRef, MailboxEntry
from securechat.node import Node
from securechat.pki import DevPki, fingerprint, load_certificate
from securechat.services.clock import SystemClock
from securechat_proto.v1 import admin_pb2, auth_pb2, chat_pb2, rooms_pb2
from tests.conftest import ApiFactory, server_config
from tests.support.chat import ChatClient, room_send
from tests.support.net import Api, credentials, secure_channel

ADMIN = ("root.admin", "admin password")


def trailers(error: grpc.aio.AioRpcError) -> dict[str, str]:
    return {key: str(value) for key, value in error.trailing_metadata() or ()}


async def ended_with(
    client: ChatClient, status: grpc.StatusCode, code: str, retry_after: str | None = None
) -> grpc.aio.AioRpcError:
    """Wait for the stream to end and check its status and trailers."""
    error = await client.wait_ended()
    assert error is not None, "the stream ended without an error status"
    assert error.code() == status, (error.code(), error.details())
    assert trailers(error).get("securechat-error") == code, trailers(error)
    assert trailers(error).get("retry-after") == retry_after, trailers(error)
    return error


def chat_rpcs(node: Node, status: str) -> float:
    labels = {"method": "Chat", "code": status}
    return node.metrics.registry.get_sample_value("securechat_rpcs_total", labels) or 0.0


async def counted(node: Node, status: str, expected: float = 1.0) -> None:
    """Wait until the server-side handler has finished and recorded the stream's status (it
    may finish just after the client saw the status)."""

    async def poll() -> None:
        while chat_rpcs(node, status) < expected:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), 20)
    assert chat_rpcs(node, status) == expected
    assert chat_rpcs(node, "ENDED") == 0


async def opened(api: Api) -> ChatClient:
    client = ChatClient(api)
    await client.wait_until(lambda: any(e.WhichOneof("event") == "opened" for e in client.events))
    return client


@pytest.fixture
async def admin_node(pki: DevPki, tmp_path: Path) -> AsyncIterator[Node]:
    user, password = ADMIN
    config = server_config(
        pki, tmp_path / "data", **{"auth.admin_user": user, "auth.admin_password": password}
    )
    node = Node(config)
    await node.start()
    yield node
    await node.stop(grace=0)


async def user_api(node: Node, pki: DevPki, apis: list[Api], cert: str, user: str) -> Api:
    api = Api(secure_channel(pki, node.port, cert))
    apis.append(api)
    if user == ADMIN[0]:
        await api.login(*ADMIN)
    else:
        await api.register(user)
        await api.login(user)
    return api


async def test_a_kick_ends_the_stream_kicked_and_the_session_with_it(
    admin_node: Node, pki: DevPki, apis: list[Api]
) -> None:
    admin = await user_api(admin_node, pki, apis, "admin", ADMIN[0])
    bob = await user_api(admin_node, pki, apis, "bob", "bob")
    stream = await opened(bob)
    kicked = await admin.admin.KickUser(
        admin_pb2.KickUserRequest(user="bob", reason="spam"), metadata=admin.md
    )
    assert kicked.streams_closed == 1 and kicked.sessions_revoked == 1
    error = await ended_with(stream, grpc.StatusCode.UNAUTHENTICATED, "kicked")
    assert "spam" in (error.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await bob.rooms.ListRooms(rooms_pb2.ListRoomsRequest(), metadata=bob.md)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    await counted(admin_node, "UNAUTHENTICATED")


async def test_logout_ends_the_streams_of_that_session(server: Node, connect: ApiFactory) -> None:
    alice = await connect("alice")
    stream = await opened(alice)
    await alice.auth.Logout(auth_pb2.LogoutRequest(), metadata=alice.md)
    error = await ended_with(stream, grpc.StatusCode.UNAUTHENTICATED, "logged_out")
    assert "log in again" in (error.details() or "")
    await counted(server, "UNAUTHENTICATED")


class FrozenClock(SystemClock):
    """Wall-clock time stands still, so a session never looks expired to authentication and
    the stream's expiry timer (real time, from the session's expiry) is what ends it."""

    def __init__(self) -> None:
        self.frozen_ms = super().now_ms()

    def now_ms(self) -> int:
        return self.frozen_ms


async def test_session_expiry_ends_the_stream(pki: DevPki, tmp_path: Path, apis: list[Api]) -> None:
    node = Node(
        server_config(pki, tmp_path / "data", **{"auth.token_ttl_s": 1}), clock=FrozenClock()
    )
    await node.start()
    try:
        alice = await user_api(node, pki, apis, "alice", "alice")
        stream = await opened(alice)
        error = await ended_with(stream, grpc.StatusCode.UNAUTHENTICATED, "session_expired")
        assert "log in again" in (error.details() or "")
        await counted(node, "UNAUTHENTICATED")
    finally:
        await node.stop(grace=0)


async def test_a_newer_stream_of_the_same_device_replaces_the_older(
    server: Node, connect: ApiFactory
) -> None:
    alice_api = await connect("alice")
    bob = ChatClient(await connect("bob"))
    first = await opened(alice_api)
    second = ChatClient(alice_api)
    error = await ended_with(first, grpc.StatusCode.ABORTED, "stream_replaced")
    assert "replaced" in (error.details() or "")
    await room_send(bob, "lobby", b"after")
    await second.wait_until(lambda: second.texts() == [b"after"])
    await counted(server, "ABORTED")
    await second.close()
    await bob.close()


async def test_a_revoked_certificate_ends_its_streams(
    admin_node: Node, pki: DevPki, apis: list[Api]
) -> None:
    admin = await user_api(admin_node, pki, apis, "admin", ADMIN[0])
    dave = await user_api(admin_node, pki, apis, "revokee", "dave")
    stream = await opened(dave)
    digest = fingerprint(load_certificate(pki.client("revokee").cert))
    await admin.admin.RevokeCertificate(
        admin_pb2.RevokeCertificateRequest(sha256_fingerprint=digest), metadata=admin.md
    )
    await ended_with(stream, grpc.StatusCode.UNAUTHENTICATED, "certificate_revoked")
    with pytest.raises(grpc.aio.AioRpcError) as info:  # and every later call, the same way
        await dave.rooms.ListRooms(rooms_pb2.ListRoomsRequest(), metadata=dave.md)
    assert trailers(info.value)["securechat-error"] == "certificate_revoked"
    await counted(admin_node, "UNAUTHENTICATED")


async def test_shutdown_sends_a_reconnect_hint_then_ends_unavailable_with_retry_after(
    server: Node, connect: ApiFactory
) -> None:
    stream = await opened(await connect("alice"))
    await server.stop(grace=5)
    error = await ended_with(stream, grpc.StatusCode.UNAVAILABLE, "shutting_down", "1")
    assert "shutting down" in (error.details() or "")
    hints = [e.reconnect for e in stream.events if e.WhichOneof("event") == "reconnect"]
    assert [h.retry_after_ms for h in hints] == [1000]
    assert stream.events[-1].WhichOneof("event") == "reconnect"  # the hint came last
    assert chat_rpcs(server, "UNAVAILABLE") == 1  # stop() waited for the handler


async def test_a_mailbox_read_failure_ends_the_stream_unavailable(
    server: Node, connect: ApiFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(device: DeviceRef, after_seq: int, limit: int) -> list[MailboxEntry]:
        raise ConnectionError("database unreachable")

    alice = await connect("alice")
    monkeypatch.setattr(server.store, "fetch", broken)
    stream = ChatClient(alice)  # its replay reads the mailbox
    error = await ended_with(stream, grpc.StatusCode.UNAVAILABLE, "unavailable")
    assert "reconnect" in (error.details() or "")
    await counted(server, "UNAVAILABLE")


async def test_the_client_closing_or_dropping_its_stream_is_counted_as_such(
    server: Node, connect: ApiFactory
) -> None:
    alice = await connect("alice")
    closing = await opened(alice)
    await closing.close()
    assert closing.error is None
    await counted(server, "OK")
    dropping = await opened(alice)
    await dropping.kill()
    await counted(server, "CANCELLED")


async def test_a_stalled_reader_is_cut_off_while_others_keep_receiving(
    pki: DevPki, tmp_path: Path, apis: list[Api]
) -> None:
    node = Node(server_config(pki, tmp_path / "data", **{"chat.stream_queue_bound": 20}))
    await node.start()
    opts = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1024)]
    try:
        alice = await user_api(node, pki, apis, "alice", "alice")
        bob = await user_api(node, pki, apis, "bob", "bob")
        paths = pki.client("carol")
        carol = Api(
            grpc.aio.secure_channel(
                f"localhost:{node.port}",
                credentials(pki.ca_cert, paths.cert, paths.key),
                options=opts,
            )
        )
        apis.append(carol)
        await carol.register("carol")
        await carol.login("carol")
        sender = ChatClient(alice)
        reader = ChatClient(bob)
        # carol opens a stream and never reads it.
        frames = asyncio.Queue[chat_pb2.ClientFrame]()
        frames.put_nowait(chat_pb2.ClientFrame(open=chat_pb2.OpenStream(device_id=1)))

        async def requests() -> AsyncIterator[chat_pb2.ClientFrame]:
            while True:
                yield await frames.get()

        stalled = carol.chat.Chat(requests(), metadata=carol.md)
        body = b"z" * 16_000
        total = 200
        for i in range(total):
            result = await room_send(sender, "lobby", body + b"%d" % i)
            assert result.accepted
        await reader.wait_until(lambda: len(reader.deliveries) == total, timeout=60)
        assert len({d.message_id for d in reader.deliveries}) == total
        # carol's server-side stream was cut off: reading now ends with RESOURCE_EXHAUSTED.
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in stalled:
                pass
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert trailers(info.value).get("securechat-error") == "slow_consumer"
        assert "retry-after" not in trailers(info.value)  # reconnect at once: nothing was lost
        # ... and she loses nothing: everything is still in her mailbox (in pages bounded in
        # bytes: 1 MiB holds fewer than 100 of these).
        kept: list[int] = []
        while page := (
            await carol.chat.Fetch(
                chat_pb2.FetchRequest(after_seq=kept[-1] if kept else 0), metadata=carol.md
            )
        ).deliveries:
            assert len(page) < 100
            kept += [d.seq for d in page]
        assert kept == list(range(1, total + 1))
        await counted(node, "RESOURCE_EXHAUSTED")
        drops = node.metrics.registry.get_sample_value("securechat_queue_drops_total")
        assert drops == 1
        await sender.close()
        await reader.close()
    finally:
        await node.stop(grace=0)
