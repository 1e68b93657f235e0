"""A room's verified roster: the state machine that applies signed, hash-chained events.

The client keeps one :class:`Roster` per room and encrypts only to its members. Events come from
the server, which may lie; :meth:`Roster.apply` accepts an event only if it is the next one in
the hash chain, is signed by the right key (a CREATE or JOIN by the key it names, which becomes
the member's *member key*; every other event by its actor's member key) and follows the rules
(only admins remove or change admins, the last admin cannot vanish, joins and leaves are
self-signed, a protected room's join carries a password proof). Anything else raises
``RosterRejected`` and changes nothing. Each applied event returns a :class:`RosterChange` to
show in the room. Applying uses nothing but the events, so every client reaches the same roster.

Account keys change (a reset): whether a member's key is still the one the client accepts for
the user is asked separately (``accepted``, backed by the client's pins): a member whose key
differs is *stale* (:meth:`Roster.stale_members`), never a recipient nor a valid sender, until
they rejoin under the accepted key (a *rekeyed rejoin*, which drops their admin status).

Rules and byte layouts: docs/e2e-wire-rooms.md §1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from enum import Enum

from securechat.crypto.encoding import Reader, Writer
from securechat.crypto.room_policy import (
    HASH_SIZE,
    KEY_SIZE,
    ROOM_SALT_SIZE,
    RoomPolicy,
    argon2_within_bounds,
    join_proof_valid,
)
from securechat.crypto.roster_event import (
    GENESIS_PREV_HASH,
    EventKind,
    RosterChange,
    RosterEvent,
    RosterVersion,
)
from securechat.errors import InvalidArgument, RosterRejected

AccountKeyLookup = Callable[[str], bytes | None]
STATE_MAGIC = b"SCRS"
STATE_VERSION = 1
MAX_HISTORY = 1024  # event hashes kept for comparing versions
_SELF_EVENTS = (EventKind.CREATE, EventKind.JOIN, EventKind.LEAVE, EventKind.SET_POLICY)


class RosterRelation(Enum):
    """How another roster version relates to ours."""

    SAME = "same"
    OLDER = "older"  # an earlier point of our own chain: the sender had not seen the latest
    NEWER = "newer"  # beyond our head: fetch and apply the missing events first
    FORKED = "forked"  # a different history: the server shows members different rosters
    TOO_OLD = "too_old"  # before the kept window: cannot be checked


@dataclass(frozen=True)
class Member:
    user: str
    account_key: bytes  # the member key: the key of the member's CREATE or (last) JOIN
    admin: bool
    joined_at: int  # sequence of the member's JOIN (0 for the creator)

    def current(self, accepted: AccountKeyLookup) -> bool:
        """Whether the member key is the key the client accepts for the user (not stale)."""
        return accepted(self.user) == self.account_key


@dataclass(frozen=True)
class _Entry:
    sequence: int
    hash: bytes
    removal: bool


class Roster:
    """The verified membership of one room. Not thread-safe; persist with :meth:`to_bytes`."""

    def __init__(
        self,
        room: str,
        room_salt: bytes,
        policy: RoomPolicy,
        members: dict[str, Member],
        history: list[_Entry],
        shown_count: int = 0,
        closed: bool = False,
    ) -> None:
        self.room = room
        self.room_salt = room_salt
        self.policy = policy
        self._members = members
        self._history = history
        self.shown_count = shown_count
        self.closed = closed

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def from_events(cls, room: str, events: Iterable[bytes]) -> tuple[Roster, list[RosterChange]]:
        """Verify a room's whole history from its CREATE event on."""
        iterator = iter(events)
        first = next(iterator, None)
        if first is None:
            raise RosterRejected(f"room {room!r} has no events")
        event = RosterEvent.parse(first)
        if event.kind is not EventKind.CREATE or event.sequence != 0:
            raise RosterRejected("a room's first event must be its CREATE event")
        if event.room != room:
            raise RosterRejected(f"the CREATE event is for room {event.room!r}, not {room!r}")
        if event.prev_hash != GENESIS_PREV_HASH or event.subject != event.actor:
            raise RosterRejected("malformed CREATE event")
        assert event.room_salt is not None
        assert event.policy is not None
        if not event.signed_by(event.actor_key):
            raise RosterRejected(f"event 0 is not signed by {event.actor}")
        creator = Member(event.actor, event.actor_key, admin=True, joined_at=0)
        roster = cls(
            room,
            event.room_salt,
            event.policy,
            {creator.user: creator},
            [_Entry(0, event.hash(), removal=False)],
        )
        changes = [roster._change(event, roster.version)]
        changes.extend(roster.apply(data) for data in iterator)
        return roster, changes

    # -- queries ---------------------------------------------------------------------------

    @property
    def version(self) -> RosterVersion:
        last = self._history[-1]
        return RosterVersion(last.sequence, last.hash)

    @property
    def members(self) -> Mapping[str, Member]:
        return dict(self._members)

    def member(self, user: str) -> Member | None:
        return self._members.get(user)

    def is_member(self, user: str) -> bool:
        return user in self._members

    def is_admin(self, user: str) -> bool:
        member = self._members.get(user)
        return member is not None and member.admin

    def recipients(self, accepted: AccountKeyLookup) -> list[str]:
        """Members whose join the client has shown (:meth:`mark_shown`) and who are not stale
        (their member key is the key ``accepted`` returns for them): the ones to encrypt to."""
        return sorted(
            m.user
            for m in self._members.values()
            if m.joined_at < self.shown_count and m.current(accepted)
        )

    def stale_members(self, accepted: AccountKeyLookup) -> list[Member]:
        """Members whose member key is not the key ``accepted`` returns for them (a reset since
        they joined, or a key the client does not accept): no messages to or from them."""
        return [self._members[u] for u in sorted(self._members)
                if not self._members[u].current(accepted)]  # fmt: skip

    def current_member(self, user: str, accepted: AccountKeyLookup) -> Member | None:
        """``user``'s membership if it is not stale (a valid sender), else None."""
        member = self._members.get(user)
        return member if member is not None and member.current(accepted) else None

    def unshown_members(self) -> list[str]:
        return sorted(m.user for m in self._members.values() if m.joined_at >= self.shown_count)

    def mark_shown(self, sequence: int) -> None:
        """The client has shown every change up to ``sequence``: those joiners become recipients."""
        if sequence > self.version.sequence:
            raise InvalidArgument("cannot mark changes shown that were not applied")
        self.shown_count = max(self.shown_count, sequence + 1)

    def relation(self, other: RosterVersion) -> RosterRelation:
        """Compare another member's version with ours (this is how a fork becomes visible)."""
        if other.sequence > self.version.sequence:
            return RosterRelation.NEWER
        oldest = self._history[0].sequence
        if other.sequence < oldest:
            return RosterRelation.TOO_OLD
        entry = self._history[other.sequence - oldest]
        if entry.hash != other.head:
            return RosterRelation.FORKED
        if other.sequence == self.version.sequence:
            return RosterRelation.SAME
        return RosterRelation.OLDER

    def removed_since(self, after: int, through: int) -> bool:
        """Whether someone left or was removed at a sequence in ``(after, through]``.

        True when the window does not reach back to ``after`` (the answer that fails safe).
        """
        oldest = self._history[0].sequence
        if after + 1 < oldest:
            return True
        window = self._history[after + 1 - oldest : max(through + 1 - oldest, 0)]
        return any(entry.removal for entry in window)

    # -- applying events --------------------------------------------------------------------

    def apply(self, data: bytes) -> RosterChange:
        """Verify and apply the next event or raise RosterRejected, changing nothing."""
        event, members = self._verify(data)
        change = self._change(event, RosterVersion(event.sequence, event.hash()))
        self._commit(event, members, removal=change.removes_member)
        return change

    def preview(self, data: bytes) -> RosterChange:
        """What :meth:`apply` would report, without applying (RosterRejected if invalid)."""
        event, _ = self._verify(data)
        return self._change(event, RosterVersion(event.sequence, event.hash()))

    def _verify(self, data: bytes) -> tuple[RosterEvent, dict[str, Member]]:
        event = RosterEvent.parse(data)
        if event.room != self.room:
            raise RosterRejected(f"event for room {event.room!r} offered to room {self.room!r}")
        expected = self.version.sequence + 1
        if event.sequence < expected:
            relation = self.relation(RosterVersion(event.sequence, event.hash()))
            if relation is RosterRelation.FORKED:
                raise RosterRejected(
                    f"event {event.sequence} differs from the one already applied: the server "
                    "is showing different histories of this room"
                )
            raise RosterRejected(f"event {event.sequence} was already applied")
        if event.sequence > expected:
            raise RosterRejected(f"event {event.sequence} is out of order: expected {expected}")
        if event.prev_hash != self.version.head:
            raise RosterRejected(
                f"event {event.sequence} does not chain onto event {expected - 1} (broken chain "
                "or a fork)"
            )
        self._check_signature(event)
        return event, self._check_rules(event)

    def _check_signature(self, event: RosterEvent) -> None:
        """CREATE and JOIN: under their own key (the member key to be); the rest: under the
        actor's member key, whatever key the client holds for the user today."""
        key = event.actor_key
        if event.kind not in (EventKind.CREATE, EventKind.JOIN):
            member = self._members.get(event.actor)
            if member is None:
                raise RosterRejected(f"{event.actor} is not a member of the room")
            if member.account_key != key:
                raise RosterRejected(
                    f"event {event.sequence} names a key that is not the one {event.actor} "
                    "joined with"
                )
        if not event.signed_by(key):
            raise RosterRejected(f"event {event.sequence} is not signed by {event.actor}")

    def _check_rules(self, event: RosterEvent) -> dict[str, Member]:
        """The membership after ``event``, or RosterRejected naming the broken rule."""
        if self.closed:
            raise RosterRejected("the room was closed when its last member left")
        actor, subject, kind = event.actor, event.subject, event.kind
        if kind in _SELF_EVENTS and subject != actor:
            raise RosterRejected(f"a {kind.name} event must name its own actor as subject")
        members = dict(self._members)
        if kind is EventKind.CREATE:
            raise RosterRejected("CREATE is only valid as a room's first event")
        if kind is EventKind.JOIN:
            self._check_join(event)
            members[actor] = Member(actor, event.actor_key, admin=False, joined_at=event.sequence)
            return members
        member = members.get(actor)
        if member is None:
            raise RosterRejected(f"{actor} is not a member of the room")
        admins = {m.user for m in members.values() if m.admin}
        if kind is EventKind.LEAVE:
            if admins == {actor} and len(members) > 1:
                raise RosterRejected(f"{actor} is the last admin: make another admin first")
            del members[actor]
            return members
        if actor not in admins:
            raise RosterRejected(f"{actor} is not an admin and cannot {kind.name.lower()}")
        if kind is EventKind.SET_POLICY:
            assert event.policy is not None
            return members
        target = members.get(subject)
        if target is None:
            raise RosterRejected(f"{subject} is not a member of the room")
        if kind is EventKind.REMOVE:
            if subject == actor:
                raise RosterRejected("to leave a room, sign a LEAVE event")
            del members[subject]
        elif kind is EventKind.ADMIN_ADD:
            if target.admin:
                raise RosterRejected(f"{subject} is already an admin")
            members[subject] = replace(target, admin=True)
        else:  # ADMIN_REMOVE
            if not target.admin:
                raise RosterRejected(f"{subject} is not an admin")
            if admins == {subject}:
                raise RosterRejected(f"{subject} is the last admin of the room")
            members[subject] = replace(target, admin=False)
        return members

    def _check_join(self, event: RosterEvent) -> None:
        member = self._members.get(event.actor)
        if member is not None and member.account_key == event.actor_key:
            raise RosterRejected(f"{event.actor} is already a member")
        if not self.policy.protected:
            if event.proof is not None:
                raise RosterRejected("a join to an open room carries no password proof")
            return
        if event.proof is None or not join_proof_valid(
            self.policy,
            event.proof,
            self.room,
            event.sequence,
            event.prev_hash,
            event.actor,
            event.actor_key,
        ):
            raise RosterRejected(f"{event.actor}'s join has no valid room password proof")

    def _commit(self, event: RosterEvent, members: dict[str, Member], *, removal: bool) -> None:
        if event.kind is EventKind.SET_POLICY:
            assert event.policy is not None
            self.policy = event.policy
        self._members = members
        self.closed = not members
        self._history.append(_Entry(event.sequence, event.hash(), removal))
        del self._history[:-MAX_HISTORY]

    def _change(self, event: RosterEvent, version: RosterVersion) -> RosterChange:
        policy = event.policy if event.policy is not None else self.policy
        before = self._members.get(event.actor) if event.kind is EventKind.JOIN else None
        rekeyed = before is not None  # (the rules refused a JOIN under the same key)
        return RosterChange(
            event.kind, event.actor, event.subject, version, policy.protected,
            rekeyed=rekeyed, dropped_admin=rekeyed and before is not None and before.admin,
        )  # fmt: skip

    # -- persistence -----------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        writer = Writer().raw(STATE_MAGIC).u16(STATE_VERSION).text(self.room)
        writer.fixed(self.room_salt, ROOM_SALT_SIZE)
        self.policy.write(writer).boolean(self.closed).u64(self.shown_count)
        writer.u32(len(self._history))
        for entry in self._history:
            writer.u64(entry.sequence).fixed(entry.hash, HASH_SIZE).boolean(entry.removal)
        writer.u32(len(self._members))
        for user in sorted(self._members):
            member = self._members[user]
            writer.text(user).fixed(member.account_key, KEY_SIZE)
            writer.boolean(member.admin).u64(member.joined_at)
        return writer.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Roster:
        """Restore a saved roster (InvalidArgument if malformed or of an unknown version)."""
        try:
            reader = Reader(data)
            if reader.fixed(4) != STATE_MAGIC or reader.u16() != STATE_VERSION:
                raise InvalidArgument("not a roster state of a supported version")
            room, salt = reader.text(), reader.fixed(ROOM_SALT_SIZE)
            policy, closed, shown = RoomPolicy.read(reader), reader.boolean(), reader.u64()
            history = [
                _Entry(reader.u64(), reader.fixed(HASH_SIZE), reader.boolean())
                for _ in range(reader.u32())
            ]
            members = {}
            for _ in range(reader.u32()):
                user = reader.text()
                members[user] = Member(user, reader.fixed(KEY_SIZE), reader.boolean(), reader.u64())
            reader.finish()
        except ValueError as exc:
            raise InvalidArgument("malformed roster state") from exc
        if not history or (policy.argon2 is not None and not argon2_within_bounds(policy.argon2)):
            raise InvalidArgument("malformed roster state")
        return cls(room, salt, policy, members, history, shown, closed)
