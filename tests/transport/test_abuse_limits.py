"""Prekey draining, room flooding and room listing limits over the real mTLS server."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from pathlib import Path

import grpc
import pytest

from securechat.client.bundles import publish_request
from securechat.crypto.account import CryptoAccount
from securechat.node import Node
from securechat.pki import DevPki
from securechat_proto.v1 import keys_pb2, rooms_pb2
from tests.conftest import ApiFactory, server_config
from tests.support.net import Api, secure_channel

Code = grpc.StatusCode


async def fails(call: Awaitable[object], code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == code, info.value.details()
    return info.value


async def publish(api: Api) -> None:
    account = CryptoAccount.create(api.user, api.device_id, now=int(time.time()))
    await api.keys.PublishBundle(publish_request(account.upload_bundle()), metadata=api.md)


async def counts(api: Api) -> keys_pb2.CountPreKeysResponse:
    return await api.keys.CountPreKeys(keys_pb2.CountPreKeysRequest(), metadata=api.md)


def claim(api: Api, user: str) -> Awaitable[keys_pb2.ClaimBundlesResponse]:
    return api.keys.ClaimBundles(keys_pb2.ClaimBundlesRequest(user=user), metadata=api.md)


async def test_one_claimer_cannot_drain_another_users_prekeys(connect: ApiFactory) -> None:
    """Before: any user emptied another's 100 X25519 and 20 ML-KEM one-time prekeys in 6 s."""
    bob = await connect("bob")
    await publish(bob)
    mallory = await connect("mallory")
    first = (await claim(mallory, "bob")).bundles[0]
    assert first.HasField("one_time_prekey") and not first.kem_prekey.last_resort
    for _ in range(150):
        again = (await claim(mallory, "bob")).bundles[0]
        # Still a usable bundle (signed prekey, last-resort KEM key), but no one-time key.
        assert not again.HasField("one_time_prekey") and again.kem_prekey.last_resort
    left = await counts(bob)
    assert (left.one_time_prekeys, left.kem_prekeys) == (99, 19)


async def test_many_claimers_together_meet_the_per_target_limit(
    pki: DevPki, tmp_path: Path
) -> None:
    node = Node(
        server_config(pki, tmp_path / "data", **{"limits.one_time_prekeys_per_target_per_hour": 10})
    )
    await node.start()
    apis: list[Api] = []
    try:

        async def user(name: str) -> Api:
            api = Api(secure_channel(pki, node.port))
            apis.append(api)
            await api.register(name)
            await api.login(name)
            return api

        bob = await user("bob")
        await publish(bob)
        handed = 0
        for i in range(12):  # twelve accounts, one claim each: bursts of 5 one-time keys
            claimer = await user(f"sybil{i:02d}")
            bundle = (await claim(claimer, "bob")).bundles[0]
            handed += bundle.HasField("one_time_prekey")
        assert handed == 5
        assert (await counts(bob)).one_time_prekeys == 95
    finally:
        for api in apis:
            await api.channel.close()
        await node.stop(grace=0.2)


async def test_claims_are_limited_per_claimer(pki: DevPki, tmp_path: Path) -> None:
    node = Node(server_config(pki, tmp_path / "data", **{"limits.prekey_claims_per_hour": 40}))
    await node.start()
    api = Api(secure_channel(pki, node.port))
    try:
        await api.register("bob")
        await api.login("bob")
        await publish(api)
        for _ in range(10):  # bursts of max(10, 40 / 4)
            await claim(api, "bob")
        error = await fails(claim(api, "bob"), Code.RESOURCE_EXHAUSTED)
        assert int(dict(error.trailing_metadata() or ())["retry-after"]) >= 1
    finally:
        await api.channel.close()
        await node.stop(grace=0.2)


def create(api: Api, name: str, password: str = "", listed: bool = False) -> Awaitable[object]:
    request = rooms_pb2.CreateRoomRequest(name=name, password=password)
    if listed:
        request.listed = True
    return api.rooms.CreateRoom(request, metadata=api.md)


async def test_room_creation_is_limited_per_user(pki: DevPki, tmp_path: Path) -> None:
    """Before: 41 room creations a second, unlimited."""
    node = Node(
        server_config(
            pki,
            tmp_path / "data",
            **{"limits.room_creations_per_hour": 5, "limits.rooms_per_user": 7},
        )
    )
    await node.start()
    api = Api(secure_channel(pki, node.port))
    other = Api(secure_channel(pki, node.port))
    try:
        await api.register("mallory")
        await api.login("mallory")
        for i in range(5):
            await create(api, f"spam{i}", password="room password" if i % 2 else "")
        error = await fails(create(api, "spam5"), Code.RESOURCE_EXHAUSTED)
        assert int(dict(error.trailing_metadata() or ())["retry-after"]) >= 1
        await other.register("olive")
        await other.login("olive")
        await create(other, "olives")  # another user is not affected
    finally:
        for a in (api, other):
            await a.channel.close()
        await node.stop(grace=0.2)


async def list_all(api: Api, page_size: int) -> list[str]:
    names: list[str] = []
    token = ""
    while True:
        page = await api.rooms.ListRooms(
            rooms_pb2.ListRoomsRequest(page_size=page_size, page_token=token), metadata=api.md
        )
        assert len(page.rooms) <= page_size
        names += [r.name for r in page.rooms]
        token = page.next_page_token
        if not token:
            return names


async def test_list_rooms_is_paginated_and_shows_only_what_a_user_may_see(
    connect: ApiFactory,
) -> None:
    """Before: every room listed to every user, in one answer of any size."""
    alice = await connect("alice")
    bob = await connect("bob")
    await create(alice, "open-one")
    await create(alice, "secret", password="room password")
    await create(alice, "club", password="room password", listed=True)
    for i in range(5):
        await create(alice, f"room{i}")
    mine = await list_all(alice, 3)
    assert mine == sorted(["lobby", "open-one", "secret", "club", *[f"room{i}" for i in range(5)]])
    theirs = await list_all(bob, 2)
    assert "secret" not in theirs and "club" in theirs
    assert theirs == sorted(set(mine) - {"secret"})
    await fails(
        bob.rooms.ListRooms(rooms_pb2.ListRoomsRequest(page_token="%%%"), metadata=bob.md),
        Code.INVALID_ARGUMENT,
    )
    await fails(
        bob.rooms.ListRooms(rooms_pb2.ListRoomsRequest(page_size=1001), metadata=bob.md),
        Code.INVALID_ARGUMENT,
    )
    # A member sees the unlisted room it joined.
    await bob.rooms.JoinRoom(
        rooms_pb2.JoinRoomRequest(name="secret", password="room password"), metadata=bob.md
    )
    assert "secret" in await list_all(bob, 100)
