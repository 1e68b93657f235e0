"""Registration an operator controls (open, invite, certificate), the reserved bootstrap admin
name, and sessions bound to the certificate they logged in with, over the real mTLS server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest

from securechat.errors import ConfigError
from securechat.node import Node
from securechat.pki import DevPki, fingerprint, load_certificate
from securechat.services.accounts import hash_token
from securechat_proto.v1 import admin_pb2, auth_pb2, rooms_pb2
from tests.conftest import server_config
from tests.support.net import PASSWORD, Api, secure_channel

Code = grpc.StatusCode
ADMIN = {"auth.admin_user": "boss", "auth.admin_password": "admin password 1"}


async def fails(call: Awaitable[object], code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == code, info.value.details()
    return info.value


Start = Callable[..., Awaitable[Node]]


@pytest.fixture
async def start(pki: DevPki, tmp_path: Path) -> AsyncIterator[Start]:
    nodes: list[Node] = []

    async def run(data: str = "data", **overrides: object) -> Node:
        node = Node(server_config(pki, tmp_path / data, **overrides))
        await node.start()
        nodes.append(node)
        return node

    yield run
    for node in nodes:
        await node.stop(grace=0.2)


@pytest.fixture
def channels(pki: DevPki) -> Callable[[Node, str], Api]:
    def make(node: Node, cert: str = "client") -> Api:
        return Api(secure_channel(pki, node.port, cert))

    return make


def register(api: Api, user: str, invite: str = "") -> Awaitable[object]:
    return api.auth.Register(
        auth_pb2.RegisterRequest(username=user, password=PASSWORD, invite_code=invite)
    )


async def test_invite_only_registration(start: Start, channels: Callable[[Node, str], Api]) -> None:
    node = await start(**{"auth.registration": "invite"}, **ADMIN)
    stranger = channels(node, "client")
    error = await fails(register(stranger, "sam"), Code.PERMISSION_DENIED)
    assert "invite code" in (error.details() or "")
    await fails(register(stranger, "sam", "made-up-code"), Code.PERMISSION_DENIED)
    admin = channels(node, "admin")
    await admin.login("boss", "admin password 1")
    invite = await admin.admin.CreateInvite(admin_pb2.CreateInviteRequest(), metadata=admin.md)
    assert invite.code and invite.expires_at_ms > 0
    await register(stranger, "sam", invite.code)
    await stranger.login("sam")
    await fails(register(stranger, "tom", invite.code), Code.PERMISSION_DENIED)  # one use
    # A refused registration (name taken) leaves the code usable.
    second = await admin.admin.CreateInvite(admin_pb2.CreateInviteRequest(), metadata=admin.md)
    await fails(register(stranger, "sam", second.code), Code.ALREADY_EXISTS)
    await register(stranger, "tom", second.code)
    await fails(
        admin.admin.CreateInvite(
            admin_pb2.CreateInviteRequest(ttl_s=91 * 86400), metadata=admin.md
        ),
        Code.INVALID_ARGUMENT,
    )
    user = channels(node, "client")
    await user.login("tom")
    await fails(
        user.admin.CreateInvite(admin_pb2.CreateInviteRequest(), metadata=user.md),
        Code.PERMISSION_DENIED,
    )


async def test_certificate_registration(start: Start, channels: Callable[[Node, str], Api]) -> None:
    node = await start(**{"auth.registration": "certificate"})
    await register(channels(node, "alice"), "alice")
    error = await fails(register(channels(node, "client"), "bob"), Code.PERMISSION_DENIED)
    assert "certificate" in (error.details() or "")
    await fails(register(channels(node, "bob"), "carol"), Code.PERMISSION_DENIED)


async def test_bad_registration_mode_is_a_config_error(pki: DevPki, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"auth\.registration"):
        server_config(pki, tmp_path, **{"auth.registration": "sometimes"})


async def test_the_bootstrap_admin_name_cannot_be_registered_or_squatted(
    start: Start, channels: Callable[[Node, str], Api]
) -> None:
    # Before: anyone could register the name first; the next start promoted that account
    # (keys, devices and all) to admin.
    first = await start("data")
    squatter = channels(first, "client")
    await register(squatter, "boss")
    await first.stop(grace=0.2)
    with pytest.raises(ConfigError, match=r"auth\.admin_user"):
        await start("data", **ADMIN)
    fresh = await start("fresh", **ADMIN)
    error = await fails(register(channels(fresh, "client"), "boss"), Code.INVALID_ARGUMENT)
    assert "reserved" in (error.details() or "")


async def test_a_bound_token_is_refused_over_another_certificate(
    start: Start, channels: Callable[[Node, str], Api]
) -> None:
    node = await start(**{"tls.bind_client_cert_to_user": True})
    alice = channels(node, "alice")
    await alice.register("alice")
    await alice.login("alice")
    assert await alice.rooms.ListRooms(rooms_pb2.ListRoomsRequest(), metadata=alice.md)
    thief = channels(node, "bob")  # a valid certificate, but not the one alice logged in with
    error = await fails(
        thief.rooms.ListRooms(rooms_pb2.ListRoomsRequest(), metadata=alice.md),
        Code.UNAUTHENTICATED,
    )
    assert "another client certificate" in (error.details() or "")


async def test_revoking_a_certificate_ends_its_sessions(
    start: Start, channels: Callable[[Node, str], Api], pki: DevPki
) -> None:
    node = await start(**ADMIN)
    laptop = channels(node, "revokee")
    await laptop.register("dave")
    await laptop.login("dave")
    other = channels(node, "client")  # the token still works over another certificate...
    assert await other.rooms.ListRooms(rooms_pb2.ListRoomsRequest(), metadata=laptop.md)
    admin = channels(node, "admin")
    await admin.login("boss", "admin password 1")
    cert = load_certificate(pki.client("revokee").cert)
    await admin.admin.RevokeCertificate(
        admin_pb2.RevokeCertificateRequest(sha256_fingerprint=fingerprint(cert)),
        metadata=admin.md,
    )
    # ...until the certificate it logged in with is revoked: then the session is gone.
    await fails(
        other.rooms.ListRooms(rooms_pb2.ListRoomsRequest(), metadata=laptop.md),
        Code.UNAUTHENTICATED,
    )
    assert await node.store.get_session(hash_token(laptop.token)) is None
