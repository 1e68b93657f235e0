"""Revoking a client certificate on one node ends the sessions that logged in over it on every
node (PostgreSQL + Redis), including a node that had the session cached."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from securechat.node import Node
from securechat.pki import DevPki, fingerprint, load_certificate
from securechat_proto.v1 import admin_pb2, rooms_pb2
from tests.conftest import server_config
from tests.support.net import Api, secure_channel

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
ADMIN = {"auth.admin_user": "boss", "auth.admin_password": "admin password 1"}


async def refused(api: Api, token_md: tuple[tuple[str, str], ...]) -> bool:
    try:
        await api.rooms.ListRooms(rooms_pb2.ListRoomsRequest(), metadata=token_md)
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, error.details()
        return True
    return False


async def test_revocation_on_one_node_ends_sessions_on_another(
    pki: DevPki, tmp_path: Path, pg_dsn: str, redis_url: str
) -> None:
    shared = {"storage.db": pg_dsn, "bus.url": redis_url, **ADMIN}
    a = Node(server_config(pki, tmp_path / "a", **shared, **{"server.node": "a"}))
    await a.start()
    b = Node(server_config(pki, tmp_path / "b", **shared, **{"server.node": "b"}))
    await b.start()
    apis: list[Api] = []
    try:
        laptop = Api(secure_channel(pki, a.port, "revokee"))
        on_b = Api(secure_channel(pki, b.port, "client"))
        admin = Api(secure_channel(pki, a.port, "admin"))
        apis += [laptop, on_b, admin]
        await laptop.register("dave")
        await laptop.login("dave")
        assert not await refused(on_b, laptop.md)  # node b now has the session cached
        await admin.login("boss", "admin password 1")
        cert = load_certificate(pki.client("revokee").cert)
        await admin.admin.RevokeCertificate(
            admin_pb2.RevokeCertificateRequest(sha256_fingerprint=fingerprint(cert)),
            metadata=admin.md,
        )
        for _ in range(200):  # the bus carries the revocation to b
            if await refused(on_b, laptop.md):
                break
            await asyncio.sleep(0.05)
        assert await refused(on_b, laptop.md)
    finally:
        for api in apis:
            await api.channel.close()
        await b.stop(grace=0.2)
        await a.stop(grace=0.2)
