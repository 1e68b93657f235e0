"""AuthService: Register, Login, Logout."""

from __future__ import annotations

from securechat.domain.sources import source_key
from securechat.services.accounts import Accounts
from securechat.transport.rpc import Call
from securechat_proto.v1 import auth_pb2


class AuthServicer:
    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts

    async def Register(
        self, request: auth_pb2.RegisterRequest, call: Call
    ) -> auth_pb2.RegisterResponse:
        user = await self.accounts.register(
            request.username,
            request.password,
            source_key(call.peer),
            call.certificate,
            request.invite_code,
        )
        return auth_pb2.RegisterResponse(username=user.name)

    async def Login(self, request: auth_pb2.LoginRequest, call: Call) -> auth_pb2.LoginResponse:
        result = await self.accounts.login(
            request.username,
            request.password,
            request.device_id,
            peer=source_key(call.peer),
            certificate=call.certificate,
        )
        return auth_pb2.LoginResponse(
            token=result.token,
            expires_at_ms=result.session.expires_at_ms,
            device_id=result.session.device_id,
            role=result.session.role.value,
        )

    async def Logout(self, request: auth_pb2.LogoutRequest, call: Call) -> auth_pb2.LogoutResponse:
        assert call.session is not None
        await self.accounts.logout(call.session)
        return auth_pb2.LogoutResponse()
