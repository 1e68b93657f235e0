"""Every uint64/uint32 a request carries is range-checked: past what the server stores, the
request is refused with INVALID_ARGUMENT naming the field, and nothing changes (issue 13)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from securechat_proto.v1 import auth_pb2, chat_pb2, common_pb2, keys_pb2
from tests.conftest import ApiFactory
from tests.support.chat import ChatClient, direct
from tests.support.net import PASSWORD, Api

TOO_BIG_SEQ = (2**63, 2**64 - 1)
TOO_BIG_DEVICE = (2**31, 2**32 - 1)


async def refused(awaitable: object, field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await awaitable  # type: ignore[misc]
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (info.value.details() or "")
    assert dict(info.value.trailing_metadata() or ())["securechat-error"] == "invalid_argument"


async def stream_ending(api: Api, *frames: chat_pb2.ClientFrame) -> grpc.aio.AioRpcError:
    async def requests() -> AsyncIterator[chat_pb2.ClientFrame]:
        for frame in frames:
            yield frame

    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in api.chat.Chat(requests(), metadata=api.md):
            pass
    return info.value


@pytest.mark.parametrize("value", TOO_BIG_SEQ)
async def test_fetch_and_ack_sequences(connect: ApiFactory, value: int) -> None:
    bob = await connect("bob")
    await refused(bob.chat.Fetch(chat_pb2.FetchRequest(after_seq=value), metadata=bob.md),
                  "after_seq")  # fmt: skip
    await refused(bob.chat.Ack(chat_pb2.AckRequest(seq=value), metadata=bob.md), "seq")
    biggest = chat_pb2.FetchRequest(after_seq=2**63 - 1)
    assert (await bob.chat.Fetch(biggest, metadata=bob.md)).deliveries == []


async def test_fetch_limit(connect: ApiFactory) -> None:
    bob = await connect("bob")
    request = chat_pb2.FetchRequest(limit=2**32 - 1)
    await refused(bob.chat.Fetch(request, metadata=bob.md), "limit")


@pytest.mark.parametrize("value", TOO_BIG_SEQ)
async def test_stream_resume_and_ack_sequences(connect: ApiFactory, value: int) -> None:
    bob = await connect("bob")
    opening = chat_pb2.ClientFrame(open=chat_pb2.OpenStream(device_id=1, resume_after_seq=value))
    error = await stream_ending(bob, opening)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "resume_after_seq" in (error.details() or "")
    good = chat_pb2.ClientFrame(open=chat_pb2.OpenStream(device_id=1))
    ack = chat_pb2.ClientFrame(ack=chat_pb2.AckRequest(seq=value))
    error = await stream_ending(bob, good, ack)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ack.seq" in (error.details() or "")


@pytest.mark.parametrize("value", TOO_BIG_DEVICE)
async def test_stream_device_id(connect: ApiFactory, value: int) -> None:
    bob = await connect("bob")
    error = await stream_ending(
        bob, chat_pb2.ClientFrame(open=chat_pb2.OpenStream(device_id=value))
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "open.device_id" in (error.details() or "")


@pytest.mark.parametrize("value", TOO_BIG_DEVICE)
async def test_recipient_device_ids_of_a_send(connect: ApiFactory, value: int) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    unary = alice.chat.Send(direct("bob", b"x", "c1", value), metadata=alice.md)
    await refused(unary, "ciphertexts.device")
    stream = ChatClient(alice)
    result = await stream.send(common_pb2.Conversation(user="bob"), {("bob", value): b"x"}, "s1")
    assert (result.accepted, result.error_code) == (False, "invalid_argument")
    assert "ciphertexts.device" in result.error_message
    ok = await stream.send(common_pb2.Conversation(user="bob"), {("bob", 1): b"x"}, "s2")
    assert ok.accepted  # the stream went on
    await stream.close()
    fetched = await bob.chat.Fetch(chat_pb2.FetchRequest(), metadata=bob.md)
    assert [d.ciphertext for d in fetched.deliveries] == [b"x"]


@pytest.mark.parametrize("value", TOO_BIG_DEVICE)
async def test_login_and_claim_device_ids(connect: ApiFactory, value: int) -> None:
    bob = await connect("bob")
    login = auth_pb2.LoginRequest(username="bob", password=PASSWORD, device_id=value)
    await refused(bob.auth.Login(login), "device_id")
    claim = keys_pb2.ClaimBundlesRequest(user="bob", device_ids=[1, value])
    await refused(bob.keys.ClaimBundles(claim, metadata=bob.md), "device_ids")
