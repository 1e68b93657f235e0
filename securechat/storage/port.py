"""The Store port: every persistent operation the server needs, named by intention.

No SQL lives outside the adapters. All methods are coroutines; adapters must be safe to call
concurrently from one event loop. Errors are securechat.errors types (AlreadyExists, NotFound,
InvalidArgument), never driver exceptions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from securechat.domain.mailbox import Committed, MailboxLimits, Usage
from securechat.domain.model import (
    AccountRecord,
    Bundle,
    Certification,
    ClaimedBundle,
    Device,
    DeviceRef,
    Invite,
    KemPreKeyRecord,
    LinkSlot,
    LoginRecord,
    MailboxEntry,
    OneTimePreKeyRecord,
    OutgoingCiphertext,
    PendingSend,
    PreKeyCounts,
    Removal,
    Role,
    Room,
    RoomEntry,
    RoomSummary,
    RosterAppend,
    RosterHead,
    Session,
    SignedPreKeyRecord,
    StoreStats,
    User,
)


class Store(Protocol):
    # ---- lifecycle ------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect and apply pending schema migrations (recording the schema version)."""

    async def close(self) -> None: ...

    async def schema_version(self) -> int: ...

    # ---- accounts -------------------------------------------------------------------------
    async def create_user(
        self,
        name: str,
        password_hash: bytes,
        role: Role,
        now_ms: int,
        login: LoginRecord | None = None,
    ) -> User:
        """Insert a user (``login`` None: a legacy password account); AlreadyExists when the
        name is taken (nothing changes)."""

    async def get_user(self, name: str) -> User | None: ...

    async def set_user_password_and_role(self, name: str, password_hash: bytes, role: Role) -> None:
        """Used for the bootstrap admin: a password, so the account becomes a legacy password
        account. NotFound when the user does not exist."""

    async def set_login(self, name: str, password_hash: bytes, login: LoginRecord) -> bool:
        """Upgrade a legacy password account: the new hash and password parameters, only while
        it is still legacy (False, nothing changed, otherwise). NotFound for an unknown user."""

    # ---- sessions -------------------------------------------------------------------------
    async def create_session(self, session: Session) -> None: ...

    async def get_session(self, token_hash: bytes) -> Session | None:
        """The session for a token hash, or None (expired ones are returned; callers check)."""

    async def revoke_session(self, token_hash: bytes) -> bool: ...

    async def revoke_user_sessions(self, user: str) -> int: ...

    async def purge_expired_sessions(self, now_ms: int) -> int: ...

    async def revoke_certificate_sessions(self, fingerprint: str, serial_hex: str) -> list[bytes]:
        """Delete every session logged in over the certificate with this fingerprint or this
        serial (an empty value matches nothing); returns their token hashes."""

    # ---- registration invites -------------------------------------------------------------
    async def create_invite(self, invite: Invite) -> None:
        """Store a new invite; AlreadyExists when its hash is already stored."""

    async def redeem_invite(self, code_hash: bytes, user: str, now_ms: int) -> bool:
        """Atomically mark the invite used by ``user``: False (nothing changes) when it is
        unknown, already used or expired at ``now_ms``."""

    async def release_invite(self, code_hash: bytes) -> None:
        """Make a redeemed invite usable again (the registration it was for failed)."""

    # ---- devices --------------------------------------------------------------------------
    async def add_device(self, user: str, now_ms: int) -> int:
        """Register a new device and return its id (1, 2, ... per user)."""

    async def get_device(self, user: str, device_id: int) -> Device | None: ...

    async def list_devices(self, user: str) -> list[Device]: ...

    async def touch_devices(self, seen: Sequence[tuple[DeviceRef, int]]) -> None:
        """Record, in one transaction, when each device was last seen (``Device.last_seen_ms``).
        A time never moves back; unknown devices are skipped."""

    async def remove_device(self, device: DeviceRef) -> bool:
        """Delete a device with its keys, mailbox and sessions. False when it did not exist."""

    # ---- accounts own devices --------------------------------------------------------------
    async def get_account(self, user: str) -> AccountRecord | None:
        """The account key and newest device list of ``user`` (None: no account key yet)."""

    async def get_accounts(self, users: Sequence[str]) -> list[AccountRecord]:
        """The accounts of those ``users`` that have one, in name order."""

    async def create_account(
        self,
        account: AccountRecord,
        device: DeviceRef,
        certificate: bytes,
        binding: bytes,
        now_ms: int,
        *,
        reset: bool = False,
    ) -> list[DeviceRef]:
        """Set the account key with ``device`` as its one certified device, in one transaction.

        AlreadyExists when the user has an account and ``reset`` is False (nothing changes).
        With ``reset``, every other device of the user is removed (keys, mailbox, sessions) and
        earlier removals are forgotten; returns the devices removed. NotFound for an unknown
        device."""

    async def change_devices(
        self,
        user: str,
        expected_version: int,
        account: AccountRecord,
        certified: Certification | None,
        removed: Removal | None,
        now_ms: int,
    ) -> bool:
        """Store a new device list when the stored one is still ``expected_version`` (False,
        nothing changed, otherwise), with the device it certifies (its certificate set; NotFound
        if it does not exist) or removes (the removal appended; the device deleted with its keys,
        mailbox and sessions), in one transaction."""

    async def list_removals(self, user: str) -> list[bytes]:
        """Every removal statement of ``user``, oldest first (append-only)."""

    async def list_room_device_records(self, room: str) -> list[Device]:
        """Every device (full record) of every member of ``room``, by (user, device_id)."""

    # ---- the link relay ------------------------------------------------------------------
    async def put_link_message(
        self, user: str, relay_id: str, slot: LinkSlot, data: bytes, now_ms: int, expires_at_ms: int
    ) -> bool:
        """Write one slot once: False (nothing changed) when it holds an unexpired message."""

    async def get_link_message(
        self, user: str, relay_id: str, slot: LinkSlot, now_ms: int
    ) -> bytes | None:
        """The slot's message, or None when empty or expired."""

    async def purge_link_messages(self, now_ms: int) -> int:
        """Delete expired relay messages; the number deleted."""

    # ---- key directory --------------------------------------------------------------------
    async def publish_bundle(self, device: DeviceRef, bundle: Bundle) -> PreKeyCounts:
        """Replace the device's identity key, signed prekey and prekeys (and its binding, when
        the bundle carries one). InvalidArgument on duplicate key ids."""

    async def add_prekeys(
        self,
        device: DeviceRef,
        one_time: Sequence[OneTimePreKeyRecord],
        kem: Sequence[KemPreKeyRecord],
        signed_prekey: SignedPreKeyRecord | None,
    ) -> PreKeyCounts: ...

    async def claim_bundle(self, device: DeviceRef) -> ClaimedBundle | None:
        """Atomically take one one-time prekey of each kind (falling back to the last-resort
        KEM key); None when the device has no bundle."""

    async def peek_bundle(self, device: DeviceRef) -> ClaimedBundle | None:
        """The bundle without a one-time prekey and with the last-resort KEM key, taking
        nothing; None when the device has no bundle or no last-resort key."""

    async def count_prekeys(self, device: DeviceRef) -> PreKeyCounts: ...

    # ---- rooms ----------------------------------------------------------------------------
    async def create_room(
        self,
        name: str,
        password_hash: bytes | None,
        creator: str,
        now_ms: int,
        listed: bool = False,
        roster: RosterAppend | None = None,
    ) -> Room:
        """Create a room with its creator as member (and, with ``roster``, its signed CREATE
        event as the roster's event 0). AlreadyExists when taken."""

    async def get_room(self, name: str) -> Room | None: ...

    async def list_rooms(self, for_user: str) -> list[RoomSummary]:
        """Every room (the operator's view), ``member`` as seen by ``for_user``."""

    async def list_visible_rooms(self, user: str, after: str, limit: int) -> list[RoomSummary]:
        """The rooms ``user`` may see (member of it, open, or protected and listed), by name,
        with names after ``after``, at most ``limit`` (1-1000; else InvalidArgument)."""

    async def room_summary(self, name: str, user: str) -> RoomSummary | None: ...

    async def count_rooms_created_by(self, user: str) -> int: ...

    async def add_member(self, room: str, user: str, now_ms: int) -> bool:
        """True when added, False when already a member."""

    async def remove_member(self, room: str, user: str) -> bool:
        """False when not a member. The member's room positions are forgotten with them."""

    async def is_member(self, room: str, user: str) -> bool: ...

    async def room_members(self, room: str) -> list[str]: ...

    async def room_devices(self, room: str) -> list[DeviceRef]:
        """Every device of every member, ordered by (user, device_id)."""

    async def rooms_of(self, user: str) -> list[str]: ...

    async def record_contact(self, a: str, b: str, now_ms: int) -> None:
        """Remember that a and b have a private conversation (for presence)."""

    async def private_contacts_of(self, user: str) -> set[str]:
        """Users with whom ``user`` has a private conversation."""

    async def contacts_of(self, user: str) -> set[str]:
        """Users sharing a room or a private conversation with user (user excluded)."""

    # ---- signed rosters and room logs ------------------------------------------------------
    async def roster_head(self, room: str) -> RosterHead | None:
        """The room's roster length, head hash and verified state (None: no such room)."""

    async def append_roster_event(self, change: RosterAppend) -> bool:
        """Store the event at ``change.sequence`` and its membership change in one
        transaction, only while the roster's length is still ``change.sequence`` (False,
        nothing changed, otherwise). A user who joins starts at the room log's head. NotFound
        for an unknown room or joining user (nothing changes)."""

    async def roster_events(self, room: str, from_sequence: int, limit: int) -> list[bytes]:
        """Up to ``limit`` (1-1024; else InvalidArgument) events from ``from_sequence`` on."""

    async def last_room_seq(self, room: str) -> int:
        """The room log's highest position (0: empty); NotFound for an unknown room."""

    async def fetch_room(
        self, room: str, after_room_seq: int, limit: int, max_bytes: int = 0
    ) -> list[RoomEntry]:
        """Up to ``limit`` room messages after ``after_room_seq`` in order; with ``max_bytes``,
        only as many as their ciphertexts add up to at most that (always at least one)."""

    async def room_message_seq(self, room: str, message_id: str, sent_at_ms: int) -> int:
        """The position of a stored room message (0: not stored, or expired)."""

    async def room_starts(self, device: DeviceRef) -> dict[str, int]:
        """For every room of the device's user: the position its delivery resumes after (the
        highest of the device's acked position, the log's head when the user joined, and the
        last message sent before the device was added)."""

    async def ack_rooms(self, acks: Sequence[tuple[DeviceRef, str, int]]) -> None:
        """Record, in one transaction, that each device processed its room up to a position
        (a position never moves back). Callers validated the positions."""

    async def trim_room_logs(self, batch: int, budget: int) -> int:
        """Delete room-log rows that no device of a current member can still be delivered
        (each device is past them: acked, joined or linked later, or sent them itself); only a
        prefix of each log, never a row some current device may still need (room_trim.py).
        At most ``batch`` rows per transaction and ``budget`` per call, rooms in name order
        from where the last call stopped; the number deleted. InvalidArgument when ``batch``
        or ``budget`` is below 1."""

    # ---- mailboxes ------------------------------------------------------------------------
    async def enqueue(
        self,
        message_id: str,
        sender: DeviceRef,
        sent_at_ms: int,
        items: Sequence[OutgoingCiphertext],
    ) -> list[MailboxEntry]:
        """Durably store each ciphertext in its recipient's mailbox, in one transaction,
        assigning the next per-device sequence number. Returns the entries in item order."""

    async def enqueue_batch(self, sends: Sequence[PendingSend]) -> list[list[MailboxEntry]]:
        """``commit_sends`` without quotas or deduplication: the entries of each send."""

    async def commit_sends(
        self, sends: Sequence[PendingSend], limits: MailboxLimits, dedup_since_ms: int
    ) -> list[Committed]:
        """Several sends in ONE transaction (the group commit: the server coalesces concurrent
        sends into one), one Committed per send in order, decided by domain.mailbox.plan:

        - a send whose (sender device, client_message_id) was recorded at or after
          ``dedup_since_ms`` stores nothing and is answered with the first copy's id and time;
        - recipient devices over a quota of ``limits`` are skipped (``full``); a send none of
          whose other users' devices can take it stores nothing (``refused``);
        - everything else is stored as ``enqueue`` does, with the devices' usage and (for a
          send with a client_message_id) the record that answers its retries, all in the same
          transaction. NotFound (nothing stored) when a recipient device does not exist."""

    async def fetch(
        self, device: DeviceRef, after_seq: int, limit: int, max_bytes: int = 0
    ) -> list[MailboxEntry]:
        """Up to ``limit`` entries after ``after_seq`` in order; with ``max_bytes``, only as many
        as their ciphertexts add up to at most that (always at least one)."""

    async def ack(self, device: DeviceRef, up_to_seq: int) -> int:
        """Delete entries up to and including up_to_seq; InvalidArgument when up_to_seq is
        greater than the last sequence ever assigned to the device. Returns rows deleted. Durable
        when it returns; a big ack is deleted in several transactions (at most
        ACK_ROWS_PER_TRANSACTION entries each)."""

    async def ack_many(
        self, acks: Sequence[tuple[DeviceRef, int]], limit: int = 0
    ) -> list[tuple[DeviceRef, int]]:
        """Delete, in one transaction, each device's entries up to its sequence, at most
        ``limit`` entries in all (0: no limit; each device's oldest first, the devices in
        order); returns the acks not done, whole or in part, for a later call. No check against
        the last sequence (callers validated it); unknown devices are skipped."""

    async def last_seq(self, device: DeviceRef) -> int:
        """The highest sequence ever assigned to the device (0 if none)."""

    async def pending_count(self, device: DeviceRef, after_seq: int) -> int: ...

    async def mailbox_usage(self, device: DeviceRef) -> Usage:
        """The device's undelivered entries and their ciphertext bytes (kept, not counted)."""

    async def expire_messages(self, before_ms: int) -> int:
        """Delete mailbox entries and room messages sent before ``before_ms``; the number."""

    async def prune_sent(self, before_ms: int, keep_per_device: int) -> int:
        """Forget the records of sends stored before ``before_ms``, and all but each sending
        device's ``keep_per_device`` most recent; the number forgotten."""

    # ---- revocations (shared across nodes) ------------------------------------------------
    async def add_revocation(
        self, serial_hex: str, fingerprint: str, subject: str, now_ms: int
    ) -> None: ...

    async def list_revocations(self) -> list[tuple[str, str]]:
        """(serial_hex, fingerprint) pairs."""

    async def stats(self) -> StoreStats: ...
