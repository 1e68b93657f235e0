"""Who each conversation's messages are encrypted for: the one place recipient lists are kept.

The book asks the server once per conversation (ListMembers for a room; ListDevices of the
peer and of this user for a private conversation) and keeps the answer. From then on the
server's ``stale_devices`` answer to a send is what changes it (:meth:`RecipientBook.update`),
and every change is told to the user: who joined, whose new device will read along.

This is where the client will check device certificates and signed rosters before trusting a
list (e2e.md): every send asks :meth:`RecipientBook.devices` first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from securechat.client.events import NoticeEvent, Target
from securechat.client.rpc.api import Api
from securechat.crypto.account import Address
from securechat.errors import FailedPrecondition, InvalidArgument


class RecipientBook:
    """The device lists this client learned, per conversation, excluding its own device."""

    def __init__(self, api: Api, me: Address) -> None:
        self.api = api
        self.me = me
        self._known: dict[Target, tuple[Address, ...]] = {}

    async def devices(self, target: Target) -> tuple[Address, ...]:
        """Every device a message to ``target`` must be encrypted for.

        An empty list is asked again (someone may have joined since); still empty, it is an
        error, since the server refuses a message for nobody."""
        known = self._known.get(target)
        if known:
            return known
        devices = await self.refresh(target)
        if not devices:
            raise FailedPrecondition(
                f"nobody else is in {target} yet, so nobody could read the message: "
                "wait until someone joins"
            )
        return devices

    async def refresh(self, target: Target) -> tuple[Address, ...]:
        """Ask the server again and keep its answer (silently: nothing was sent yet)."""
        devices = await self.fetch(target)
        self._known[target] = devices
        return devices

    async def fetch(self, target: Target) -> tuple[Address, ...]:
        """Ask the server for the current list (does not change the book)."""
        if target.kind == "room":
            members = await self.api.list_members(target.name)
            found = [Address(m.user, d) for m in members for d in m.device_ids]
        else:
            if target.name == self.me.user:
                raise InvalidArgument("that is you: send a private message to someone else")
            peers = await self.api.list_devices(target.name)
            if not peers:
                raise FailedPrecondition(
                    f"{target.name} has not logged in on any device yet, so nobody could read "
                    "the message: try again later"
                )
            own = await self.api.list_devices(self.me.user)
            found = [Address(i.device.user, i.device.device_id) for i in [*peers, *own]]
        return self._mine_removed(found)

    def update(self, target: Target, current: Sequence[Address]) -> list[NoticeEvent]:
        """Take the server's current list for ``target``; notices for who joined or added a
        device since the list the book had."""
        before = self._known.get(target, ())
        after = self._mine_removed(current)
        self._known[target] = after
        return changes(target, before, after)

    def _mine_removed(self, devices: Iterable[Address]) -> tuple[Address, ...]:
        return tuple(sorted({d for d in devices if d != self.me}))


def changes(
    target: Target, before: Sequence[Address], after: Sequence[Address]
) -> list[NoticeEvent]:
    """What the user is told when a conversation's device list grows."""
    old_users = {d.user for d in before}
    joined = sorted({d.user for d in after} - old_users)
    new_devices = sorted({d.user for d in set(after) - set(before)} - set(joined))
    notices = []
    if joined:
        text = f"{', '.join(joined)} joined {target}: encrypting for them too"
        notices.append(NoticeEvent(text, target=target))
    if new_devices:
        text = f"new device for {', '.join(new_devices)} in {target}: re-encrypting"
        notices.append(NoticeEvent(text, target=target))
    return notices
