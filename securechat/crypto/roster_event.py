"""One signed roster event (create, join, leave, remove, admin change, policy) and its bytes.

Layout (docs/e2e-wire-rooms.md §1)::

    body      = u8 format (1) | u8 kind | str room | u64 sequence | prev_hash(32)
                | str actor | actor_key(32) | str subject | kind-specific part
    event     = body || Ed25519 signature by the actor's account key over
                label(ROSTER_EVENT_SIGNATURE) || body
    hash      = SHA-256(label(ROSTER_EVENT_HASH) || u32 len(event) || event)

Parsing accepts exactly one encoding per event and raises ``RosterRejected`` for anything else;
the membership rules live in :mod:`securechat.crypto.roster`, which reports each applied event
as a :class:`RosterChange` (the typed form the client shows).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Protocol

from securechat.crypto import labels
from securechat.crypto.encoding import Reader, Writer
from securechat.crypto.identity import verify_signature
from securechat.crypto.room_policy import (
    HASH_SIZE,
    KEY_SIZE,
    ROOM_SALT_SIZE,
    SIGNATURE_SIZE,
    RoomPolicy,
    check_name,
)
from securechat.errors import BadSignature, InvalidArgument, RosterRejected

EVENT_FORMAT = 1
MAX_EVENT_SIZE = 1024
GENESIS_PREV_HASH = b"\x00" * HASH_SIZE
VERSION_SIZE = 8 + HASH_SIZE


class EventKind(IntEnum):
    CREATE = 1
    JOIN = 2
    LEAVE = 3
    REMOVE = 4
    ADMIN_ADD = 5
    ADMIN_REMOVE = 6
    SET_POLICY = 7


class Signer(Protocol):
    """Anything that signs with an Ed25519 account key (``Ed25519PrivateKey`` qualifies)."""

    def sign(self, data: bytes, /) -> bytes: ...


@dataclass(frozen=True)
class RosterVersion:
    """``(sequence, head)``: the last applied event's sequence number and hash."""

    sequence: int
    head: bytes

    def write(self, writer: Writer) -> Writer:
        return writer.u64(self.sequence).fixed(self.head, HASH_SIZE)

    @classmethod
    def read(cls, reader: Reader) -> RosterVersion:
        return cls(reader.u64(), reader.fixed(HASH_SIZE))

    def to_bytes(self) -> bytes:
        return self.write(Writer()).to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> RosterVersion:
        """Parse the 40-byte encoding (InvalidArgument if malformed)."""
        reader = Reader(data)
        version = cls.read(reader)
        reader.finish()
        return version

    def __str__(self) -> str:
        return f"{self.sequence}:{self.head[:6].hex()}"


@dataclass(frozen=True)
class RosterEvent:
    """A parsed (not yet verified) event. ``signature`` is empty only while building one."""

    kind: EventKind
    room: str
    sequence: int
    prev_hash: bytes
    actor: str
    actor_key: bytes
    subject: str
    room_salt: bytes | None = None  # CREATE only
    policy: RoomPolicy | None = None  # CREATE and SET_POLICY
    proof: bytes | None = None  # JOIN to a protected room
    signature: bytes = b""

    def body(self) -> bytes:
        writer = Writer().u8(EVENT_FORMAT).u8(self.kind).text(self.room).u64(self.sequence)
        writer.fixed(self.prev_hash, HASH_SIZE).text(self.actor).fixed(self.actor_key, KEY_SIZE)
        writer.text(self.subject)
        if self.kind is EventKind.CREATE:
            writer.fixed(self.room_salt or b"", ROOM_SALT_SIZE)
        if self.kind in (EventKind.CREATE, EventKind.SET_POLICY):
            if self.policy is None:
                raise InvalidArgument("this event kind needs a policy")
            self.policy.write(writer)
        if self.kind is EventKind.JOIN:
            writer.boolean(self.proof is not None)
            if self.proof is not None:
                writer.fixed(self.proof, SIGNATURE_SIZE)
        return writer.to_bytes()

    def signed_message(self) -> bytes:
        return Writer(labels.ROSTER_EVENT_SIGNATURE).raw(self.body()).to_bytes()

    def to_bytes(self) -> bytes:
        if len(self.signature) != SIGNATURE_SIZE:
            raise InvalidArgument("an event must be signed before it is encoded")
        return self.body() + self.signature

    def hash(self) -> bytes:
        return event_hash(self.to_bytes())

    def signed_by(self, account_key: bytes) -> bool:
        try:
            verify_signature(account_key, self.signature, self.signed_message())
        except BadSignature:
            return False
        return True

    def sign(self, signer: Signer) -> RosterEvent:
        """The same event, signed by ``signer`` (the actor's account key)."""
        for name in (self.room, self.actor, self.subject):
            check_name(name, "a name in a room event")
        return replace(self, signature=signer.sign(self.signed_message()))

    @classmethod
    def parse(cls, data: bytes) -> RosterEvent:
        """Parse canonical event bytes or raise RosterRejected (the signature is not checked)."""
        if len(data) > MAX_EVENT_SIZE:
            raise RosterRejected(f"a room event is at most {MAX_EVENT_SIZE} bytes")
        try:
            return cls._read(Reader(data))
        except (InvalidArgument, ValueError) as exc:
            raise RosterRejected(f"malformed room event: {exc}") from exc

    @classmethod
    def _read(cls, reader: Reader) -> RosterEvent:
        if reader.u8() != EVENT_FORMAT:
            raise InvalidArgument("unknown event format")
        kind = EventKind(reader.u8())
        room = check_name(reader.text(), "room name")
        sequence, prev_hash = reader.u64(), reader.fixed(HASH_SIZE)
        actor = check_name(reader.text(), "actor")
        actor_key = reader.fixed(KEY_SIZE)
        subject = check_name(reader.text(), "subject")
        room_salt = reader.fixed(ROOM_SALT_SIZE) if kind is EventKind.CREATE else None
        policy = None
        if kind in (EventKind.CREATE, EventKind.SET_POLICY):
            policy = RoomPolicy.read(reader)
        proof = None
        if kind is EventKind.JOIN and reader.boolean():
            proof = reader.fixed(SIGNATURE_SIZE)
        signature = reader.fixed(SIGNATURE_SIZE)
        reader.finish()
        return cls(
            kind, room, sequence, prev_hash, actor, actor_key, subject,
            room_salt, policy, proof, signature,
        )  # fmt: skip


def event_hash(event: bytes) -> bytes:
    """The hash chaining events: SHA-256 over the labelled, length-prefixed event bytes."""
    return labels.sha256(Writer(labels.ROSTER_EVENT_HASH).var_bytes(event).to_bytes())


_REMOVALS = (EventKind.LEAVE, EventKind.REMOVE)


@dataclass(frozen=True)
class RosterChange:
    """One applied event, in the typed form the client shows."""

    kind: EventKind
    actor: str
    subject: str
    version: RosterVersion
    protected: bool  # the room's policy after the event
    rekeyed: bool = False  # a JOIN that replaced the actor's membership under another key
    dropped_admin: bool = False  # ... whose replaced membership was an admin

    @property
    def removes_member(self) -> bool:
        """The subject's (old) membership ended: its chains are forgotten, senders rotate."""
        return self.kind in _REMOVALS or self.rekeyed

    def describe(self) -> str:
        actor, subject = self.actor, self.subject
        match self.kind:
            case EventKind.CREATE:
                suffix = " (protected by a password)" if self.protected else ""
                return f"{actor} created the room{suffix}"
            case EventKind.JOIN:
                if not self.rekeyed:
                    return f"{actor} joined"
                demoted = " and is no longer an admin" if self.dropped_admin else ""
                return f"{actor} rejoined with a new account key{demoted}"
            case EventKind.LEAVE:
                return f"{actor} left"
            case EventKind.REMOVE:
                return f"{actor} removed {subject}"
            case EventKind.ADMIN_ADD:
                return f"{actor} made {subject} an admin"
            case EventKind.ADMIN_REMOVE:
                if subject == actor:
                    return f"{actor} is no longer an admin"
                return f"{actor} removed {subject} as an admin"
            case EventKind.SET_POLICY:
                if self.protected:
                    return f"{actor} set a new room password"
                return f"{actor} opened the room (no password)"
