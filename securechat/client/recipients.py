"""Who each conversation's messages are encrypted for: only devices this client verified.

For a private conversation: the peer's verified devices and the sender's own other verified
devices (they keep a copy, shown there as sent by the user). For a room from before signed
rosters: the verified devices of every member the server lists; in a signed room (issue 15)
only those of the members of the verified roster whose join the user was shown and whose
member key is the account key this client accepts for them, whatever the server lists. The
device lists come from :class:`~securechat.client.verified.AccountBook`,
never from the server's say-so: a device it lists without a valid certificate is not encrypted
to.

The book keeps each conversation's list until the server answers a send with ``stale_devices``.
That answer is only a hint (:meth:`RecipientBook.update`): the users it names are fetched and
verified again, and the message goes to the server's current devices only if every one of them
verifies; a server insisting on a device that does not is refused, and the user is told.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from securechat.client.events import NoticeEvent, Target
from securechat.client.rosters import RosterBook
from securechat.client.rpc.api import Api
from securechat.client.verified import AccountBook, UserDevices
from securechat.crypto.account import Address
from securechat.crypto.trust import TrustLevel
from securechat.errors import FailedPrecondition, IdentityChanged, InvalidArgument

FETCH_CONCURRENCY = 16


class RecipientBook:
    """The verified device lists of this client's conversations (never its own device)."""

    def __init__(
        self, api: Api, me: Address, accounts: AccountBook, rosters: RosterBook | None = None
    ) -> None:
        self.api = api
        self.me = me
        self.accounts = accounts
        self.rosters = rosters
        self._known: dict[Target, tuple[Address, ...]] = {}

    async def devices(self, target: Target) -> tuple[Address, ...]:
        """Every device a message to ``target`` is encrypted for (asked once, then kept).

        Raises IdentityChanged while a recipient's key change waits for the user's decision,
        FailedPrecondition when nobody could read the message."""
        if target.kind == "room" and self.rosters is not None:
            roster = await self.rosters.current(target.name)
            if roster is not None:
                accepted = self.rosters.account_key_of
                return await self._roster_devices(target, roster.recipients(accepted))
        known = self._known.get(target)
        if known:
            self._check_decided({d.user for d in known})
            return known
        devices = await self.refresh(target)
        if not devices:
            raise FailedPrecondition(
                f"nobody else is in {target} yet, so nobody could read the message: "
                "wait until someone joins"
            )
        return devices

    async def refresh(self, target: Target) -> tuple[Address, ...]:
        """Fetch and verify every user of ``target`` again and keep the result."""
        users = await self._users(target)
        found = await self._verify(users)
        if target.kind == "user" and not any(d.user == target.name for d in found):
            raise FailedPrecondition(
                f"{target.name} has no device that can receive encrypted messages yet (none "
                "with published keys and a valid certificate): try again later"
            )
        self._known[target] = found
        return found

    async def update(self, target: Target, current: Sequence[Address]) -> list[NoticeEvent]:
        """The server says the list is stale: verify the users it names, then take its list
        only if every device in it verifies (FailedPrecondition otherwise: nothing is sent).
        A signed room takes no list from the server: its members' devices are fetched again."""
        if target.kind == "room" and self.rosters is not None:
            roster = self.rosters.roster(target.name)
            if roster is not None:
                for user in roster.recipients(self.rosters.account_key_of):
                    await self.accounts.refresh(user, save=False)
                self.accounts.vault.save()
                return []
        before = self._known.get(target, ())
        users = {d.user for d in current} | {d.user for d in before} | {self.me.user}
        verified = set(await self._verify(users))
        wanted = {d for d in current if d != self.me}
        untrusted = sorted(wanted - verified)
        if untrusted:
            self._known.pop(target, None)
            names = ", ".join(f"{d.user} device {d.device_id}" for d in untrusted)
            raise FailedPrecondition(
                f"the server wants this message encrypted for a device that is not certified by "
                f"its account key ({names}): it was not sent. If this persists, the server may "
                "be trying to read your messages."
            )
        after = tuple(sorted(wanted))
        self._known[target] = after
        return changes(target, before, after)

    async def _roster_devices(self, target: Target, users: Sequence[str]) -> tuple[Address, ...]:
        """A signed room: the certified devices of the members in the verified roster whose
        join was shown; the server's member list is not asked (a ghost it lists is nobody)."""
        limit = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def one(user: str) -> UserDevices:
            async with limit:
                return await self.accounts.devices(user)

        found = await asyncio.gather(*(one(u) for u in sorted(set(users) | {self.me.user})))
        self._check_decided({u.user for u in found})
        devices = tuple(sorted({d for u in found for d in u.devices if d != self.me}))
        if not devices:
            raise FailedPrecondition(
                f"nobody else is in {target} yet, so nobody could read the message: "
                "wait until someone joins"
            )
        return devices

    async def _users(self, target: Target) -> set[str]:
        if target.kind == "room":
            members = await self.api.list_members(target.name)
            return {m.user for m in members} | {self.me.user}
        if target.name == self.me.user:
            raise InvalidArgument("that is you: send a private message to someone else")
        return {target.name, self.me.user}

    async def _verify(self, users: Iterable[str]) -> tuple[Address, ...]:
        limit = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def one(user: str) -> UserDevices:
            async with limit:
                return await self.accounts.refresh(user, save=False)

        found = await asyncio.gather(*(one(u) for u in sorted(set(users))))
        self.accounts.vault.save()  # what was learned stays learned, even if the send fails
        self._check_decided({u.user for u in found})
        return tuple(sorted({d for u in found for d in u.devices if d != self.me}))

    def _check_decided(self, users: Iterable[str]) -> None:
        account = self.accounts.vault.account
        for user in sorted(users):
            if user != self.me.user and account.trust_level(user) is TrustLevel.CHANGED:
                raise IdentityChanged(user, account.pinned_verified(user))


def changes(
    target: Target, before: Sequence[Address], after: Sequence[Address]
) -> list[NoticeEvent]:
    """What the user is told when a conversation gains members (devices coming and going are
    told by the account book, from verified lists)."""
    joined = sorted({d.user for d in after} - {d.user for d in before})
    if not joined or not before:
        return []
    text = f"{', '.join(joined)} joined {target}: encrypting for them too"
    return [NoticeEvent(text, target=target)]
