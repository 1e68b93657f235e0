"""Rooms from before signed rosters (the lobby above all) made end-to-end verified.

A room without a signed roster is sent to pairwise, to whatever member list the server returns:
a lying server can add a ghost member and read it. The server lets a member of such a room
sign its CREATE (docs/e2e-wire-rooms.md, "Upgrading a room from before signed rosters"); the
signer becomes its only member and admin, the server drops the old member list, and every other
member joins again with a signed JOIN, shown to everyone before anything is encrypted to them.
From then on the server cannot add anyone (it stops joining new accounts to the default room).

:class:`LegacyRooms` does the client's half:

* :meth:`LegacyRooms.open`: the user opens a room (the chat's room at start, ``/join``): an OPEN
  legacy room the user is a member of is upgraded with a signed CREATE (open policy); when
  another member signed first (AlreadyExists, or the compare-and-append lost), its roster is
  fetched instead. A password-protected legacy room is not upgraded on its own: the proof key
  of its joins comes from a password this client does not have. The user is told so once;
  ``/upgrade`` (:meth:`LegacyRooms.upgrade`) asks for a room password and signs the CREATE.
* every legacy room the user is seen a member of is remembered in the keystore
  (``ClientState.legacy_rooms``); once it has a signed roster without the user
  (:meth:`LegacyRooms.rejoin`, at each stream start and when its roster events arrive), the
  client joins it with a signed JOIN when it is open, and says how to join when it is not.
  Only rooms the user was a member of are joined this way: the server cannot make the client
  join a room by pushing someone's CREATE event.

Pairwise room messages sent before the upgrade stay readable: their deliveries are opened with
the pairwise sessions as before (client/messenger.py tries the room's key distribution first).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from securechat.client.events import Event, NoticeEvent, Target
from securechat.client.room_actions import RoomActions
from securechat.crypto.roster import Roster
from securechat.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RosterMovedOn,
    SecureChatError,
)
from securechat_proto.v1 import rooms_pb2

Notify = Callable[[Event], None]
AskPassword = Callable[[], Awaitable[str]]


async def _no_password() -> str:
    raise InvalidArgument("an open room takes no password")


class LegacyRooms:
    """Upgrades this user's open legacy rooms and joins the signed rosters of the legacy rooms
    the user was a member of."""

    def __init__(self, actions: RoomActions, notify: Notify | None = None) -> None:
        self.actions = actions
        self.rosters = actions.rosters
        self.api = actions.api
        self.vault = actions.vault
        self.notify = notify
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def me(self) -> str:
        return self.vault.account.address.user

    def _tell(self, room: str, text: str, *, warning: bool = False) -> None:
        if self.notify is not None:
            self.notify(NoticeEvent(text, warning=warning, target=Target.room(room)))

    def _remember(self, room: str) -> None:
        if room not in self.vault.state.legacy_rooms:
            self.vault.state.legacy_rooms[room] = None
            self.vault.save()

    def _forget(self, room: str) -> None:
        if self.vault.state.legacy_rooms.pop(room, 0) is None:
            self.vault.save()

    async def _info(self, room: str) -> rooms_pb2.RoomInfo | None:
        for info in await self.api.list_rooms():
            if info.name == room:
                return info
        return None

    # -- opening a room --------------------------------------------------------------------

    async def open(self, room: str, info: rooms_pb2.RoomInfo | None = None) -> Roster | None:
        """The user opens ``room``: upgrade it when it is an open legacy room of the user's,
        join its signed roster when the user was a member before it was upgraded. The roster
        afterwards (None: the room stays a legacy one)."""
        lock = self._locks.setdefault(room, asyncio.Lock())
        async with lock:
            roster = await self.rosters.sync(room)
            if roster is None:
                info = info or await self._info(room)
                if info is None or not info.member:
                    return None
                self._remember(room)
                if info.protected:
                    if self.vault.state.first_time(f"legacy-protected:{room}"):
                        self.vault.save()
                        self._tell(room, protected_notice(room), warning=True)
                    return None
                roster = await self._create(room, "")
                if roster is None:
                    return None
            return await self._settle(room, roster)

    async def upgrade(self, room: str, ask_password: AskPassword | None = None) -> Roster:
        """``/upgrade``: sign the CREATE of a legacy room the user is a member of. A protected
        room keeps its protection with the password ``ask_password`` gives (its members join
        again with it); an open one stays open."""
        lock = self._locks.setdefault(room, asyncio.Lock())
        async with lock:
            if await self.rosters.sync(room) is not None:
                raise AlreadyExists(f"#{room} is end-to-end verified already (a signed roster)")
            info = await self._info(room)
            if info is None or not info.member:
                raise PermissionDenied(
                    f"you are not a member of #{room}: only a member can upgrade it"
                )
            password = ""
            if info.protected:
                if ask_password is None:
                    raise InvalidArgument(
                        f"#{room} is protected by a password: its upgrade needs the room "
                        "password (the proof key of its joins is made from it)"
                    )
                password = await ask_password()
                if not password:
                    raise InvalidArgument(f"no password given: #{room} was not upgraded")
            self._remember(room)
            roster = await self._create(room, password)
            if roster is None:
                raise FailedPrecondition(f"#{room} could not be upgraded: try again")
            return await self._settle(room, roster)

    async def _create(self, room: str, password: str) -> Roster | None:
        """Sign the room's CREATE; another member's, when it came first."""
        try:
            await self.actions.create(room, password)
        except (AlreadyExists, RosterMovedOn, PermissionDenied):
            # another member signed first (the server then dropped the old member list)
            return await self.rosters.refetch(room)
        except (NotFound, FailedPrecondition) as exc:
            self._tell(room, f"#{room} could not be upgraded: {exc.message}", warning=True)
            return None
        return self.rosters.roster(room)

    # -- after the upgrade -----------------------------------------------------------------

    async def rejoin(self, room: str) -> Roster | None:
        """A legacy room the user was a member of: join its signed roster if it has one now
        without the user (an open room; a protected one is told how)."""
        if room not in self.vault.state.legacy_rooms:
            return self.rosters.roster(room)
        lock = self._locks.setdefault(room, asyncio.Lock())
        async with lock:
            roster = await self.rosters.refetch(room)
            if roster is None:
                return None
            return await self._settle(room, roster)

    async def _settle(self, room: str, roster: Roster) -> Roster:
        if roster.is_member(self.me):
            self._forget(room)
            return roster
        if room not in self.vault.state.legacy_rooms:
            return roster  # a signed room the user was never in: joined only when asked
        if roster.policy.protected:
            self._forget(room)
            self._tell(
                room,
                f"#{room} has a password now: /join #{room} asks for it to join again",
                warning=True,
            )
            return roster
        with contextlib.suppress(InvalidArgument):  # a member already (another device's JOIN)
            await self.actions.join(room, _no_password)
        self._forget(room)
        return self.rosters.roster(room) or roster

    async def join_open(self, room: str) -> bool:
        """A new account: join ``room`` (the default room) with a signed JOIN when it has an
        open signed roster without the user (the server stops adding new accounts to it once
        it is signed). False: nothing to do (no such room, legacy, protected, a member)."""
        roster = await self.rosters.sync(room)
        if roster is None or roster.is_member(self.me) or roster.policy.protected:
            return False
        try:
            await self.actions.join(room, _no_password)
        except InvalidArgument:
            return False  # a member already
        return True

    async def settle_all(self) -> None:
        """At each stream start: remember the legacy rooms the user is in, and join the
        signed rosters of remembered ones that were upgraded meanwhile. Nothing is upgraded
        here (only when the user opens a room)."""
        listed = {info.name: info for info in await self.api.list_rooms()}
        state = self.vault.state
        for name, info in sorted(listed.items()):
            unknown = name not in state.rosters and name not in state.legacy_rooms
            if info.member and unknown and await self.rosters.sync(name) is None:
                self._remember(name)
        for name in sorted(state.legacy_rooms):
            try:
                await self.rejoin(name)
            except SecureChatError as exc:
                self._tell(name, f"could not join #{name} again: {exc.message}", warning=True)


def protected_notice(room: str) -> str:
    return (
        f"#{room} is a room from before signed member lists and has a password: its messages "
        "still go to every member the server lists, so the server could add a reader. It is "
        f"not upgraded on its own (that needs the room password): /upgrade in #{room} asks "
        "for it and makes the room end-to-end verified"
    )
