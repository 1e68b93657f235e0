"""Mutual TLS: clients without an acceptable certificate, or without TLS, never get in, and the
server keeps serving good clients after each attempt."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from securechat.node import Node
from securechat.pki import DevPki
from securechat_proto.v1 import auth_pb2, auth_pb2_grpc
from tests.support.net import PASSWORD, credentials, secure_channel


async def register(channel: grpc.aio.Channel, username: str) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    request = auth_pb2.RegisterRequest(username=username, password=PASSWORD)
    await stub.Register(request, timeout=10)


async def still_serving(pki: DevPki, port: int, username: str) -> None:
    async with secure_channel(pki, port) as channel:
        await register(channel, username)


async def refused(channel: grpc.aio.Channel) -> grpc.aio.AioRpcError:
    async with channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await register(channel, "intruder")
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value.details()
    return info.value


@pytest.mark.parametrize(
    "client", [None, "foreign", "expired"], ids=["no-cert", "foreign", "expired"]
)
async def test_handshake_fails_without_a_good_client_certificate(
    server: Node, pki: DevPki, client: str | None
) -> None:
    paths = pki.client(client) if client else None
    creds = credentials(pki.ca_cert, paths.cert if paths else None, paths.key if paths else None)
    channel = grpc.aio.secure_channel(f"localhost:{server.port}", creds)
    await refused(channel)
    await still_serving(pki, server.port, f"after{client or 'none'}")


async def test_plaintext_client_fails_cleanly(server: Node, pki: DevPki) -> None:
    await refused(grpc.aio.insecure_channel(f"localhost:{server.port}"))
    await still_serving(pki, server.port, "afterplain")


async def test_raw_plaintext_bytes_are_dropped(server: Node, pki: DevPki) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n" + b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=10)  # the server closes the socket
    assert b"HTTP" not in answer  # no plaintext response, just a TLS alert or nothing
    writer.close()
    await writer.wait_closed()
    await still_serving(pki, server.port, "afterraw")


async def test_server_from_an_untrusted_ca_is_refused_by_the_client(
    server: Node, pki: DevPki
) -> None:
    """The client checks the server too: a CA that did not sign the server is refused."""
    assert pki.foreign_ca_cert is not None
    paths = pki.client("client")
    creds = credentials(pki.foreign_ca_cert, paths.cert, paths.key)
    await refused(grpc.aio.secure_channel(f"localhost:{server.port}", creds))
    await still_serving(pki, server.port, "afterforeignca")
