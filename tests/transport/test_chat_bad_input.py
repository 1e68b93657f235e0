"""Bad input to the chat core gets a clear error and changes nothing."""

from __future__ import annotations

import grpc
import pytest

from securechat.node import Node
from securechat.pki import DevPki
from securechat_proto.v1 import chat_pb2, common_pb2, rooms_pb2
from tests.conftest import ApiFactory, server_config
from tests.support.chat import ChatClient
from tests.support.net import Api, secure_channel


def one(user: str, device: int, body: bytes) -> list[chat_pb2.RecipientCiphertext]:
    return [
        chat_pb2.RecipientCiphertext(
            device=common_pb2.DeviceAddress(user=user, device_id=device), ciphertext=body
        )
    ]


async def send(
    api: Api, conversation: common_pb2.Conversation, items: list[chat_pb2.RecipientCiphertext]
) -> chat_pb2.SendResult:
    return await api.chat.Send(
        chat_pb2.SendRequest(conversation=conversation, ciphertexts=items), metadata=api.md
    )


async def code_of(awaitable: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await awaitable  # type: ignore[misc]
    return info.value.code(), info.value.details() or ""


async def pending(api: Api) -> int:
    fetched = await api.chat.Fetch(chat_pb2.FetchRequest(), metadata=api.md)
    return len(fetched.deliveries)


async def test_unknown_room_and_user(connect: ApiFactory) -> None:
    alice = await connect("alice")
    code, details = await code_of(
        send(alice, common_pb2.Conversation(room="nowhere"), one("bob", 1, b"x"))
    )
    assert code == grpc.StatusCode.NOT_FOUND and "nowhere" in details
    code, details = await code_of(
        send(alice, common_pb2.Conversation(user="ghost"), one("ghost", 1, b"x"))
    )
    assert code == grpc.StatusCode.NOT_FOUND and "ghost" in details
    code, _ = await code_of(
        alice.rooms.JoinRoom(rooms_pb2.JoinRoomRequest(name="nowhere"), metadata=alice.md)
    )
    assert code == grpc.StatusCode.NOT_FOUND


async def test_wrong_room_password_and_protected_join(connect: ApiFactory) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.rooms.CreateRoom(
        rooms_pb2.CreateRoomRequest(name="vault", password="open sesame", listed=True),
        metadata=alice.md,
    )
    code, details = await code_of(
        bob.rooms.JoinRoom(
            rooms_pb2.JoinRoomRequest(name="vault", password="wrong one"), metadata=bob.md
        )
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED and "wrong password" in details
    code, _ = await code_of(
        bob.rooms.JoinRoom(rooms_pb2.JoinRoomRequest(name="vault"), metadata=bob.md)
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED
    rooms = await bob.rooms.ListRooms(rooms_pb2.ListRoomsRequest(), metadata=bob.md)
    vault = next(r for r in rooms.rooms if r.name == "vault")
    assert vault.protected and not vault.member and vault.member_count == 1
    joined = await bob.rooms.JoinRoom(
        rooms_pb2.JoinRoomRequest(name="vault", password="open sesame"), metadata=bob.md
    )
    assert joined.room.member and joined.room.member_count == 2


async def test_sending_to_a_room_you_are_not_in(connect: ApiFactory) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.rooms.CreateRoom(rooms_pb2.CreateRoomRequest(name="den"), metadata=alice.md)
    code, details = await code_of(
        send(bob, common_pb2.Conversation(room="den"), one("alice", 1, b"x"))
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED and "not a member" in details
    assert await pending(alice) == 0


async def test_stale_device_list_is_rejected_with_the_current_list(connect: ApiFactory) -> None:
    alice = await connect("alice")
    await connect("bob")
    await connect("carol")
    # alice's view lacks carol: rejected with the full list, nothing stored.
    result = await send(alice, common_pb2.Conversation(room="lobby"), one("bob", 1, b"x"))
    assert not result.accepted and result.error_code == "stale_devices"
    assert [(d.user, d.device_id) for d in result.current_devices] == [("bob", 1), ("carol", 1)]
    bob = await connect("bob", register=False)
    assert await pending(bob) == 0
    # Duplicate device entries are a client bug, not a stale list.
    items = one("bob", 1, b"x") + one("bob", 1, b"y")
    code, _ = await code_of(send(alice, common_pb2.Conversation(user="bob"), items))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


async def test_empty_and_oversized_ciphertexts(connect: ApiFactory, server: Node) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    code, details = await code_of(
        send(alice, common_pb2.Conversation(user="bob"), one("bob", 1, b""))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "empty" in details
    limit = server.config.chat.max_message_bytes
    code, details = await code_of(
        send(alice, common_pb2.Conversation(user="bob"), one("bob", 1, b"x" * (limit + 1)))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "limit" in details
    # Over the transport limit: refused before it reaches the servicer.
    code, _ = await code_of(
        send(alice, common_pb2.Conversation(user="bob"), one("bob", 1, b"x" * (200 * 1024)))
    )
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    code, _ = await code_of(send(alice, common_pb2.Conversation(), one("bob", 1, b"x")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert await pending(bob) == 0


async def test_malformed_frames_end_the_stream(connect: ApiFactory) -> None:
    alice = await connect("alice")
    empty = ChatClient(alice)
    empty.put(chat_pb2.ClientFrame())
    error = await empty.wait_ended()
    assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "empty frame" in (error.details() or "")

    twice = ChatClient(alice)
    twice.put(chat_pb2.ClientFrame(open=chat_pb2.OpenStream()))
    error = await twice.wait_ended()
    assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT

    async def no_open():  # type: ignore[no-untyped-def]
        yield chat_pb2.ClientFrame(ping=chat_pb2.Ping())

    code, details = await code_of(_drain(alice.chat.Chat(no_open(), metadata=alice.md)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "open" in details


async def _drain(call: object) -> None:
    async for _ in call:  # type: ignore[attr-defined]
        pass


async def test_acking_a_sequence_never_delivered(connect: ApiFactory) -> None:
    alice = await connect("alice")
    stream = ChatClient(alice)
    stream.ack(5)
    error = await stream.wait_ended()
    assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "never" in (error.details() or "") or "only 0" in (error.details() or "")
    code, _ = await code_of(alice.chat.Ack(chat_pb2.AckRequest(seq=5), metadata=alice.md))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    resume = ChatClient(alice, resume_after=7)
    error = await resume.wait_ended()
    assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_send_rate_limit_says_when_to_retry(pki: DevPki, tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = server_config(
        pki, tmp_path / "data", **{"chat.send_rate_per_s": 0.5, "chat.send_burst": 2}
    )
    server = Node(config)
    await server.start()
    try:
        alice = Api(secure_channel(pki, server.port, "alice"))
        bob = Api(secure_channel(pki, server.port, "bob"))
        for api, name in ((alice, "alice"), (bob, "bob")):
            await api.register(name)
            await api.login(name)
        dm = common_pb2.Conversation(user="bob")
        assert (await send(alice, dm, one("bob", 1, b"1"))).accepted
        assert (await send(alice, dm, one("bob", 1, b"2"))).accepted
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await send(alice, dm, one("bob", 1, b"3"))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "too fast" in (info.value.details() or "")
        trailers = dict(info.value.trailing_metadata() or ())
        assert int(trailers["retry-after"]) >= 1
        # On the stream the same limit is a rejected SendResult, and the stream goes on.
        stream = ChatClient(alice)
        result = await stream.send(dm, {("bob", 1): b"4"})
        assert not result.accepted and result.error_code == "resource_exhausted"
        assert result.retry_after_s >= 1
        assert await pending(bob) == 2
        await stream.close()
        await alice.channel.close()
        await bob.channel.close()
    finally:
        await server.stop(grace=0)
