"""What the server checks of a signed roster event before it stores it (docs/e2e-wire-rooms.md §1).

The server cannot sign, so it can never make an event itself; it checks what it can so that a
bad event is refused at once instead of being relayed to every member:

* the event parses canonically, names this room and is of a kind the call allows;
* its actor is the caller and its ``actor_key`` is the account key the server stores for the
  caller (issue 14), and the signature verifies under that key;
* its sequence and previous hash are the roster's head (``RosterMovedOn``, ABORTED, otherwise:
  the client fetches the roster and signs again);
* the membership rules, by replaying the event on the server's own verified roster
  (``crypto.roster.Roster``, kept as state next to the head): admins only for removals, admin
  changes and policies, no second join, the last admin stays, the join proof of a protected
  room verifies under the policy's public key; a member whose account key changed rejoins with a
  JOIN under the new key (which replaces the membership and drops admin status), and every
  other event must be signed by the key the actor joined with.

Members' clients check everything again with the keys they pinned; this gate only spares them
events that no honest server would relay.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from securechat.crypto.roster import Roster
from securechat.crypto.roster_event import GENESIS_PREV_HASH, EventKind, RosterEvent
from securechat.domain.model import RosterHead
from securechat.errors import (
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    RosterMovedOn,
    RosterRejected,
)
from securechat.storage.port import Store

CHANGE_KINDS = frozenset(
    {EventKind.REMOVE, EventKind.ADMIN_ADD, EventKind.ADMIN_REMOVE, EventKind.SET_POLICY}
)
_AUTHENTICATOR = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Verified:
    """An event that passed every check, with the server's roster after it and the members
    before it."""

    event: RosterEvent
    data: bytes
    roster: Roster
    before: frozenset[str]

    @property
    def after(self) -> frozenset[str]:
        return frozenset(self.roster.members)


def check_authenticator(password: str, protected: bool) -> bytes | None:
    """The room password authenticator of a protected policy (64 lowercase hex characters,
    never the password itself), or None for an open room (which takes none)."""
    if not protected:
        if password:
            raise InvalidArgument("an open room takes no password: leave `password` empty")
        return None
    if not _AUTHENTICATOR.fullmatch(password):
        raise InvalidArgument(
            "a protected room's `password` is its room password authenticator (64 lowercase "
            "hex characters, docs/e2e-wire-rooms.md), never the password itself"
        )
    return password.encode("ascii")


class RosterGate:
    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def parse(room: str, data: bytes, kinds: frozenset[EventKind]) -> RosterEvent:
        if not data:
            raise InvalidArgument("the request carries no signed roster event")
        try:
            event = RosterEvent.parse(data)
        except RosterRejected as exc:
            raise InvalidArgument(exc.message) from None
        if event.room != room:
            raise InvalidArgument(f"the event is for room {event.room!r}, not {room!r}")
        if event.kind not in kinds:
            wanted = ", ".join(sorted(kind.name for kind in kinds))
            raise InvalidArgument(f"a {event.kind.name} event does not belong here: {wanted}")
        return event

    async def _actor_key(self, event: RosterEvent, caller: str) -> bytes:
        """The caller's stored account key, which must be the event's actor key and verify
        its signature."""
        if event.actor != caller:
            raise PermissionDenied(
                f"the event is signed as {event.actor!r}: you can only sign events as yourself"
            )
        account = await self.store.get_account(caller)
        if account is None:
            raise FailedPrecondition(
                "you have no account key yet: a client that creates one signs room events"
            )
        if event.actor_key != account.account_key:
            raise PermissionDenied("the event names an account key that is not yours")
        if not event.signed_by(account.account_key):
            raise InvalidArgument("the event's signature does not verify under your account key")
        return account.account_key

    async def create(self, room: str, data: bytes, caller: str) -> Verified:
        """A CREATE event: the roster's event 0 (for a new room, or a room without a roster)."""
        event = self.parse(room, data, frozenset({EventKind.CREATE}))
        if event.sequence != 0 or event.prev_hash != GENESIS_PREV_HASH:
            raise InvalidArgument("a CREATE event is event 0 of its roster")
        await self._actor_key(event, caller)
        try:
            roster, _ = Roster.from_events(room, [data])
        except RosterRejected as exc:
            raise InvalidArgument(exc.message) from None
        return Verified(event, data, roster, frozenset())

    async def next(
        self, room: str, head: RosterHead, data: bytes, caller: str, kinds: frozenset[EventKind]
    ) -> Verified:
        """The event that extends the roster at ``head``."""
        event = self.parse(room, data, kinds)
        if head.length == 0:
            raise FailedPrecondition(
                f"room {room!r} has no signed roster yet: a member signs its CREATE event first"
            )
        if event.sequence != head.length or event.prev_hash != head.head:
            raise RosterMovedOn(
                f"the event is for position {event.sequence} of the roster of {room!r}, whose "
                f"next position is {head.length} (or it does not chain onto the last event): "
                "fetch the roster and sign again"
            )
        await self._actor_key(event, caller)
        roster = Roster.from_bytes(head.state)
        before = frozenset(roster.members)
        if event.kind in CHANGE_KINDS and not roster.is_admin(caller):
            raise PermissionDenied(f"{caller} is not an admin of {room!r}")
        try:
            roster.apply(data)
        except RosterRejected as exc:
            raise InvalidArgument(exc.message) from None
        return Verified(event, data, roster, before)
