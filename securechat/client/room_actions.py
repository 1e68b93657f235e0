"""Membership changes this user makes: signed roster events, sent to the server.

Create, join, leave, remove, admin changes and room passwords (docs/e2e-wire-rooms.md section 1).
Each event is made by the crypto core (``securechat.crypto.room_membership``: signed with the
account key, checked against the same rules members apply) for the position after this
client's verified roster head; the server appends it only if that is still its head (ABORTED
otherwise: the client fetches what came first and signs again, a bounded number of times).

For a protected room the password is stretched with the room's salt into two independent keys
(``RoomPasswordKeys``): the authenticator, which the server bcrypt-checks, and the proof key,
which signs the join so that members' clients accept it. The password itself never leaves.

A member whose account key changed since joining (a reset) is *stale* until they join again
under the new key: :meth:`RoomActions.join` signs that rejoin although the user is a member
(under the old key); it replaces the membership and drops admin status.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from securechat.client.rosters import RosterBook
from securechat.client.vault import TEST_ARGON2, argon2_params
from securechat.crypto.keystore import Argon2Params
from securechat.crypto.room_membership import (
    admin_event,
    create_event,
    join_event,
    leave_event,
    new_room_salt,
    policy_event,
    remove_event,
)
from securechat.crypto.room_policy import OPEN_POLICY, ROOM_ARGON2, RoomPasswordKeys
from securechat.crypto.roster import Roster
from securechat.crypto.roster_event import Signer
from securechat.errors import FailedPrecondition, InvalidArgument, PermissionDenied, RosterMovedOn
from securechat_proto.v1 import rooms_pb2

ATTEMPTS = 3  # compare-and-append lost this often in a row: give up and say so
AskPassword = Callable[[], Awaitable[str]]
# The cheapest parameters the policy bounds allow (SECURECHAT_KDF_PROFILE=test only).
TEST_ROOM_ARGON2 = Argon2Params(iterations=1, lanes=1, memory_cost=8)


def room_argon2() -> Argon2Params:
    return TEST_ROOM_ARGON2 if argon2_params() == TEST_ARGON2 else ROOM_ARGON2


async def derive_password_keys(
    password: str, room: str, salt: bytes, params: Argon2Params
) -> RoomPasswordKeys:
    """Argon2id off the event loop."""
    return await asyncio.to_thread(RoomPasswordKeys.derive, password, room, salt, params)


class RoomActions:
    """Signs and submits this user's membership changes; applies them once accepted."""

    def __init__(self, rosters: RosterBook) -> None:
        self.rosters = rosters
        self.api = rosters.api
        self.vault = rosters.vault

    def _identity(self) -> tuple[Signer, str, bytes]:
        account = self.vault.account
        user = account.address.user
        key = account.account_key_of(user)
        if key is None:
            raise InvalidArgument(
                "this device has no account key yet (link it first): it cannot sign room changes"
            )
        return account.devices.signer, user, key

    async def create(
        self, room: str, password: str = "", *, listed: bool = False
    ) -> rooms_pb2.RoomInfo:
        signer, user, key = self._identity()
        salt = new_room_salt()
        policy, authenticator = OPEN_POLICY, ""
        if password:
            params = room_argon2()
            keys = await derive_password_keys(password, room, salt, params)
            policy, authenticator = keys.policy(params), keys.authenticator.decode("ascii")
        event = create_event(room, signer, user, key, room_salt=salt, policy=policy)
        info = await self.api.create_room(room, authenticator, create_event=event, listed=listed)
        self.rosters.created(room, event)
        return info

    async def join(self, room: str, ask_password: AskPassword) -> rooms_pb2.RoomInfo | None:
        """Join a signed room (None: the room has no signed roster, join it the old way)."""
        signer, user, key = self._identity()
        keys: RoomPasswordKeys | None = None
        for _ in range(ATTEMPTS):
            roster = await self.rosters.sync(room, rejoin=False)  # (this is the rejoin)
            if roster is None:
                return None
            if roster.current_member(user, self.rosters.account_key_of) is not None:
                raise InvalidArgument(f"you are already a member of #{room}")
            if roster.policy.protected and keys is None:
                params = roster.policy.argon2
                assert params is not None
                keys = await derive_password_keys(await ask_password(), room, roster.room_salt,
                                                  params)  # fmt: skip
                if keys.proof_public_key != roster.policy.proof_public_key:
                    raise PermissionDenied(f"wrong password for #{room}")
            event = join_event(roster, signer, user, key, keys)
            secret = keys.authenticator.decode("ascii") if keys is not None else ""
            try:
                info = await self.api.join_room(room, secret, join_event=event)
            except RosterMovedOn:
                continue  # someone else's event took the position: sync and sign again
            self.rosters.applied(room, roster, event)
            return info
        raise FailedPrecondition(f"#{room} kept changing while joining: try again")

    async def rejoin(self, room: str) -> None:
        """Join again under the current account key (our membership is stale); an open room
        only: a protected room needs the password, which only the user can give."""

        async def no_password() -> str:
            raise FailedPrecondition(
                f"#{room} is protected: join it again with the room password (/join #{room})"
            )

        await self.join(room, no_password)

    async def leave(self, room: str) -> bool:
        """Leave a signed room (False: it has none, leave it the old way)."""
        signer, user, key = self._identity()
        for _ in range(ATTEMPTS):
            roster = await self.rosters.sync(room)
            if roster is None:
                return False
            if (
                roster.is_member(user)
                and roster.current_member(user, self.rosters.account_key_of) is None
            ):
                how = "with its room password " if roster.policy.protected else ""
                raise FailedPrecondition(
                    f"your membership of #{room} is under your old account key: join it again "
                    f"{how}(/join #{room}) to leave it, or ask an admin to remove you"
                )
            event = leave_event(roster, signer, user, key)
            try:
                await self.api.leave_room(room, leave_event=event)
            except RosterMovedOn:
                continue
            self.rosters.applied(room, roster, event)
            return True
        raise FailedPrecondition(f"#{room} kept changing while leaving: try again")

    async def remove(self, room: str, subject: str) -> None:
        signer, user, key = self._identity()
        await self._change(room, lambda r: remove_event(r, signer, user, key, subject))

    async def set_admin(self, room: str, subject: str, *, make_admin: bool) -> None:
        signer, user, key = self._identity()
        await self._change(
            room, lambda r: admin_event(r, signer, user, key, subject, make_admin=make_admin)
        )

    async def admin_roster(self, room: str) -> Roster:
        """The room's verified roster, when this user is one of its admins (asked before a
        password is typed for nothing); PermissionDenied otherwise."""
        _, user, _ = self._identity()
        roster = await self._signed(room)
        if not roster.is_admin(user):
            raise PermissionDenied(
                f"only an admin of #{room} can change its password: ask one of its admins "
                f"({', '.join(sorted(u for u, m in roster.members.items() if m.admin))})"
            )
        return roster

    async def set_password(self, room: str, password: str) -> None:
        """Protect the room with ``password`` (empty: open it); admins only."""
        signer, user, key = self._identity()
        roster = await self.admin_roster(room)
        policy, authenticator = OPEN_POLICY, ""
        if password:
            params = room_argon2()
            keys = await derive_password_keys(password, room, roster.room_salt, params)
            policy, authenticator = keys.policy(params), keys.authenticator.decode("ascii")
        await self._change(
            room, lambda r: policy_event(r, signer, user, key, policy), authenticator
        )

    async def _signed(self, room: str) -> Roster:
        roster = await self.rosters.sync(room)
        if roster is None:
            raise FailedPrecondition(
                f"#{room} has no signed member list (a room from before signed rosters): "
                "its members cannot be changed by signed events"
            )
        return roster

    async def _change(self, room: str, make: Callable[[Roster], bytes], password: str = "") -> None:
        for _ in range(ATTEMPTS):
            roster = await self._signed(room)
            event = make(roster)
            try:
                await self.api.change_roster(room, event, password)
            except RosterMovedOn:
                continue
            self.rosters.applied(room, roster, event)
            return
        raise FailedPrecondition(f"#{room} kept changing: try again")
