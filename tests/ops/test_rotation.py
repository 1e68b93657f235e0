"""Certificate rotation without restart: new handshakes use the replaced files."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from securechat.node import Node
from securechat.pki import DevPki, fingerprint, fingerprint_der, load_certificate, make_dev_pki
from securechat_proto.v1 import rooms_pb2
from tests.conftest import server_config
from tests.ops.conftest import copy_pki, fresh_channel
from tests.support.net import Api


def replace_file(source: Path, target: Path) -> None:
    """Atomic replacement, as an operator's deploy tool would do it."""
    staged = target.with_name(target.name + ".new")
    shutil.copyfile(source, staged)
    os.replace(staged, target)


async def test_server_picks_up_a_new_ca_and_certificate_without_restart(
    pki: DevPki, tmp_path: Path
) -> None:
    old = copy_pki(pki, tmp_path / "certs")
    srv = Node(server_config(old, tmp_path / "data"))
    port = await srv.start()
    try:
        before = Api(fresh_channel(port, old.ca_cert, old.client("alice").cert,
                                   old.client("alice").key))  # fmt: skip
        await before.register("alice")
        await before.login("alice")
        await before.channel.close()

        new = make_dev_pki(tmp_path / "new-pki", clients=("alice",))
        replace_file(new.ca_cert, old.ca_cert)
        replace_file(new.server_key, old.server_key)
        replace_file(new.server_cert, old.server_cert)

        after = Api(fresh_channel(port, new.ca_cert, new.client("alice").cert,
                                  new.client("alice").key))  # fmt: skip
        await after.login("alice")
        rooms = await after.rooms.ListRooms(rooms_pb2.ListRoomsRequest(), metadata=after.md)
        assert [r.name for r in rooms.rooms] == ["lobby"]
        await after.channel.close()

        # A client that trusts only the old CA no longer accepts the server's certificate
        # (and its old client certificate is no longer signed by a CA the server trusts).
        stale = Api(fresh_channel(port, pki.ca_cert, pki.client("alice").cert,
                                  pki.client("alice").key))  # fmt: skip
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stale.login("alice")
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        await stale.channel.close()
        assert srv.credentials.reloads >= 1
    finally:
        await srv.stop(0.2)


DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def documented_recipe() -> str:
    """The shell block under "### Rotate the server certificate" in docs/operations.md."""
    section = DOC.read_text().split("### Rotate the server certificate", 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def presented_certificate(port: int, ca: Path, cert: Path, key: Path) -> str:
    """SHA-256 of the certificate the server presents in a new TLS handshake."""
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(str(cert), str(key))
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("localhost", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return fingerprint_der(der)


async def test_the_documented_server_rotation_recipe_works_as_written(
    pki: DevPki, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    certs = copy_pki(pki, work / "certs")  # what the server reads
    ca = copy_pki(pki, work / "ca")  # the CA machine's folder, with the current server.crt
    srv = Node(server_config(certs, tmp_path / "data"))
    port = await srv.start()
    client = certs.client("alice")
    try:
        before = await asyncio.to_thread(presented_certificate, port, certs.ca_cert,
                                         client.cert, client.key)  # fmt: skip
        assert before == fingerprint(load_certificate(certs.server_cert))
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        env = {k: v for k, v in env.items() if not k.startswith("SECURECHAT_")}
        ran = await asyncio.to_thread(
            subprocess.run, ["bash", "-euo", "pipefail", "-c", documented_recipe()],
            cwd=work, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert ran.returncode == 0, ran.stdout + ran.stderr
        new = load_certificate(certs.server_cert)
        assert fingerprint(new) == fingerprint(load_certificate(ca.server_cert)) != before
        assert "DNS:chat.example.com" in ran.stdout  # the shown names, kept and added
        deadline = asyncio.get_running_loop().time() + 20
        while (after := await asyncio.to_thread(presented_certificate, port, certs.ca_cert,
                                                client.cert, client.key)) == before:  # fmt: skip
            assert asyncio.get_running_loop().time() < deadline, "the new pair was not picked up"
            await asyncio.sleep(0.2)
        assert after == fingerprint(new)
        # Same CA: an unchanged client logs in over a new connection.
        api = Api(fresh_channel(port, certs.ca_cert, client.cert, client.key))
        await api.register("alice")
        await api.login("alice")
        await api.channel.close()
    finally:
        await srv.stop(0.2)
