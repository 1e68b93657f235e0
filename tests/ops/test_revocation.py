"""Client-certificate revocation on a running server: unary calls and open streams end."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner
from grpc_health.v1 import health_pb2, health_pb2_grpc

from securechat.admin_cli import cli
from securechat.domain.model import PeerCertificate
from securechat.node import Node
from securechat.pki import DevPki, fingerprint, load_certificate, revoke
from securechat_proto.v1 import admin_pb2, rooms_pb2
from tests.conftest import server_config
from tests.ops.conftest import copy_pki, fresh_channel, open_stream
from tests.support.chat import ChatClient
from tests.support.net import Api

ADMIN_PASSWORD = "admin password 123"


async def login(pki: DevPki, port: int, cert: str, user: str, admin_password: str = "") -> Api:
    """A logged-in Api over its own connection (registering ``user`` unless it is the admin)."""
    paths = pki.client(cert)
    api = Api(fresh_channel(port, pki.ca_cert, paths.cert, paths.key))
    if admin_password:
        await api.login(user, admin_password)
    else:
        await api.register(user)
        await api.login(user)
    return api


async def assert_revoked_and_others_fine(
    revokee: Api, stream: ChatClient, alice: Api, alice_stream: ChatClient
) -> None:
    error = await stream.wait_ended(timeout=20)
    assert error is not None and error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "revoked" in (error.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await revokee.rooms.ListRooms(rooms_pb2.ListRoomsRequest(), metadata=revokee.md)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "client certificate has been revoked" in (info.value.details() or "")
    rooms = await alice.rooms.ListRooms(rooms_pb2.ListRoomsRequest(), metadata=alice.md)
    assert [r.name for r in rooms.rooms] == ["lobby"]
    assert not alice_stream.reader.done()


async def test_admin_cli_revoke_ends_calls_and_open_streams(pki: DevPki, tmp_path: Path) -> None:
    certs = copy_pki(pki, tmp_path / "certs")
    srv = Node(server_config(certs, tmp_path / "data"))
    port = await srv.start()
    try:
        dave = await login(certs, port, "revokee", "dave")
        alice = await login(certs, port, "alice", "alice")
        dave_stream, alice_stream = await open_stream(dave), await open_stream(alice)

        result = CliRunner().invoke(
            cli, ["certs", "revoke", "revokee", "--dir", str(certs.directory)]
        )
        assert result.exit_code == 0, result.output
        assert result.output.startswith("revoked: ")

        await assert_revoked_and_others_fine(dave, dave_stream, alice, alice_stream)
        await alice_stream.close()
        for api in (dave, alice):
            await api.channel.close()
    finally:
        await srv.stop(0.2)


async def test_admin_service_revocation_has_the_same_effect(pki: DevPki, tmp_path: Path) -> None:
    bootstrap = {"auth.admin_user": "root1", "auth.admin_password": ADMIN_PASSWORD}
    config = server_config(pki, tmp_path / "data", **bootstrap)
    srv = Node(config)
    port = await srv.start()
    try:
        dave = await login(pki, port, "revokee", "dave")
        alice = await login(pki, port, "alice", "alice")
        admin = await login(pki, port, "admin", "root1", ADMIN_PASSWORD)
        dave_stream, alice_stream = await open_stream(dave), await open_stream(alice)

        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await alice.admin.RevokeCertificate(
                admin_pb2.RevokeCertificateRequest(serial_hex="01"), metadata=alice.md
            )
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        digest = fingerprint(load_certificate(pki.client("revokee").cert))
        await admin.admin.RevokeCertificate(
            admin_pb2.RevokeCertificateRequest(sha256_fingerprint=digest, subject="CN=revokee"),
            metadata=admin.md,
        )

        await assert_revoked_and_others_fine(dave, dave_stream, alice, alice_stream)
        await alice_stream.close()
        for api in (dave, alice, admin):
            await api.channel.close()
    finally:
        await srv.stop(0.2)


async def test_health_refuses_a_revoked_certificate_like_every_service(
    pki: DevPki, tmp_path: Path
) -> None:
    certs = copy_pki(pki, tmp_path / "certs")
    srv = Node(server_config(certs, tmp_path / "data"))
    port = await srv.start()
    revokee, alice = certs.client("revokee"), certs.client("alice")
    channels = [fresh_channel(port, certs.ca_cert, p.cert, p.key) for p in (revokee, alice)]
    try:
        health, other = (health_pb2_grpc.HealthStub(c) for c in channels)
        request = health_pb2.HealthCheckRequest()
        assert (await health.Check(request)).status == health_pb2.HealthCheckResponse.SERVING
        revoke("revokee", directory=certs.directory)
        deadline = asyncio.get_running_loop().time() + 20
        while not srv.revocations.is_revoked(peer_of(revokee.cert)):
            assert asyncio.get_running_loop().time() < deadline, "revocation file not re-read"
            await asyncio.sleep(0.1)
        for call in (health.Check(request), health.List(health_pb2.HealthListRequest())):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            trailers = dict(refused.value.trailing_metadata() or ())
            assert trailers["securechat-error"] == "certificate_revoked"
        assert (await other.Check(request)).status == health_pb2.HealthCheckResponse.SERVING
    finally:
        for channel in channels:
            await channel.close()
        await srv.stop(0.2)


def peer_of(cert_path: Path) -> PeerCertificate:
    cert = load_certificate(cert_path)
    return PeerCertificate(subject="", common_name=None, fingerprint=fingerprint(cert),
                           serial_hex=format(cert.serial_number, "x"))  # fmt: skip
