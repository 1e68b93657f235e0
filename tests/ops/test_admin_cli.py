"""securechat-admin clients | kick | stats | rooms against a real server, as a real process."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from securechat.node import Node
from securechat.pki import DevPki
from tests.conftest import server_config
from tests.ops.conftest import open_stream
from tests.support.net import Api, secure_channel
from tests.support.process import clean_env

ADMIN_PASSWORD = "admin password 123"


@pytest.fixture
async def admin_server(pki: DevPki, tmp_path: Path) -> AsyncIterator[Node]:
    """A server with the bootstrap admin `root1` (as SECURECHAT_ADMIN_USER/PASSWORD would)."""
    admin = {"auth.admin_user": "root1", "auth.admin_password": ADMIN_PASSWORD}
    config = server_config(pki, tmp_path / "data", **admin)
    srv = Node(config)
    await srv.start()
    yield srv
    await srv.stop(0.2)


async def admin_cli(
    pki: DevPki, port: int, *args: str, password: str = ADMIN_PASSWORD, stdin: str | None = None,
    cert: str = "admin", user: str = "root1",
) -> tuple[int, str, str]:  # fmt: skip
    env = clean_env(pki.directory.parent / "admin-home", {"SECURECHAT_ADMIN_USER": user})
    if stdin is None:
        env["SECURECHAT_ADMIN_PASSWORD"] = password
    paths = pki.client(cert)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from securechat.admin_cli import main; main()",
        "--server", f"localhost:{port}", "--ca", str(pki.ca_cert),
        "--cert", str(paths.cert), "--key", str(paths.key), *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate((stdin or "").encode()), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_clients_stats_and_rooms(admin_server: Node, pki: DevPki) -> None:
    carol = Api(secure_channel(pki, admin_server.port, "carol"))
    await carol.register("carol")
    await carol.login("carol")
    stream = await open_stream(carol)
    port = admin_server.port

    code, out, err = await admin_cli(pki, port, "clients")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["DEVICE", "PEER", "CERTIFICATE"]
    assert len(lines) == 2 and lines[1].startswith("carol/1 ") and "CN=carol" in lines[1]

    code, out, err = await admin_cli(pki, port, "stats", "--password-stdin",
                                     stdin=ADMIN_PASSWORD + "\n")  # fmt: skip
    assert code == 0, err
    stats = dict(line.split(None, 1) for line in out.splitlines())
    assert stats["connected_streams"] == "1" and stats["users"] == "2"
    assert stats["version"] and stats["node"] == admin_server.name

    code, out, err = await admin_cli(pki, port, "rooms")
    assert code == 0, err
    assert out.splitlines()[1].split() == ["lobby", "2", "no"]
    assert ADMIN_PASSWORD not in out + err
    await stream.close()
    await carol.channel.close()


async def test_kick_ends_the_users_stream_and_sessions(admin_server: Node, pki: DevPki) -> None:
    bob = Api(secure_channel(pki, admin_server.port, "bob"))
    await bob.register("bob")
    await bob.login("bob")
    stream = await open_stream(bob)

    code, out, err = await admin_cli(pki, admin_server.port, "kick", "bob", "--reason", "spam")
    assert code == 0, err
    assert out.strip() == "kicked bob: 1 stream(s) closed, 1 session(s) revoked"
    error = await stream.wait_ended()
    assert error is not None and error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "disconnected by an admin: spam" in (error.details() or "")
    await bob.channel.close()


async def test_wrong_password_and_non_admin_accounts_are_refused(
    admin_server: Node, pki: DevPki
) -> None:
    code, _, err = await admin_cli(pki, admin_server.port, "stats", password="not it at all")
    assert (code, err.strip()) == (67, "error: wrong username or password"), err

    alice = Api(secure_channel(pki, admin_server.port, "alice"))
    await alice.register("alice")
    code, _, err = await admin_cli(
        pki, admin_server.port, "clients", user="alice", password="correct horse battery",
        cert="alice",
    )  # fmt: skip
    assert code != 0 and "alice is not an admin account" in err
    await alice.channel.close()

    code, _, err = await admin_cli(pki, 1, "stats")
    assert code == 69 and err.startswith("error: server unavailable")


async def test_an_empty_password_on_stdin_is_refused_before_any_call(pki: DevPki) -> None:
    code, _, err = await admin_cli(pki, 1, "stats", "--password-stdin", stdin="\n")
    assert code == 64
    assert err.strip() == "error: --password-stdin was given but stdin held no password"


async def test_certificate_files_are_checked_before_the_password_is_asked(
    pki: DevPki, tmp_path: Path
) -> None:
    code, _, err = await admin_cli(pki, 1, "stats", "--key", str(tmp_path / "missing.key"))
    assert code == 77
    assert "client key" in err and "--key" in err
