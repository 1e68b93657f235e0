"""An async API over the generated stubs; the one place gRPC errors become SecureChatErrors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from securechat.errors import (
    AlreadyExists,
    CertificateError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    SecureChatError,
    Unauthenticated,
    Unavailable,
)
from securechat_proto.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    chat_pb2,
    chat_pb2_grpc,
    keys_pb2,
    keys_pb2_grpc,
    rooms_pb2,
    rooms_pb2_grpc,
)

T = TypeVar("T")
CALL_TIMEOUT_S = 20.0

_BY_STATUS: dict[grpc.StatusCode, type[SecureChatError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.ABORTED: FailedPrecondition,
}
_TLS_HINTS = ("ssl", "tls", "handshake", "certificate", "x509")


def _trailer(error: grpc.aio.AioRpcError, key: str) -> str | None:
    for name, value in error.trailing_metadata() or ():
        if name == key:
            return str(value)
    return None


def translate(error: grpc.aio.AioRpcError) -> SecureChatError:
    """Turn a failed call into the matching SecureChatError with a message saying what to do."""
    code = error.code()
    details = error.details() or ""
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        retry = _trailer(error, "retry-after")
        return ResourceExhausted(
            details or "rate limited: wait and try again",
            float(retry) if retry and retry.isdigit() else None,
        )
    if code == grpc.StatusCode.UNAVAILABLE:
        lowered = details.lower()
        if any(hint in lowered for hint in _TLS_HINTS):
            return CertificateError(
                "the TLS handshake with the server failed: check that --ca is the server's CA "
                "and that --cert/--key are a client certificate that CA issued and did not revoke"
            )
        if "socket closed" in lowered:
            return Unavailable(
                "the server closed the connection: it may not accept your client certificate "
                "(issued by another CA, revoked or expired) or it is shutting down; check "
                "--cert/--key and --server"
            )
        return Unavailable()
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return Unavailable("the server did not answer in time: check --server and try again")
    if code == grpc.StatusCode.UNAUTHENTICATED and _trailer(error, "securechat-error") == (
        CertificateError.code
    ):
        return CertificateError(details or "the client certificate was rejected")
    if code == grpc.StatusCode.INTERNAL:
        return SecureChatError(details or "the server failed: try again later")
    cls = _BY_STATUS.get(code, SecureChatError)
    return cls(details or None)


async def call(awaitable: Awaitable[T]) -> T:
    """Await one RPC, translating its failure."""
    try:
        return await awaitable
    except grpc.aio.AioRpcError as exc:
        raise translate(exc) from None


@dataclass(frozen=True)
class LoginResult:
    token: str
    expires_at_ms: int
    device_id: int
    role: str


class Api:
    """Typed async calls on one channel; ``token`` is sent as the bearer on every call."""

    def __init__(self, channel: grpc.aio.Channel, token: str = "") -> None:
        self.channel = channel
        self.token = token
        self._auth = auth_pb2_grpc.AuthServiceStub(channel)
        self._keys = keys_pb2_grpc.KeyServiceStub(channel)
        self._rooms = rooms_pb2_grpc.RoomServiceStub(channel)
        self._chat = chat_pb2_grpc.ChatServiceStub(channel)

    def _kw(self) -> dict[str, Any]:
        md = (("authorization", f"Bearer {self.token}"),) if self.token else ()
        return {"metadata": md, "timeout": CALL_TIMEOUT_S}

    async def close(self) -> None:
        await self.channel.close()

    # -- accounts --------------------------------------------------------------------------

    async def register(self, user: str, password: str) -> None:
        await call(self._auth.Register(auth_pb2.RegisterRequest(username=user, password=password),
                                       timeout=CALL_TIMEOUT_S))  # fmt: skip

    async def login(self, user: str, password: str, device_id: int = 0) -> LoginResult:
        request = auth_pb2.LoginRequest(username=user, password=password, device_id=device_id)
        reply = await call(self._auth.Login(request, timeout=CALL_TIMEOUT_S))
        self.token = reply.token
        return LoginResult(reply.token, reply.expires_at_ms, reply.device_id, reply.role)

    async def logout(self) -> None:
        await call(self._auth.Logout(auth_pb2.LogoutRequest(), **self._kw()))

    # -- keys -------------------------------------------------------------------------------

    async def publish_bundle(
        self, request: keys_pb2.PublishBundleRequest
    ) -> keys_pb2.PublishBundleResponse:
        return await call(self._keys.PublishBundle(request, **self._kw()))

    async def add_prekeys(self, request: keys_pb2.AddPreKeysRequest) -> None:
        await call(self._keys.AddPreKeys(request, **self._kw()))

    async def claim_bundles(self, user: str, device_ids: list[int]) -> list[keys_pb2.PreKeyBundle]:
        request = keys_pb2.ClaimBundlesRequest(user=user, device_ids=device_ids)
        return list((await call(self._keys.ClaimBundles(request, **self._kw()))).bundles)

    async def list_devices(self, user: str) -> list[keys_pb2.DeviceInfo]:
        request = keys_pb2.ListDevicesRequest(user=user)
        return list((await call(self._keys.ListDevices(request, **self._kw()))).devices)

    async def count_prekeys(self) -> keys_pb2.CountPreKeysResponse:
        return await call(self._keys.CountPreKeys(keys_pb2.CountPreKeysRequest(), **self._kw()))

    # -- rooms ------------------------------------------------------------------------------

    async def create_room(self, name: str, password: str = "") -> rooms_pb2.RoomInfo:
        request = rooms_pb2.CreateRoomRequest(name=name, password=password)
        reply: rooms_pb2.CreateRoomResponse = await call(
            self._rooms.CreateRoom(request, **self._kw())
        )
        return reply.room

    async def join_room(self, name: str, password: str = "") -> rooms_pb2.RoomInfo:
        request = rooms_pb2.JoinRoomRequest(name=name, password=password)
        reply: rooms_pb2.JoinRoomResponse = await call(self._rooms.JoinRoom(request, **self._kw()))
        return reply.room

    async def leave_room(self, name: str) -> None:
        await call(self._rooms.LeaveRoom(rooms_pb2.LeaveRoomRequest(name=name), **self._kw()))

    async def list_rooms(self) -> list[rooms_pb2.RoomInfo]:
        reply = await call(self._rooms.ListRooms(rooms_pb2.ListRoomsRequest(), **self._kw()))
        return list(reply.rooms)

    async def list_members(self, name: str) -> list[rooms_pb2.Member]:
        request = rooms_pb2.ListMembersRequest(name=name)
        return list((await call(self._rooms.ListMembers(request, **self._kw()))).members)

    # -- messages ---------------------------------------------------------------------------

    async def send(self, request: chat_pb2.SendRequest) -> chat_pb2.SendResult:
        return await call(self._chat.Send(request, **self._kw()))

    async def fetch(self, after_seq: int, limit: int = 500) -> list[chat_pb2.Delivery]:
        request = chat_pb2.FetchRequest(after_seq=after_seq, limit=limit)
        return list((await call(self._chat.Fetch(request, **self._kw()))).deliveries)

    async def ack(self, seq: int) -> None:
        await call(self._chat.Ack(chat_pb2.AckRequest(seq=seq), **self._kw()))

    async def list_online(self) -> list[chat_pb2.OnlineUser]:
        reply = await call(self._chat.ListOnline(chat_pb2.ListOnlineRequest(), **self._kw()))
        return list(reply.users)

    async def chat(
        self, frames: AsyncIterator[chat_pb2.ClientFrame]
    ) -> AsyncIterator[chat_pb2.ServerFrame]:
        """The Chat stream; yields server frames, raising translated errors when it ends."""
        md = (("authorization", f"Bearer {self.token}"),)
        stream = self._chat.Chat(frames, metadata=md)
        try:
            async for frame in stream:
                yield frame
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from None
        finally:
            stream.cancel()
