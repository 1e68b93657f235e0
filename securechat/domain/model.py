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
class LoginRecord:
    """An account's password parameters: the client's login salt and Argon2id costs."""

    salt: bytes
    iterations: int
    lanes: int
    memory_kib: int


@dataclass(frozen=True, slots=True)
class User:
    name: str
    password_hash: bytes  # bcrypt of the login secret (the authenticator, or a legacy password)
    role: Role
    created_at_ms: int
    login: LoginRecord | None = None  # None: a legacy password account

    @property
    def legacy_password(self) -> bool:
        return self.login is None


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
    # The client certificate the login came over (SHA-256 fingerprint, hex serial; empty when
    # unknown): with tls.bind_client_cert_to_user a token works only over that certificate, and
    # revoking the certificate ends the session.
    cert_fingerprint: str = ""
    cert_serial: str = ""


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
    certificate: bytes | None = None  # signed by the account key (opaque here)
    binding: bytes | None = None  # the device's signature naming its account key


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """A user's account key and newest signed device list (statements opaque to the store)."""

    user: str
    account_key: bytes
    list_version: int
    device_list: bytes


class LinkSlot(enum.StrEnum):
    """The three messages of a device link, each written once (see crypto/linking.py)."""

    OFFER = "offer"
    REQUEST = "request"
    GRANT = "grant"


@dataclass(frozen=True, slots=True)
class Certification:
    """A device certified by a device change: its id and certificate bytes."""

    device_id: int
    certificate: bytes


@dataclass(frozen=True, slots=True)
class Removal:
    """A device removed by a device change: its id, identity digest and removal bytes."""

    device_id: int
    identity_digest: bytes
    statement: bytes


@dataclass(frozen=True, slots=True)
class Room:
    name: str
    password_hash: bytes | None
    created_by: str
    created_at_ms: int
    # A protected room is listed to non-members only when its creator asked for it.
    listed: bool = False
    # The room has a signed roster (issue 15): sends are sender-key sends, joins are signed.
    signed: bool = False

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
class Invite:
    """A one-use registration code; only its SHA-256 is stored."""

    code_hash: bytes
    created_by: str
    created_at_ms: int
    expires_at_ms: int


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
    binding: bytes | None = None  # kept when given (an account device's binding)


@dataclass(frozen=True, slots=True)
class PendingSend:
    """One accepted-to-be send, as handed to Store.commit_sends (the group commit)."""

    message_id: str
    sender: DeviceRef
    sent_at_ms: int
    items: tuple[OutgoingCiphertext, ...]
    # The sender's id for the send; with one, a retry is answered with the first result.
    client_message_id: str = ""
    # A room message stored once (sender keys): ``items`` then carry only key distributions.
    room_post: RoomPost | None = None


class RoomPost(NamedTuple):
    """The one sender-key ciphertext of a room send, stored once in the room's log."""

    room: str
    ciphertext: bytes


class RoomEntry(NamedTuple):
    """One message of a room's stored-once log: every member device gets it as a position."""

    room: str
    room_seq: int
    message_id: str
    sender: DeviceRef
    ciphertext: bytes
    sent_at_ms: int


@dataclass(frozen=True, slots=True)
class RosterAppend:
    """One verified roster event to store, with the membership change it makes, in one
    transaction (Store.append_roster_event). ``state`` is the server's verified roster after
    the event (crypto.roster.Roster.to_bytes), so the next event is checked without replaying
    the chain."""

    room: str
    sequence: int
    event: bytes
    event_hash: bytes
    state: bytes
    now_ms: int
    add: str = ""  # a user who joins
    remove: str = ""  # a member who leaves or is removed
    only: str = ""  # the CREATE of a room that had no roster: the members become this user
    set_password: bool = False  # replace the password hash with ``password_hash``
    password_hash: bytes | None = None


@dataclass(frozen=True, slots=True)
class RosterHead:
    """A room's roster as the server holds it: its length (the next event's sequence), the
    last event's hash and the server's verified roster state (empty: no events yet)."""

    length: int
    head: bytes
    state: bytes
