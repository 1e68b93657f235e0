"""AuthService: Register, Login, Logout."""

from __future__ import annotations

from securechat.services.accounts import Accounts
from securechat.transport import fields
from securechat.transport.rpc import Call
from securechat_proto.v1 import auth_pb2


class AuthServicer:
    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts

    async def Register(
        self, request: auth_pb2.RegisterRequest, call: Call
    ) -> auth_pb2.RegisterResponse:
        user = await self.accounts.register(request.username, request.password, _peer_host(call))
        return auth_pb2.RegisterResponse(username=user.name)

    async def Login(self, request: auth_pb2.LoginRequest, call: Call) -> auth_pb2.LoginResponse:
        result = await self.accounts.login(
            request.username,
            request.password,
            fields.device_id(request.device_id, "device_id"),
            peer=_peer_host(call),
            cert_subject=call.certificate.subject,
            cert_common_name=call.certificate.common_name,
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


def _peer_host(call: Call) -> str:
    """The peer's address without the port (ipv4:1.2.3.4:5678 -> ipv4:1.2.3.4)."""
    return call.peer.rsplit(":", 1)[0] if call.peer.count(":") >= 2 else call.peer
