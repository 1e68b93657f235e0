"""Certificate rotation without restart: new handshakes use the replaced files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import grpc
import pytest

from securechat.node import Node
from securechat.pki import DevPki, make_dev_pki
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
