"""Typed async calls over one channel: accounts, keys, rooms, messages and the admin API.

Every call is awaited through :func:`~securechat.client.rpc.status.call`, so it fails only with
a SecureChatError. :meth:`Api.login` is the one login of every client (chat, scripts, admin,
bench); it keeps the session token and sends it as the bearer on every later call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc

from securechat.client.rpc.status import call
from securechat.crypto.account_password import Argon2Params, LoginParameters
from securechat_proto.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    auth_pb2,
    auth_pb2_grpc,
    chat_pb2,
    chat_pb2_grpc,
    keys_pb2,
    keys_pb2_grpc,
    rooms_pb2,
    rooms_pb2_grpc,
)

CALL_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class LoginResult:
    token: str
    expires_at_ms: int
    device_id: int
    role: str


@dataclass(frozen=True)
class ServerLogin:
    """What GetLoginParameters answered: the account's salt and costs, or that it is a legacy
    password account (log in with the password, then upgrade)."""

    login: LoginParameters
    legacy_password: bool


def _argon2(params: Argon2Params) -> auth_pb2.Argon2Parameters:
    return auth_pb2.Argon2Parameters(
        iterations=params.iterations, lanes=params.lanes, memory_kib=params.memory_cost
    )


class Api:
    """Typed async calls on one channel; ``token`` is sent as the bearer on every call."""

    def __init__(self, channel: grpc.aio.Channel, token: str = "") -> None:
        self.channel = channel
        self.token = token
        self._auth = auth_pb2_grpc.AuthServiceStub(channel)
        self._keys = keys_pb2_grpc.KeyServiceStub(channel)
        self._rooms = rooms_pb2_grpc.RoomServiceStub(channel)
        self._chat = chat_pb2_grpc.ChatServiceStub(channel)
        self._admin = admin_pb2_grpc.AdminServiceStub(channel)

    def _kw(self) -> dict[str, Any]:
        return {"metadata": self.metadata(), "timeout": CALL_TIMEOUT_S}

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- accounts --------------------------------------------------------------------------

    async def register(self, user: str, secret: str, login: LoginParameters | None = None) -> None:
        """Create the account: ``secret`` is the authenticator made with ``login`` (or, without
        it, the password of a legacy password account)."""
        request = auth_pb2.RegisterRequest(username=user, password=secret)
        if login is not None:
            request.login_salt = login.salt
            request.argon2.CopyFrom(_argon2(login.params))
        await call(self._auth.Register(request, timeout=CALL_TIMEOUT_S))

    async def login_parameters(self, user: str) -> ServerLogin:
        request = auth_pb2.GetLoginParametersRequest(username=user)
        reply = await call(self._auth.GetLoginParameters(request, timeout=CALL_TIMEOUT_S))
        a = reply.argon2
        params = Argon2Params(a.iterations, a.lanes, a.memory_kib)
        return ServerLogin(LoginParameters(reply.login_salt, params), reply.legacy_password)

    async def upgrade_login(self, authenticator: str, login: LoginParameters) -> None:
        request = auth_pb2.UpgradeLoginRequest(
            authenticator=authenticator, login_salt=login.salt, argon2=_argon2(login.params)
        )
        await call(self._auth.UpgradeLogin(request, **self._kw()))

    async def login(self, user: str, secret: str, device_id: int = 0) -> LoginResult:
        """Log in as ``device_id`` (0: register a new device) with the login secret (the
        authenticator, or a legacy account's password); the token is kept for later."""
        request = auth_pb2.LoginRequest(username=user, password=secret, device_id=device_id)
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

    # -- accounts own devices ----------------------------------------------------------------

    async def publish_account(self, request: keys_pb2.PublishAccountRequest) -> None:
        await call(self._keys.PublishAccount(request, **self._kw()))

    async def get_account(self, user: str) -> keys_pb2.GetAccountResponse:
        request = keys_pb2.GetAccountRequest(user=user)
        return await call(self._keys.GetAccount(request, **self._kw()))

    async def publish_device_change(
        self, request: keys_pb2.PublishDeviceChangeRequest
    ) -> keys_pb2.PublishDeviceChangeResponse:
        return await call(self._keys.PublishDeviceChange(request, **self._kw()))

    async def post_link_message(self, relay_id: str, slot: str, message: bytes) -> None:
        request = keys_pb2.PostLinkMessageRequest(relay_id=relay_id, slot=slot, message=message)
        await call(self._keys.PostLinkMessage(request, **self._kw()))

    async def get_link_message(self, relay_id: str, slot: str) -> bytes | None:
        request = keys_pb2.GetLinkMessageRequest(relay_id=relay_id, slot=slot)
        reply = await call(self._keys.GetLinkMessage(request, **self._kw()))
        return reply.message if reply.found else None

    # -- rooms ------------------------------------------------------------------------------

    async def create_room(
        self, name: str, password: str = "", *, create_event: bytes = b"", listed: bool = False
    ) -> rooms_pb2.RoomInfo:
        """``password``: empty (open), or for a signed room the room password authenticator."""
        request = rooms_pb2.CreateRoomRequest(
            name=name, password=password, create_event=create_event, listed=listed
        )
        reply: rooms_pb2.CreateRoomResponse = await call(
            self._rooms.CreateRoom(request, **self._kw())
        )
        return reply.room

    async def join_room(
        self, name: str, password: str = "", *, join_event: bytes = b""
    ) -> rooms_pb2.RoomInfo:
        request = rooms_pb2.JoinRoomRequest(name=name, password=password, join_event=join_event)
        reply: rooms_pb2.JoinRoomResponse = await call(self._rooms.JoinRoom(request, **self._kw()))
        return reply.room

    async def leave_room(self, name: str, *, leave_event: bytes = b"") -> None:
        request = rooms_pb2.LeaveRoomRequest(name=name, leave_event=leave_event)
        await call(self._rooms.LeaveRoom(request, **self._kw()))

    async def change_roster(self, name: str, event: bytes, password: str = "") -> int:
        """Append a signed REMOVE / ADMIN_* / SET_POLICY event; its sequence."""
        request = rooms_pb2.ChangeRosterRequest(name=name, event=event, password=password)
        reply: rooms_pb2.ChangeRosterResponse = await call(
            self._rooms.ChangeRoster(request, **self._kw())
        )
        return reply.sequence

    async def get_roster(
        self, name: str, from_sequence: int = 0, limit: int = 0
    ) -> rooms_pb2.GetRosterResponse:
        request = rooms_pb2.GetRosterRequest(name=name, from_sequence=from_sequence, limit=limit)
        reply: rooms_pb2.GetRosterResponse = await call(
            self._rooms.GetRoster(request, **self._kw())
        )
        return reply

    async def list_rooms(self) -> list[rooms_pb2.RoomInfo]:
        """Every room this account may see, page after page."""
        rooms: list[rooms_pb2.RoomInfo] = []
        token = ""
        while True:
            request = rooms_pb2.ListRoomsRequest(page_token=token)
            reply = await call(self._rooms.ListRooms(request, **self._kw()))
            rooms.extend(reply.rooms)
            if not reply.next_page_token or reply.next_page_token == token:
                return rooms
            token = reply.next_page_token

    async def list_members(self, name: str) -> list[rooms_pb2.Member]:
        request = rooms_pb2.ListMembersRequest(name=name)
        return list((await call(self._rooms.ListMembers(request, **self._kw()))).members)

    # -- messages ---------------------------------------------------------------------------

    async def send(self, request: chat_pb2.SendRequest) -> chat_pb2.SendResult:
        """The unary Send (scripts); the chat client sends on its stream (see rpc.sender)."""
        return await call(self._chat.Send(request, **self._kw()))

    async def fetch(self, after_seq: int, limit: int = 500) -> list[chat_pb2.Delivery]:
        request = chat_pb2.FetchRequest(after_seq=after_seq, limit=limit)
        return list((await call(self._chat.Fetch(request, **self._kw()))).deliveries)

    async def ack(self, seq: int, rooms: dict[str, int] | None = None) -> None:
        request = chat_pb2.AckRequest(seq=seq)
        for room, room_seq in sorted((rooms or {}).items()):
            request.rooms.add(room=room, room_seq=room_seq)
        await call(self._chat.Ack(request, **self._kw()))

    async def list_online(self) -> list[chat_pb2.OnlineUser]:
        reply = await call(self._chat.ListOnline(chat_pb2.ListOnlineRequest(), **self._kw()))
        return list(reply.users)

    def open_chat(
        self, frames: AsyncIterator[chat_pb2.ClientFrame] | None = None
    ) -> grpc.aio.StreamStreamCall:
        """Start the Chat stream (no deadline: it lives as long as the client); see rpc.link.

        Without ``frames`` the caller writes with ``call.write`` (no request generator)."""
        if frames is None:
            return self._chat.Chat(metadata=self.metadata())
        return self._chat.Chat(frames, metadata=self.metadata())

    # -- admin ------------------------------------------------------------------------------

    async def list_clients(self) -> list[admin_pb2.ConnectedClient]:
        request = admin_pb2.ListClientsRequest()
        return list((await call(self._admin.ListClients(request, **self._kw()))).clients)

    async def kick_user(self, user: str, reason: str = "") -> admin_pb2.KickUserResponse:
        request = admin_pb2.KickUserRequest(user=user, reason=reason)
        return await call(self._admin.KickUser(request, **self._kw()))

    async def create_invite(self, ttl_s: int = 0) -> admin_pb2.CreateInviteResponse:
        request = admin_pb2.CreateInviteRequest(ttl_s=ttl_s)
        reply: admin_pb2.CreateInviteResponse = await call(
            self._admin.CreateInvite(request, **self._kw())
        )
        return reply

    async def get_stats(self) -> admin_pb2.GetStatsResponse:
        return await call(self._admin.GetStats(admin_pb2.GetStatsRequest(), **self._kw()))
