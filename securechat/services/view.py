"""One running node as operators see it: the status page, ``/api/status`` and the server console
read it through :class:`NodeView`, never through the gRPC server or the composition root.

It holds no secrets and no message content: user names, device ids, peer addresses, certificate
subjects, counts and times. Besides reading, it can do the one thing the console does: kick.
"""

from __future__ import annotations

from collections.abc import Mapping

from securechat.domain.model import RoomSummary
from securechat.services.accounts import Accounts
from securechat.services.admin import Admin, ClientInfo, Stats
from securechat.services.messaging import Messenger


class NodeView:
    def __init__(self, name: str, admin: Admin, accounts: Accounts, messenger: Messenger) -> None:
        self.name = name
        self._admin = admin
        self._accounts = accounts
        self._messenger = messenger

    def clients(self) -> list[ClientInfo]:
        """Streams connected to this node, by user and device."""
        return self._admin.clients()

    async def stats(self) -> Stats:
        return await self._admin.stats()

    async def rooms(self) -> list[RoomSummary]:
        return await self._admin.store.list_rooms("")

    async def kick(self, user: str, reason: str) -> tuple[int, int]:
        """End the user's streams and sessions: (streams ended here, sessions revoked)."""
        return await self._admin.kick(user, reason)

    def now_ms(self) -> int:
        return self._admin.clock.now_ms()

    def uptime_s(self) -> int:
        return (self.now_ms() - self._admin.started_ms) // 1000

    @property
    def login_outcomes(self) -> Mapping[str, int]:
        """Login attempts by outcome since start (ok, failed, locked, invalid)."""
        return self._accounts.login_outcomes

    @property
    def messages_accepted(self) -> int:
        return self._messenger.accepted

    @property
    def deliveries(self) -> int:
        return self._messenger.deliveries
