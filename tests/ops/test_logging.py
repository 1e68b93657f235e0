"""Logs never carry passwords, tokens, private keys or message plaintext; JSON lines parse."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from securechat.node import Node
from securechat.ops.logsetup import configure_logging, redact
from securechat.pki import DevPki
from securechat_proto.v1 import auth_pb2, common_pb2, rooms_pb2
from tests.conftest import server_config
from tests.ops.conftest import open_stream
from tests.support.net import Api, secure_channel
from tests.support.process import ServerProcess


@pytest.fixture
def captured_logs(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    """The project's logging set-up at DEBUG (format from the test's param) into a buffer."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    buffer = io.StringIO()
    configure_logging(request.param, "DEBUG", stream=buffer)
    try:
        yield buffer
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])


@pytest.mark.parametrize("captured_logs", ["plain", "json"], indirect=True)
async def test_secrets_and_plaintext_never_reach_the_logs(
    pki: DevPki, tmp_path: Path, captured_logs: io.StringIO
) -> None:
    password = f"pw-{secrets.token_hex(8)}"
    admin_password = f"adm-{secrets.token_hex(8)}"
    room_password = f"room-{secrets.token_hex(8)}"
    plaintext = f"the plaintext marker {secrets.token_hex(8)}"
    private_key = pki.client("alice").key.read_text()
    key_body = private_key.splitlines()[1]
    config = server_config(pki, tmp_path, **{"auth.admin_user": "root1",
                                             "auth.admin_password": admin_password})  # fmt: skip
    server = Node(config)
    await server.start()
    try:
        alice = Api(secure_channel(pki, server.port, "alice"))
        bob = Api(secure_channel(pki, server.port, "bob"))
        await alice.register("alice", password)
        await bob.register("bob", password)
        with pytest.raises(grpc.aio.AioRpcError):
            await alice.login("alice", password + "-wrong")
        await alice.login("alice", password)
        await bob.login("bob", password)
        await alice.rooms.CreateRoom(
            rooms_pb2.CreateRoomRequest(name="vault", password=room_password), metadata=alice.md
        )
        # A stale bearer token and a broken one make the server reject (and log) calls.
        with pytest.raises(grpc.aio.AioRpcError):
            await alice.rooms.ListRooms(
                rooms_pb2.ListRoomsRequest(), metadata=(("authorization", alice.token + "x"),)
            )
        sender, receiver = await open_stream(alice), await open_stream(bob)
        ciphertext = f"{plaintext}\n{private_key}".encode()
        result = await sender.send(
            common_pb2.Conversation(user="bob"), {("bob", bob.device_id): ciphertext}
        )
        assert result.accepted, result.error_message
        await receiver.wait_until(lambda: receiver.texts() == [ciphertext])
        await sender.close()
        await receiver.close()
        await alice.auth.Logout(auth_pb2.LogoutRequest(), metadata=alice.md)
        tokens = [alice.token, bob.token]
        await alice.channel.close()
        await bob.channel.close()
    finally:
        await server.stop(0.2)

    logs = captured_logs.getvalue()
    assert "rpc /securechat.v1.AuthService/Login" in logs  # the access lines are there
    assert "user=alice" in logs or '"user": "alice"' in logs
    for secret in [password, admin_password, room_password, plaintext, key_body, *tokens]:
        assert secret not in logs
    assert "PRIVATE KEY" not in logs


def test_redaction_masks_what_careless_code_might_log() -> None:
    key = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMG\n-----END PRIVATE KEY-----"
    line = redact(f"authorization: Bearer abc.def password=hunter22 token: t0k {key}")
    assert "abc.def" not in line and "hunter22" not in line and "t0k" not in line
    assert "MIGHAgEAMBMG" not in line and "[REDACTED PRIVATE KEY]" in line


async def test_server_logs_json_lines_with_log_format_json(pki: DevPki, tmp_path: Path) -> None:
    admin_password = f"adm-{secrets.token_hex(8)}"
    env = {"SECURECHAT_ADMIN_USER": "root1", "SECURECHAT_ADMIN_PASSWORD": admin_password}
    args = ("--log-format", "json", "--log-level", "debug", "--no-console")
    server = ServerProcess(pki.directory, tmp_path / "data", env=env, args=args)
    assert await asyncio.to_thread(server.terminate, 60) == 0, server.logs()[-2000:]
    log = server.logs()
    entries = [json.loads(text) for text in log.splitlines() if text.strip()]
    assert entries, "no log lines"
    assert all({"ts", "level", "logger", "request_id", "msg"} <= set(e) for e in entries)
    assert any(e["logger"] == "securechat.server" and "listening" in e["msg"] for e in entries)
    assert admin_password not in log
