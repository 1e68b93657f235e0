"""Plain value types shared by the domain, the Store and the Bus ports."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NamedTuple


class Role(enum.StrEnum):
    USER = "user"
    ADMIN = "admin"


class DeviceRef(NamedTuple):
    """One device of one user: every mailbox and ciphertext belongs to one.

    The values created per delivery (DeviceRef, Conversation, OutgoingCiphertext, MailboxEntry)
    are named tuples: on the fan-out path they are built tens of thousands of times a second and
    tuples are several times cheaper to make, hash and compare than frozen dataclasses."""

    user: str
    device_id: int


@dataclass(frozen=True, slots=True)
class User:
    name: str
    password_hash: bytes
    role: Role
    created_at_ms: int


@dataclass(frozen=True, slots=True)
class Session:
    """A login. Only the SHA-256 of the token is ever stored."""

    token_hash: bytes
    user: str
    device_id: int
    role: Role
    expires_at_ms: int
    created_at_ms: int
    cert_subject: str


@dataclass(frozen=True, slots=True)
class PeerCertificate:
    """The client certificate a call arrived with (revocation checks, the operator's view)."""

    subject: str
    common_name: str | None
    fingerprint: str  # SHA-256 of the DER, colon-separated upper-case hex
    serial_hex: str


NO_CERTIFICATE = PeerCertificate("", None, "", "")


@dataclass(frozen=True, slots=True)
class Device:
    user: str
    device_id: int
    created_at_ms: int
    last_seen_ms: int
    identity_key: bytes | None  # None until a key bundle is published


@dataclass(frozen=True, slots=True)
class Room:
    name: str
    password_hash: bytes | None
    created_by: str
    created_at_ms: int

    @property
    def protected(self) -> bool:
        return self.password_hash is not None


@dataclass(frozen=True, slots=True)
class RoomSummary:
    name: str
    member_count: int
    protected: bool
    member: bool
    created_at_ms: int


class ConversationKind(enum.StrEnum):
    ROOM = "room"
    DIRECT = "direct"


class Conversation(NamedTuple):
    """A room (``name`` = room name) or a private conversation (``name`` = the other user)."""

    kind: ConversationKind
    name: str


class MailboxEntry(NamedTuple):
    """One ciphertext waiting in one device's mailbox."""

    recipient: DeviceRef
    seq: int
    message_id: str
    sender: DeviceRef
    conversation: Conversation  # as seen by the recipient
    ciphertext: bytes
    sent_at_ms: int


class OutgoingCiphertext(NamedTuple):
    recipient: DeviceRef
    ciphertext: bytes
    conversation: Conversation  # as seen by the recipient


@dataclass(frozen=True, slots=True)
class SignedPreKeyRecord:
    key_id: int
    public_key: bytes
    created_at: int
    signature: bytes


@dataclass(frozen=True, slots=True)
class OneTimePreKeyRecord:
    key_id: int
    public_key: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class KemPreKeyRecord:
    key_id: int
    public_key: bytes
    signature: bytes
    last_resort: bool


@dataclass(frozen=True, slots=True)
class ClaimedBundle:
    device: DeviceRef
    identity_key: bytes
    signed_prekey: SignedPreKeyRecord
    one_time_prekey: OneTimePreKeyRecord | None
    kem_prekey: KemPreKeyRecord


@dataclass(frozen=True, slots=True)
class PreKeyCounts:
    one_time: int
    kem_one_time: int


@dataclass(frozen=True, slots=True)
class StoreStats:
    users: int
    rooms: int
    pending_messages: int


@dataclass(slots=True)
class Bundle:
    """What a device publishes."""

    identity_key: bytes
    signed_prekey: SignedPreKeyRecord
    one_time_prekeys: list[OneTimePreKeyRecord] = field(default_factory=list)
    kem_prekeys: list[KemPreKeyRecord] = field(default_factory=list)
    last_resort: KemPreKeyRecord | None = None


@dataclass(frozen=True, slots=True)
class PendingSend:
    """One accepted-to-be send, as handed to Store.commit_sends (the group commit)."""

    message_id: str
    sender: DeviceRef
    sent_at_ms: int
    items: tuple[OutgoingCiphertext, ...]
    # The sender's id for the send; with one, a retry is answered with the first result.
    client_message_id: str = ""
