"""AuthService: Register, Login, Logout, GetLoginParameters, UpgradeLogin."""

from __future__ import annotations

from securechat.domain.model import LoginRecord
from securechat.domain.sources import source_key
from securechat.services.accounts import Accounts
from securechat.services.logins import Logins
from securechat.transport import fields
from securechat.transport.rpc import Call
from securechat_proto.v1 import auth_pb2


def _login_record(salt: bytes, argon2: auth_pb2.Argon2Parameters) -> LoginRecord:
    return LoginRecord(salt, argon2.iterations, argon2.lanes, argon2.memory_kib)


class AuthServicer:
    def __init__(self, accounts: Accounts, logins: Logins) -> None:
        self.accounts = accounts
        self.logins = logins

    async def Register(
        self, request: auth_pb2.RegisterRequest, call: Call
    ) -> auth_pb2.RegisterResponse:
        login = _login_record(request.login_salt, request.argon2) if request.login_salt else None
        user = await self.accounts.register(
            request.username,
            request.password,
            source_key(call.peer),
            call.certificate,
            request.invite_code,
            login,
        )
        return auth_pb2.RegisterResponse(username=user.name)

    async def GetLoginParameters(
        self, request: auth_pb2.GetLoginParametersRequest, call: Call
    ) -> auth_pb2.GetLoginParametersResponse:
        answer = await self.logins.parameters(request.username)
        login = answer.login
        return auth_pb2.GetLoginParametersResponse(
            login_salt=login.salt,
            argon2=auth_pb2.Argon2Parameters(
                iterations=login.iterations, lanes=login.lanes, memory_kib=login.memory_kib
            ),
            legacy_password=answer.legacy_password,
        )

    async def UpgradeLogin(
        self, request: auth_pb2.UpgradeLoginRequest, call: Call
    ) -> auth_pb2.UpgradeLoginResponse:
        assert call.session is not None
        login = _login_record(request.login_salt, request.argon2)
        await self.logins.upgrade(call.session, request.authenticator, login, source_key(call.peer))
        return auth_pb2.UpgradeLoginResponse()

    async def Login(self, request: auth_pb2.LoginRequest, call: Call) -> auth_pb2.LoginResponse:
        result = await self.accounts.login(
            request.username,
            request.password,
            fields.device_id(request.device_id, "device_id"),
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
