"""Accounts over the real mTLS server: registration rules, login, tokens, throttling, roles."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest

from securechat.domain.model import DeviceRef
from securechat.node import Node
from securechat.pki import DevPki
from securechat.services.clock import SystemClock
from securechat_proto.v1 import admin_pb2, auth_pb2, chat_pb2, keys_pb2, rooms_pb2
from tests.conftest import ApiFactory, server_config
from tests.support.chat import ChatClient, room_send
from tests.support.net import PASSWORD, Api, secure_channel

Code = grpc.StatusCode


async def fails(call: Awaitable[object], code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == code, info.value.details()
    return info.value


async def list_rooms(api: Api, metadata: tuple[tuple[str, str], ...] | None) -> object:
    return await api.rooms.ListRooms(rooms_pb2.ListRoomsRequest(), metadata=metadata)


# ---- Register -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("", "empty"),
        ("a" * 33, "too long"),
        ("ab", "too short"),
        ("Alice", "not allowed"),
        ("al\x07ice", "not allowed"),
        ("ali\nce", "not allowed"),
        ("1alice", "start with a letter"),
        ("admin", "reserved"),
        ("robert'); DROP TABLE users;--", "not allowed"),
        ("x' OR '1'='1", "not allowed"),
    ],
)
async def test_bad_usernames_are_refused(connect: ApiFactory, name: str, words: str) -> None:
    api = await connect()
    error = await fails(
        api.auth.Register(auth_pb2.RegisterRequest(username=name, password=PASSWORD)),
        Code.INVALID_ARGUMENT,
    )
    assert words in (error.details() or "")
    if name:  # nothing was created: the refused name cannot log in
        login = auth_pb2.LoginRequest(username=name, password=PASSWORD)
        await fails(api.auth.Login(login), Code.UNAUTHENTICATED)


async def test_non_utf8_username_is_a_clear_invalid_argument(server: Node, pki: DevPki) -> None:
    channel = secure_channel(pki, server.port)
    register = channel.unary_unary(
        "/securechat.v1.AuthService/Register",
        request_serializer=lambda raw: raw,
        response_deserializer=auth_pb2.RegisterResponse.FromString,
    )
    # field 1 (username) = b"ab\xff\xfe" (not UTF-8), field 2 (password) = "password12"
    body = b"\x0a\x04ab\xff\xfe" + b"\x12\x0a" + b"password12"
    error = await fails(register(body), Code.INVALID_ARGUMENT)
    assert "UTF-8" in (error.details() or "")
    assert "DecodeError" not in (error.details() or "")
    await channel.close()


async def test_duplicate_registration_changes_nothing(connect: ApiFactory) -> None:
    api = await connect()
    await api.register("dave")
    error = await fails(
        api.auth.Register(auth_pb2.RegisterRequest(username="dave", password="another password")),
        Code.ALREADY_EXISTS,
    )
    assert "dave" in (error.details() or "")
    await fails(
        api.auth.Login(auth_pb2.LoginRequest(username="dave", password="another password")),
        Code.UNAUTHENTICATED,
    )
    await api.login("dave")
    assert api.token


async def test_sql_looking_password_is_stored_verbatim(connect: ApiFactory) -> None:
    api = await connect()
    password = "x' OR '1'='1' --; DROP TABLE users"
    await api.register("erin", password)
    await fails(
        api.auth.Login(auth_pb2.LoginRequest(username="erin", password="' OR 1=1 --")),
        Code.UNAUTHENTICATED,
    )
    await api.login("erin", password)
    assert api.token


@pytest.mark.parametrize(
    ("password", "words"),
    [
        ("short", "too short"),
        ("1234567", "too short"),
        ("a" * 73, "72 bytes"),
        ("é" * 37, "72 bytes"),  # 37 characters, 74 bytes
        ("€" * 25, "72 bytes"),  # 25 characters, 75 bytes
    ],
)
async def test_bad_passwords_are_refused(connect: ApiFactory, password: str, words: str) -> None:
    api = await connect()
    error = await fails(
        api.auth.Register(auth_pb2.RegisterRequest(username="frank", password=password)),
        Code.INVALID_ARGUMENT,
    )
    assert words in (error.details() or "")
    assert len(password) < 8 or password not in (error.details() or "")  # no secrets echoed


@pytest.mark.parametrize("password", ["a" * 72, "é" * 36, "€" * 24])
async def test_72_byte_passwords_work(connect: ApiFactory, password: str) -> None:
    api = await connect()
    await api.register("grace", password)
    await api.login("grace", password)
    await fails(
        api.auth.Login(auth_pb2.LoginRequest(username="grace", password=password[:-1] + "x")),
        Code.UNAUTHENTICATED,
    )


# ---- Login and tokens -----------------------------------------------------------------------


async def test_wrong_password_and_unknown_user_look_the_same(connect: ApiFactory) -> None:
    api = await connect()
    await api.register("heidi")
    wrong = await fails(
        api.auth.Login(auth_pb2.LoginRequest(username="heidi", password="wrong password")),
        Code.UNAUTHENTICATED,
    )
    unknown = await fails(
        api.auth.Login(auth_pb2.LoginRequest(username="nobody-here", password="wrong password")),
        Code.UNAUTHENTICATED,
    )
    assert wrong.details() == unknown.details()
    # Identical apart from the per-call request id (a trailer, and inside the status details).
    per_call = {"securechat-request-id", "grpc-status-details-bin"}
    assert [m for m in wrong.trailing_metadata() if m[0] not in per_call] == [
        m for m in unknown.trailing_metadata() if m[0] not in per_call
    ]


@pytest.mark.parametrize(
    "metadata",
    [
        None,
        (("authorization", "Bearer"),),
        (("authorization", "Basic dXNlcjpwYXNz"),),
        (("authorization", "Bearer " + "x" * 300),),
        (("authorization", "Bearer " + secrets.token_urlsafe(32)),),
    ],
    ids=["missing", "empty", "basic", "oversized", "forged"],
)
async def test_bad_tokens_are_unauthenticated(
    connect: ApiFactory, metadata: tuple[tuple[str, str], ...] | None
) -> None:
    api = await connect("ivan")
    assert await list_rooms(api, api.md)
    await fails(list_rooms(api, metadata), Code.UNAUTHENTICATED)


async def test_token_replayed_after_logout_fails(connect: ApiFactory) -> None:
    api = await connect("judy")
    other = await connect()
    await other.login("judy", device_id=api.device_id)  # a second session, same device
    await api.auth.Logout(auth_pb2.LogoutRequest(), metadata=api.md)
    error = await fails(list_rooms(api, api.md), Code.UNAUTHENTICATED)
    assert "log in again" in (error.details() or "")
    await fails(api.auth.Logout(auth_pb2.LogoutRequest(), metadata=api.md), Code.UNAUTHENTICATED)
    assert await list_rooms(other, other.md)  # only that one session ended


async def test_open_stream_ends_unauthenticated_after_logout(connect: ApiFactory) -> None:
    api = await connect("mallory")
    stream = api.chat.Chat(metadata=api.md)
    await stream.write(chat_pb2.ClientFrame(open=chat_pb2.OpenStream(device_id=api.device_id)))
    first = await stream.read()
    assert isinstance(first, chat_pb2.ServerFrame)
    assert first.events[0].HasField("opened")
    await api.auth.Logout(auth_pb2.LogoutRequest(), metadata=api.md)
    await fails(read_to_end(stream), Code.UNAUTHENTICATED)


async def read_to_end(stream: grpc.aio.StreamStreamCall) -> None:
    while await stream.read() is not grpc.aio.EOF:
        pass


class ShiftedClock(SystemClock):
    """The system clock, moved forward on demand (token expiry without sleeping)."""

    def __init__(self) -> None:
        self.shift_ms = 0

    def now_ms(self) -> int:
        return super().now_ms() + self.shift_ms


ServerFactory = Callable[..., Awaitable[Node]]


@pytest.fixture
async def start_server(pki: DevPki, tmp_path: Path) -> AsyncIterator[ServerFactory]:
    """start_server(clock=None, data="data", **overrides) -> a started server (stopped after)."""
    servers: list[Node] = []

    async def start(
        clock: SystemClock | None = None, data: str = "data", **overrides: object
    ) -> Node:
        srv = Node(server_config(pki, tmp_path / data, **overrides), clock=clock)
        await srv.start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        await srv.stop(grace=0.2)


async def logged_in(
    pki: DevPki, srv: Node, user: str, cert: str = "client", register: bool = True
) -> Api:
    api = Api(secure_channel(pki, srv.port, cert))
    if register:
        await api.register(user)
    await api.login(user)
    return api


async def test_expired_token_is_unauthenticated(start_server: ServerFactory, pki: DevPki) -> None:
    clock = ShiftedClock()
    srv = await start_server(clock, **{"auth.token_ttl_s": 60})
    api = await logged_in(pki, srv, "oscar")
    assert await list_rooms(api, api.md)
    clock.shift_ms = 61_000
    error = await fails(list_rooms(api, api.md), Code.UNAUTHENTICATED)
    assert "expired" in (error.details() or "")
    await api.channel.close()


# ---- Roles and certificate binding ----------------------------------------------------------


async def test_bootstrap_admin_can_get_stats_and_users_cannot(
    start_server: ServerFactory, pki: DevPki
) -> None:
    srv = await start_server(
        **{"auth.admin_user": "boss", "auth.admin_password": "admin password 1"}
    )
    admin = Api(secure_channel(pki, srv.port, "admin"))
    await admin.login("boss", "admin password 1")
    stats = await admin.admin.GetStats(admin_pb2.GetStatsRequest(), metadata=admin.md)
    assert isinstance(stats, admin_pb2.GetStatsResponse)
    user = await logged_in(pki, srv, "trent")
    await fails(
        user.admin.GetStats(admin_pb2.GetStatsRequest(), metadata=user.md), Code.PERMISSION_DENIED
    )
    await fails(admin.admin.GetStats(admin_pb2.GetStatsRequest()), Code.UNAUTHENTICATED)
    for api in (admin, user):
        await api.channel.close()


async def test_bound_client_certificate_must_match_the_username(
    start_server: ServerFactory, pki: DevPki
) -> None:
    srv = await start_server(**{"tls.bind_client_cert_to_user": True})
    alice = await logged_in(pki, srv, "alice", cert="alice")
    assert alice.token
    bob_cert = Api(secure_channel(pki, srv.port, "bob"))
    login = auth_pb2.LoginRequest(username="alice", password=PASSWORD)
    error = await fails(bob_cert.auth.Login(login), Code.UNAUTHENTICATED)
    assert "certificate" in (error.details() or "")
    # The refusal does not depend on the password (no oracle for a holder of another cert).
    wrong = auth_pb2.LoginRequest(username="alice", password="wrong password")
    assert (await fails(bob_cert.auth.Login(wrong), Code.UNAUTHENTICATED)).details() == (
        error.details()
    )
    for api in (alice, bob_cert):
        await api.channel.close()


# ---- Persistence and bcrypt off the loop ----------------------------------------------------


def data_bytes(directory: Path) -> bytes:
    """Every byte the server wrote to its data folder (the SQLite file, -wal, -shm, ...)."""
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())


async def test_accounts_survive_a_restart_and_only_hashes_are_stored(
    start_server: ServerFactory, pki: DevPki, tmp_path: Path
) -> None:
    password = "persist " + secrets.token_hex(8)
    first = await start_server()
    api = Api(secure_channel(pki, first.port))
    await api.register("sybil", password)
    await api.login("sybil", password)
    tokens = [api.token]
    await api.channel.close()
    await first.stop(grace=0.2)

    second = await start_server()  # same data folder
    api = Api(secure_channel(pki, second.port))
    await api.login("sybil", password, device_id=1)  # the same device: both sessions kept
    tokens.append(api.token)
    assert await list_rooms(api, api.md)
    written = data_bytes(tmp_path / "data")  # while running: the -wal holds recent writes
    await api.channel.close()
    await second.stop(grace=0.2)
    for blob in (written, data_bytes(tmp_path / "data")):
        assert b"$2b$" in blob
        assert password.encode() not in blob
        for token in tokens:
            assert token.encode() not in blob
            digest = hashlib.sha256(token.encode()).digest()
            assert digest in blob or digest.hex().encode() in blob


async def test_a_login_storm_does_not_stall_other_calls(
    start_server: ServerFactory, pki: DevPki
) -> None:
    srv = await start_server(**{"auth.bcrypt_cost": 12})  # the real default cost
    api = Api(secure_channel(pki, srv.port))
    await api.register("victor")
    finished: list[str] = []

    async def login() -> None:
        await api.auth.Login(auth_pb2.LoginRequest(username="victor", password=PASSWORD))
        finished.append("login")

    # One hash runs per account and two more may wait (fair queue): three logins at once.
    logins = [asyncio.create_task(login()) for _ in range(3)]
    while srv.hasher.in_flight == 0 and not finished:  # the storm has reached bcrypt
        await asyncio.sleep(0.005)
    cheap = auth_pb2.RegisterRequest(username="Not Valid", password=PASSWORD)
    await fails(api.auth.Register(cheap), Code.INVALID_ARGUMENT)
    finished.append("cheap")
    await asyncio.gather(*logins)
    assert finished.count("login") == 3
    # The cheap call went out once a hash was running (~0.3 s at cost 12), so off the loop it
    # answers before any login does. Were bcrypt on the loop, `in_flight` would never be seen
    # above 0 between awaits: the call would go out only after a login had finished.
    assert finished[0] == "cheap", finished
    await api.channel.close()


# ---- last seen --------------------------------------------------------------------------------


async def test_last_seen_moves_on_stream_open_close_and_login(
    start_server: ServerFactory, pki: DevPki
) -> None:
    clock = ShiftedClock()
    srv = await start_server(clock)
    alice = await logged_in(pki, srv, "alice")
    bob = await logged_in(pki, srv, "bob")

    async def last_seen() -> int:
        await srv.last_seen.drain()  # the coalesced write of what the server just saw
        devices = await bob.keys.ListDevices(
            keys_pb2.ListDevicesRequest(user="alice"), metadata=bob.md
        )
        [device] = devices.devices
        return device.last_seen_ms

    registered = await last_seen()
    clock.shift_ms += 60_000
    stream = ChatClient(alice)
    await stream.wait_until(lambda: len(stream.events) >= 1)
    opened = await last_seen()
    assert opened >= registered + 60_000
    clock.shift_ms += 60_000
    assert (await room_send(stream, "lobby", b"x")).accepted
    assert await last_seen() == opened  # never on the per-message path
    await stream.close()

    async def detached() -> None:
        while DeviceRef("alice", 1) in srv.hub.streams:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(detached(), 20)
    closed = await last_seen()
    assert closed >= opened + 60_000
    clock.shift_ms += 60_000
    await alice.login("alice", device_id=1)
    assert await last_seen() >= closed + 60_000
    for api in (alice, bob):
        await api.channel.close()
