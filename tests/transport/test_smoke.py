"""The server answers over mTLS and rejects unauthenticated calls."""

from __future__ import annotations

import grpc
import pytest

from securechat_proto.v1 import rooms_pb2
from tests.conftest import ApiFactory


async def test_register_login_and_list_rooms(connect: ApiFactory) -> None:
    api = await connect("alice")
    rooms = await api.rooms.ListRooms(rooms_pb2.ListRoomsRequest(), metadata=api.md)
    assert [(r.name, r.member) for r in rooms.rooms] == [("lobby", True)]


async def test_call_without_token_is_unauthenticated(connect: ApiFactory) -> None:
    api = await connect()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await api.rooms.ListRooms(rooms_pb2.ListRoomsRequest())
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_the_sqlite_durability_setting_reaches_the_store(pki, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from securechat.node import Node
    from tests.conftest import server_config

    config = server_config(pki, tmp_path / "data", **{"storage.sqlite_synchronous": "NORMAL"})
    server = Node(config)
    await server.start()
    try:
        assert getattr(server.store, "synchronous", None) == "NORMAL"
    finally:
        await server.stop(grace=0)
