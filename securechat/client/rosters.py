"""Each room's verified roster in the keystore: what the client believes, not what the server says.

A room created with a signed CREATE event (issue 15, docs/e2e-wire-rooms.md section 1) has a
hash chain of membership events, each signed by its actor's account key. :class:`RosterBook`
keeps one :class:`~securechat.crypto.roster.Roster` per such room in the keystore and changes it
only through ``Roster.apply``: an event pushed on the stream (``RosterEvent``) or fetched with
``GetRoster`` when the stream's sequence is beyond the head (NEWER). A CREATE or JOIN is signed
by the key it names (the member's *member key*), every later event by its actor's member key.

Account keys change (a reset), so whether a member key is the user's key is asked of the
client's pins (``CryptoAccount.account_key_of``, fetched and judged by the account book the first
time an actor is met): a member whose key is not the accepted one is *stale*, told once in the
room, and neither encrypted to nor accepted from. Finding its *own* membership stale (this
account's key changed since it joined), the client rejoins under its current key by itself in an
open room (once per run); a protected room needs the room password, so the user is told to join
again.

Every applied change is shown in the room's buffer with who made it ("alice removed carol"),
and only then does its joiner become someone keys are sent to (``Roster.mark_shown``). An event
that does not verify is shown as a warning and changes nothing. A history that does not chain
onto the one this client holds is a fork: the server shows members different member lists,
and the user is told so.

A room whose server roster is empty is a room from before signed rosters (the lobby made at
registration, rooms of older servers): it keeps the pairwise fan-out to the server's member
list, as before the upgrade.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable

from securechat.client.events import Event, NoticeEvent, Target
from securechat.client.rpc.api import Api
from securechat.client.vault import Vault
from securechat.client.verified import AccountBook
from securechat.crypto.roster import Roster, RosterRelation
from securechat.crypto.roster_event import (
    EventKind,
    RosterChange,
    RosterEvent,
    RosterVersion,
    event_hash,
)
from securechat.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RosterRejected,
    SecureChatError,
)

Notify = Callable[[Event], None]
Rejoin = Callable[[str], Awaitable[object]]
PAGE = 1024
FETCH_CONCURRENCY = 16
# A first sync of a big room is summed up in one line instead of one line per join.
SUMMARY_OVER = 20


def upgrade_notice(room: str, actor: str) -> str:
    return (
        f"#{room}: {actor} made #{room} end-to-end verified: its member list is signed from now "
        "on, and room messages go only to members whose signed join is shown here. Members of "
        "the old room are in it again once they join (their clients do that for an open room)"
    )


def fork_warning(room: str, other: str = "") -> str:
    who = other or "other members"
    return (
        f"the server is showing you and {who} different member lists for #{room}: nothing is "
        "encrypted for or decrypted from the other list. The server may be trying to split or "
        "read the room."
    )


class RosterBook:
    """The verified rosters of this device's signed rooms (kept in ``vault.state.rosters``)."""

    def __init__(
        self, api: Api, vault: Vault, accounts: AccountBook, notify: Notify | None = None
    ) -> None:
        self.api = api
        self.vault = vault
        self.accounts = accounts
        self.notify = notify
        self._locks: dict[str, asyncio.Lock] = {}
        self._legacy: set[str] = set()  # rooms the server has no signed roster for (this run)
        self._was_legacy: set[str] = set()  # ... at some point of this run (upgrades are told)
        self._fresh: set[str] = set()  # synced since the stream (re)opened: events keep them
        self.rejoin: Rejoin | None = None  # joins a room again under the own current key
        self._rejoined: set[str] = set()  # rooms rejoined automatically this run (once each)

    def roster(self, room: str) -> Roster | None:
        return self.vault.state.rosters.get(room)

    async def current(self, room: str) -> Roster | None:
        """The roster, fetched up to the server's head once per connection (the stream's
        events keep it current after that); None for a room without one."""
        if room not in self._fresh:
            return await self.sync(room)
        return self.roster(room)

    def reconnected(self) -> None:
        """A new stream: events may have been missed while it was down (a legacy room may
        have been upgraded meanwhile)."""
        self._fresh.clear()
        self._legacy.clear()

    def is_legacy(self, room: str) -> bool:
        """Known (this connection) to have no signed roster."""
        return room in self._legacy and room not in self.vault.state.rosters

    async def refetch(self, room: str) -> Roster | None:
        """:meth:`sync`, also for a room known to be legacy (someone may have upgraded it)."""
        self._legacy.discard(room)
        return await self.sync(room)

    def _mark_legacy(self, room: str) -> None:
        self._legacy.add(room)
        self._was_legacy.add(room)

    def _tell(self, room: str, text: str, *, warning: bool = False) -> None:
        if self.notify is not None:
            self.notify(NoticeEvent(text, warning=warning, target=Target.room(room)))

    def rejected(self, room: str, error: SecureChatError) -> None:
        """A roster event from the server that does not verify: told, nothing changes."""
        self._tell(
            room,
            f"#{room}: the server sent a membership change that does not verify, ignored "
            f"({error.message})",
            warning=True,
        )

    # -- account keys ------------------------------------------------------------------------

    def account_key_of(self, user: str) -> bytes | None:
        """The account key this client accepts for ``user`` (its own for itself): a member
        whose member key is another is stale."""
        return self.vault.account.account_key_of(user)

    async def learn_keys(self, events: Iterable[bytes], *, save: bool = True) -> None:
        """Fetch (and judge) the account of every actor this client holds no key for yet, and
        of every user whose latest JOIN names another key than the accepted one (a rejoin after
        a reset: the key change is noticed, and put to the user, at once)."""
        actors: set[str] = set()
        joined: dict[str, bytes] = {}
        for data in events:
            try:
                event = RosterEvent.parse(data)
            except (InvalidArgument, RosterRejected, ValueError):
                continue  # apply() rejects it with the reason
            actors.add(event.actor)
            if event.kind in (EventKind.CREATE, EventKind.JOIN):
                joined[event.actor] = event.actor_key
        me = self.vault.account.address.user

        def wanted(user: str) -> bool:
            key = self.account_key_of(user)
            return key is None or (user != me and user in joined and joined[user] != key)

        unknown = sorted(a for a in actors if wanted(a))
        limit = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def one(user: str) -> None:
            async with limit:
                with contextlib.suppress(NotFound, InvalidArgument):  # no key: rejected
                    await self.accounts.refresh(user, save=False)

        await asyncio.gather(*(one(user) for user in unknown))
        if unknown and save:
            self.vault.save()

    # -- fetching ------------------------------------------------------------------------------

    async def _fetch(self, room: str, start: int) -> list[bytes]:
        events: list[bytes] = []
        position = start
        while True:
            reply = await self.api.get_roster(room, position, PAGE)
            events.extend(reply.events)
            position += len(reply.events)
            if not reply.events or position >= reply.next_sequence:
                return events

    async def sync(self, room: str, *, rejoin: bool = True) -> Roster | None:
        """Bring the room's roster up to the server's head; None for a room without one.
        ``rejoin``: a stale own membership of an open room is renewed (see the module doc)."""
        lock = self._locks.setdefault(room, asyncio.Lock())
        async with lock:
            roster = self.roster(room)
            if roster is None and room in self._legacy:
                return None
            start = 0 if roster is None else roster.version.sequence  # overlap one: forks show
            try:
                events = await self._fetch(room, start)
            except (NotFound, PermissionDenied, FailedPrecondition):
                if roster is None:
                    self._mark_legacy(room)  # no roster to be had (or a server without rosters)
                return roster
            await self.learn_keys(events, save=False)  # saved with the roster below
            self._fresh.add(room)
            if roster is None:
                roster = self._first(room, events)
            elif events and event_hash(events[0]) != roster.version.head:
                self._tell(room, fork_warning(room), warning=True)
            else:
                self._apply_all(room, roster, events[1:])
        if roster is not None and rejoin:
            await self._rejoin_if_stale(room, roster)
        return roster

    def _first(self, room: str, events: list[bytes]) -> Roster | None:
        if not events:
            self._mark_legacy(room)
            return None
        try:
            roster, changes = Roster.from_events(room, events)
        except (RosterRejected, InvalidArgument) as exc:
            self.rejected(room, exc)
            return None
        self.vault.state.rosters[room] = roster
        creator = changes[0].actor if changes else ""
        if changes and changes[0].version.sequence == 0 and self._upgraded(room):
            self._tell(room, upgrade_notice(room, creator))
            changes = changes[1:]
        if len(changes) > SUMMARY_OVER:
            self._tell(
                room,
                f"#{room}: verified member list, {len(roster.members)} members, each join "
                f"signed by the member's account key (created by {creator})",
            )
        else:
            for change in changes:
                self._show(room, change)
        roster.mark_shown(roster.version.sequence)
        self.tell_stale(room, roster)
        self.vault.save()
        return roster

    def _upgraded(self, room: str) -> bool:
        """Whether this room was known without a signed roster: its CREATE is an upgrade."""
        return room in self._was_legacy or room in self.vault.state.legacy_rooms

    def _apply_all(self, room: str, roster: Roster, events: list[bytes]) -> None:
        for data in events:
            try:
                change = roster.apply(data)
            except (RosterRejected, InvalidArgument) as exc:
                self.rejected(room, exc)
                break
            self._changed(room, roster, change)
        self.tell_stale(room, roster)
        self.vault.save_soon()  # a crash loses nothing the next sync does not fetch again

    # -- stale members -------------------------------------------------------------------------

    def tell_stale(self, room: str, roster: Roster) -> None:
        """Tell, once per membership, of each member whose member key is not the account key
        this client accepts for them (they get nothing and are not accepted as senders)."""
        me = self.vault.account.address.user
        for member in roster.stale_members(self.account_key_of):
            key = f"stale:{room}:{member.user}:{member.account_key.hex()}"
            if not self.vault.state.first_time(key):
                continue
            if member.user == me:
                how = (
                    "rejoining it under your current key"
                    if not roster.policy.protected
                    else f"join it again with the room password (/join #{room})"
                )
                self._tell(
                    room,
                    f"#{room}: your membership is under an account key that is not this "
                    "device's (you reset your account key since you joined, or the server made a "
                    f"join in your name): you get no room messages until you rejoin; {how}",
                    warning=True,
                )
            else:
                who = member.user
                self._tell(
                    room,
                    f"#{room}: {who}'s account key changed since {who} joined (or the membership "
                    f"was made under a key you have not accepted for {who}): {who} gets no "
                    f"messages and none from {who} are accepted until {who} rejoins",
                    warning=True,
                )

    async def _rejoin_if_stale(self, room: str, roster: Roster) -> None:
        """Our own membership is stale: rejoin an open room under the current key (once a
        run, so that a server fabricating joins in our name cannot make us loop)."""
        me = self.vault.account.address.user
        if (
            self.rejoin is None
            or roster.policy.protected
            or room in self._rejoined
            or not roster.is_member(me)
            or roster.current_member(me, self.account_key_of) is not None
            or self.account_key_of(me) is None
        ):
            return
        self._rejoined.add(room)
        try:
            await self.rejoin(room)
        except SecureChatError as exc:
            self._tell(room, f"#{room}: could not rejoin: {exc.message}", warning=True)

    def _show(self, room: str, change: RosterChange) -> None:
        self._tell(room, f"#{room}: {change.describe()}")

    def _changed(self, room: str, roster: Roster, change: RosterChange) -> None:
        keys = self.vault.state.room_keys.get(room)
        if keys is not None:
            keys.on_roster_change(change)  # a departed member's chains are forgotten
        self._show(room, change)
        roster.mark_shown(change.version.sequence)

    # -- what arrives ----------------------------------------------------------------------

    async def receive(self, room: str, sequence: int, data: bytes) -> None:
        """One event from the stream (see :meth:`receive_many`)."""
        await self.receive_many(room, [(sequence, data)])

    async def receive_many(self, room: str, events: list[tuple[int, bytes]]) -> None:
        """Events of one room from the stream, in order: applied when they follow the head,
        fetched up to when they are beyond it; one at a position we hold is compared (a
        different one there is a fork)."""
        roster = self.roster(room)
        if roster is None:
            self._legacy.discard(room)  # an upgrade of a room from before rosters, maybe
            await self.sync(room)
            return
        head = roster.version.sequence
        following: list[bytes] = []
        for sequence, data in events:
            if sequence <= head:
                relation = roster.relation(RosterVersion(sequence, event_hash(data)))
                if relation is RosterRelation.FORKED:
                    self._tell(room, fork_warning(room), warning=True)
            elif sequence == head + 1 + len(following):
                following.append(data)
            else:
                await self.sync(room)
                return
        if not following:
            return
        await self.learn_keys(following, save=False)  # saved with the roster below
        lock = self._locks.setdefault(room, asyncio.Lock())
        async with lock:
            if roster.version.sequence == head:
                self._apply_all(room, roster, following)
        await self._rejoin_if_stale(room, roster)

    async def relation(self, room: str, version: RosterVersion, other: str) -> RosterRelation:
        """How another member's version relates to ours: NEWER fetches first; FORKED is told."""
        roster = self.roster(room)
        if roster is None:
            return RosterRelation.TOO_OLD
        relation = roster.relation(version)
        if relation is RosterRelation.NEWER:
            await self.sync(room)
            relation = roster.relation(version)
        if relation is RosterRelation.FORKED:
            self._tell(room, fork_warning(room, other), warning=True)
        return relation

    def created(self, room: str, event: bytes) -> None:
        """Our own CREATE event, accepted by the server."""
        self._legacy.discard(room)
        self.vault.state.rosters.pop(room, None)
        self._first(room, [event])

    def applied(self, room: str, roster: Roster, data: bytes) -> None:
        """Our own event, accepted by the server: apply it as any other (unless the stream
        brought it first)."""
        self.vault.state.rosters.setdefault(room, roster)
        if roster.version.head != event_hash(data):
            self._apply_all(room, roster, [data])
