"""Signing membership changes: the roster events a member's own client makes and sends.

Each function returns canonical event bytes signed with the member's account key (any
:class:`~securechat.crypto.roster_event.Signer`, e.g. the account key object of the identity
design or an ``Ed25519PrivateKey``) for the position right after the roster's current version.
Before returning, the event is checked against the same rules a receiving member applies
(:meth:`Roster.preview`), so a client never sends an event its peers would reject (a wrong room
password, a remove by a non-admin, ...): that raises ``RosterRejected`` here instead.

The server appends an event only if it still extends its head (compare-and-append); when
another event got there first, the client applies it and makes its event again.
"""

from __future__ import annotations

from securechat.crypto.randomness import SYSTEM_RANDOMNESS, SystemRandomness
from securechat.crypto.room_policy import (
    OPEN_POLICY,
    ROOM_SALT_SIZE,
    RoomPasswordKeys,
    RoomPolicy,
)
from securechat.crypto.roster import Roster
from securechat.crypto.roster_event import GENESIS_PREV_HASH, EventKind, RosterEvent, Signer
from securechat.errors import InvalidArgument


def new_room_salt(randomness: SystemRandomness = SYSTEM_RANDOMNESS) -> bytes:
    """A fresh room salt: derive the room password keys with it, then make the CREATE event."""
    return randomness.random_bytes(ROOM_SALT_SIZE)


def create_event(
    room: str,
    signer: Signer,
    user: str,
    account_key: bytes,
    *,
    room_salt: bytes,
    policy: RoomPolicy = OPEN_POLICY,
) -> bytes:
    """Event 0 of a new room; the creator becomes its first member and admin."""
    if len(room_salt) != ROOM_SALT_SIZE:
        raise InvalidArgument("a room salt is 16 bytes: use new_room_salt()")
    event = RosterEvent(
        EventKind.CREATE,
        room,
        0,
        GENESIS_PREV_HASH,
        user,
        account_key,
        user,
        room_salt=room_salt,
        policy=policy,
    ).sign(signer)
    data = event.to_bytes()
    Roster.from_events(room, [data])
    return data


def join_event(
    roster: Roster,
    signer: Signer,
    user: str,
    account_key: bytes,
    password_keys: RoomPasswordKeys | None = None,
) -> bytes:
    """A self-signed JOIN; a protected room needs the keys derived from its password with
    ``RoomPasswordKeys.derive(password, roster.room, roster.room_salt, roster.policy.argon2)``."""
    version = roster.version
    proof = None
    if roster.policy.protected:
        if password_keys is None:
            raise InvalidArgument(f"room {roster.room!r} is protected: give its password")
        proof = password_keys.prove_join(
            roster.room, version.sequence + 1, version.head, user, account_key
        )
    return _next(roster, signer, EventKind.JOIN, user, account_key, user, proof=proof)


def leave_event(roster: Roster, signer: Signer, user: str, account_key: bytes) -> bytes:
    return _next(roster, signer, EventKind.LEAVE, user, account_key, user)


def remove_event(
    roster: Roster, signer: Signer, admin: str, account_key: bytes, subject: str
) -> bytes:
    return _next(roster, signer, EventKind.REMOVE, admin, account_key, subject)


def admin_event(
    roster: Roster,
    signer: Signer,
    admin: str,
    account_key: bytes,
    subject: str,
    *,
    make_admin: bool,
) -> bytes:
    kind = EventKind.ADMIN_ADD if make_admin else EventKind.ADMIN_REMOVE
    return _next(roster, signer, kind, admin, account_key, subject)


def policy_event(
    roster: Roster, signer: Signer, admin: str, account_key: bytes, policy: RoomPolicy
) -> bytes:
    """Set a new room password (``keys.policy()``) or open the room (``OPEN_POLICY``)."""
    return _next(roster, signer, EventKind.SET_POLICY, admin, account_key, admin, policy=policy)


def _next(
    roster: Roster,
    signer: Signer,
    kind: EventKind,
    actor: str,
    account_key: bytes,
    subject: str,
    *,
    policy: RoomPolicy | None = None,
    proof: bytes | None = None,
) -> bytes:
    version = roster.version
    event = RosterEvent(
        kind,
        roster.room,
        version.sequence + 1,
        version.head,
        actor,
        account_key,
        subject,
        policy=policy,
        proof=proof,
    ).sign(signer)
    data = event.to_bytes()
    roster.preview(data)
    return data
