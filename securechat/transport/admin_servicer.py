"""AdminService: connected clients, kick, stats, certificate revocation, invites (admin role
only)."""

from __future__ import annotations

from securechat.services.admin import Admin
from securechat.transport.convert import device_to_proto
from securechat.transport.rpc import Call
from securechat_proto.v1 import admin_pb2


class AdminServicer:
    def __init__(self, admin: Admin) -> None:
        self.admin = admin

    async def ListClients(
        self, request: admin_pb2.ListClientsRequest, call: Call
    ) -> admin_pb2.ListClientsResponse:
        return admin_pb2.ListClientsResponse(
            clients=[
                admin_pb2.ConnectedClient(
                    device=device_to_proto(c.device),
                    peer=c.peer,
                    certificate_subject=c.cert_subject,
                    connected_since_ms=c.connected_ms,
                    messages_sent=c.messages_sent,
                    node=c.node,
                )
                for c in self.admin.clients()
            ]
        )

    async def KickUser(
        self, request: admin_pb2.KickUserRequest, call: Call
    ) -> admin_pb2.KickUserResponse:
        streams, sessions = await self.admin.kick(request.user, request.reason)
        return admin_pb2.KickUserResponse(streams_closed=streams, sessions_revoked=sessions)

    async def GetStats(
        self, request: admin_pb2.GetStatsRequest, call: Call
    ) -> admin_pb2.GetStatsResponse:
        stats = await self.admin.stats()
        return admin_pb2.GetStatsResponse(
            uptime_s=stats.uptime_s,
            connected_streams=stats.connected_streams,
            users=stats.users,
            rooms=stats.rooms,
            messages_accepted=stats.messages_accepted,
            deliveries=stats.deliveries,
            version=stats.version,
            node=stats.node,
        )

    async def RevokeCertificate(
        self, request: admin_pb2.RevokeCertificateRequest, call: Call
    ) -> admin_pb2.RevokeCertificateResponse:
        await self.admin.revoke(request.serial_hex, request.sha256_fingerprint, request.subject)
        return admin_pb2.RevokeCertificateResponse()

    async def CreateInvite(
        self, request: admin_pb2.CreateInviteRequest, call: Call
    ) -> admin_pb2.CreateInviteResponse:
        code, expires_at_ms = await self.admin.create_invite(call.user, request.ttl_s)
        return admin_pb2.CreateInviteResponse(code=code, expires_at_ms=expires_at_ms)
