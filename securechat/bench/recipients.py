"""The bench's recipient lists: the server's own device lists, taken as they are.

The load clients send opaque bytes, not end-to-end messages, so there is nothing to verify:
this book asks the server (ListMembers, ListDevices) and follows its ``stale_devices`` answers.
It must never be used for real messages: a real client encrypts only to devices it verified
(client/recipients.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from securechat.client.events import NoticeEvent, Target
from securechat.client.rpc.api import Api
from securechat.crypto.account import Address


class ServerListedRecipients:
    """Per conversation, the devices the server lists, except this one."""

    def __init__(self, api: Api, me: Address) -> None:
        self.api = api
        self.me = me
        self._known: dict[Target, tuple[Address, ...]] = {}

    async def devices(self, target: Target) -> tuple[Address, ...]:
        known = self._known.get(target)
        return known if known else await self.refresh(target)

    async def refresh(self, target: Target) -> tuple[Address, ...]:
        if target.kind == "room":
            members = await self.api.list_members(target.name)
            found = [Address(m.user, d) for m in members for d in m.device_ids]
        else:
            listed = [
                *await self.api.list_devices(target.name),
                *await self.api.list_devices(self.me.user),
            ]
            found = [Address(i.device.user, i.device.device_id) for i in listed if i.has_bundle]
        self._known[target] = tuple(sorted({d for d in found if d != self.me}))
        return self._known[target]

    async def update(self, target: Target, current: Sequence[Address]) -> list[NoticeEvent]:
        self._known[target] = tuple(sorted({d for d in current if d != self.me}))
        return []
