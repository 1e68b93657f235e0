"""Operator use cases: who is connected, kick, stats, revoke a client certificate, invite."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from securechat import __version__
from securechat.bus.port import Bus
from securechat.domain import names
from securechat.domain.events import CertificateRevoked, UserKicked
from securechat.domain.model import DeviceRef, Invite
from securechat.errors import InvalidArgument, NotFound
from securechat.pki.inspection import parse_fingerprint
from securechat.services.clock import Clock
from securechat.services.hub import Hub
from securechat.services.messaging import Messenger
from securechat.storage.port import Store


@dataclass(frozen=True, slots=True)
class ClientInfo:
    device: DeviceRef
    peer: str
    cert_subject: str
    connected_ms: int
    messages_sent: int
    node: str


@dataclass(frozen=True, slots=True)
class Stats:
    uptime_s: int
    connected_streams: int
    users: int
    rooms: int
    messages_accepted: int
    deliveries: int
    pending_messages: int
    version: str
    node: str


EndSessions = Callable[[str, str], Awaitable[int]]

INVITE_TTL_S = 7 * 86400
MAX_INVITE_TTL_S = 90 * 86400


class Admin:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        hub: Hub,
        messenger: Messenger,
        clock: Clock,
        started_ms: int,
        end_sessions: EndSessions | None = None,
    ) -> None:
        self.end_sessions = end_sessions
        self.store = store
        self.bus = bus
        self.hub = hub
        self.messenger = messenger
        self.clock = clock
        self.started_ms = started_ms

    def clients(self) -> list[ClientInfo]:
        """Streams connected to this node."""
        return [
            ClientInfo(
                s.device,
                s.peer,
                s.certificate.subject,
                s.connected_ms,
                self.messenger.sent_by.get(s.device, 0),
                self.bus.node,
            )
            for s in sorted(
                self.hub.streams.values(), key=lambda s: (s.device.user, s.device.device_id)
            )
        ]

    async def kick(self, user: str, reason: str) -> tuple[int, int]:
        names.check_name(user)
        if await self.store.get_user(user) is None:
            raise NotFound(f"no user named {user!r}")
        sessions = await self.store.revoke_user_sessions(user)
        streams = len(self.hub.by_user.get(user, ()))
        why = (
            f"you were disconnected by an admin: {reason[:200]}"
            if reason
            else ("you were disconnected by an admin")
        )
        await self.bus.publish(UserKicked(user, why))
        return streams, sessions

    async def stats(self) -> Stats:
        stored = await self.store.stats()
        return Stats(
            uptime_s=(self.clock.now_ms() - self.started_ms) // 1000,
            connected_streams=len(self.hub.streams),
            users=stored.users,
            rooms=stored.rooms,
            messages_accepted=self.messenger.accepted,
            deliveries=self.messenger.deliveries,
            pending_messages=stored.pending_messages,
            version=__version__,
            node=self.bus.node,
        )

    async def revoke(self, serial_hex: str, fingerprint: str, subject: str) -> None:
        if not serial_hex and not fingerprint:
            raise InvalidArgument("give the certificate's serial or SHA-256 fingerprint")
        fingerprint = parse_fingerprint(fingerprint) if fingerprint else ""
        serial = serial_hex.lower().removeprefix("0x")
        if serial and any(c not in "0123456789abcdef" for c in serial):
            raise InvalidArgument("a serial number is hex digits")
        await self.store.add_revocation(serial, fingerprint, subject[:200], self.clock.now_ms())
        await self.bus.publish(CertificateRevoked(fingerprint, serial))
        if self.end_sessions is not None:
            await self.end_sessions(fingerprint, serial)

    async def create_invite(self, admin: str, ttl_s: int) -> tuple[str, int]:
        """A new one-use registration code (only its SHA-256 is stored) and its expiry."""
        ttl_s = ttl_s or INVITE_TTL_S
        if ttl_s > MAX_INVITE_TTL_S:
            raise InvalidArgument(f"an invite lasts at most {MAX_INVITE_TTL_S // 86400} days")
        code = secrets.token_urlsafe(18)
        now = self.clock.now_ms()
        expires = now + ttl_s * 1000
        digest = hashlib.sha256(code.encode("utf-8")).digest()
        await self.store.create_invite(Invite(digest, admin, now, expires))
        return code, expires
