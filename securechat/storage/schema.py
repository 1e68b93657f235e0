"""The relational schema shared by the SQLite and PostgreSQL adapters (SQLAlchemy Core tables).

This module describes the *current* shape of the database. Databases are created and upgraded by
the numbered steps in ``migrations.py``, never by ``metadata.create_all`` at run time (step 1
creates the frozen tables of ``schema_v1.py``).

Naming: users are referenced by name (names are immutable and already validated by the domain);
devices by ``(user_name, device_id)``. Timestamps are integer milliseconds since the epoch.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    false,
)

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_at_ms", BigInteger, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("name", String, primary_key=True),
    Column("password_hash", LargeBinary, nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    # Counter behind add_device: ids are 1, 2, ... per user and never reused.
    Column("last_device_id", Integer, nullable=False, server_default="0"),
    # The client's login salt and Argon2id costs (version 2); NULL: a legacy password account.
    Column("login_salt", LargeBinary, nullable=True),
    Column("login_iterations", Integer, nullable=True),
    Column("login_lanes", Integer, nullable=True),
    Column("login_memory_kib", Integer, nullable=True),
)

sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", LargeBinary, primary_key=True),
    Column("user_name", String, ForeignKey("users.name"), nullable=False),
    Column("device_id", Integer, nullable=False),
    Column("role", String(16), nullable=False),
    Column("expires_at_ms", BigInteger, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("cert_subject", String, nullable=False),
    # Version 4: the certificate the login came over (binding, revocation ends the session).
    Column("cert_fingerprint", String, nullable=False, server_default=""),
    Column("cert_serial", String, nullable=False, server_default=""),
    Index("ix_sessions_user", "user_name"),
    Index("ix_sessions_expiry", "expires_at_ms"),
)

devices = Table(
    "devices",
    metadata,
    Column("user_name", String, ForeignKey("users.name"), nullable=False),
    Column("device_id", Integer, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("last_seen_ms", BigInteger, nullable=False),
    Column("identity_key", LargeBinary, nullable=True),
    # Highest mailbox sequence ever assigned to this device; bumped in the enqueue transaction.
    Column("last_seq", BigInteger, nullable=False, server_default="0"),
    # Version 2: the account key's certificate of the device and the device's binding.
    Column("certificate", LargeBinary, nullable=True),
    Column("binding", LargeBinary, nullable=True),
    PrimaryKeyConstraint("user_name", "device_id"),
)


def _device_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["user_name", "device_id"], ["devices.user_name", "devices.device_id"]
    )


signed_prekeys = Table(
    "signed_prekeys",
    metadata,
    Column("user_name", String, nullable=False),
    Column("device_id", Integer, nullable=False),
    Column("key_id", BigInteger, nullable=False),
    Column("public_key", LargeBinary, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("signature", LargeBinary, nullable=False),
    PrimaryKeyConstraint("user_name", "device_id"),  # one current signed prekey per device
    _device_fk(),
)

one_time_prekeys = Table(
    "one_time_prekeys",
    metadata,
    Column("user_name", String, nullable=False),
    Column("device_id", Integer, nullable=False),
    Column("key_id", BigInteger, nullable=False),
    Column("public_key", LargeBinary, nullable=False),
    Column("signature", LargeBinary, nullable=False),
    PrimaryKeyConstraint("user_name", "device_id", "key_id"),
    _device_fk(),
)

kem_prekeys = Table(
    "kem_prekeys",
    metadata,
    Column("user_name", String, nullable=False),
    Column("device_id", Integer, nullable=False),
    Column("key_id", BigInteger, nullable=False),
    Column("public_key", LargeBinary, nullable=False),
    Column("signature", LargeBinary, nullable=False),
    Column("last_resort", Boolean, nullable=False),
    PrimaryKeyConstraint("user_name", "device_id", "key_id"),
    _device_fk(),
)

rooms = Table(
    "rooms",
    metadata,
    Column("name", String, primary_key=True),
    Column("password_hash", LargeBinary, nullable=True),
    Column("created_by", String, ForeignKey("users.name"), nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    # Version 4: a protected room shown to non-members in ListRooms.
    Column("listed", Boolean, nullable=False, server_default=false()),
    # Version 5: the signed roster's length (the next event's sequence; 0: a room from before
    # rosters), its head hash and the server's verified roster state (crypto.roster).
    Column("roster_length", BigInteger, nullable=False, server_default="0"),
    Column("roster_head", LargeBinary, nullable=True),
    Column("roster_state", LargeBinary, nullable=True),
    # The highest position of the room's stored-once message log; bumped in the group commit.
    Column("last_room_seq", BigInteger, nullable=False, server_default="0"),
)

room_members = Table(
    "room_members",
    metadata,
    Column("room_name", String, ForeignKey("rooms.name"), nullable=False),
    Column("user_name", String, ForeignKey("users.name"), nullable=False),
    Column("joined_at_ms", BigInteger, nullable=False),
    # Version 5: the room's last_room_seq when the user joined: their devices start after it.
    Column("joined_room_seq", BigInteger, nullable=False, server_default="0"),
    PrimaryKeyConstraint("room_name", "user_name"),
    Index("ix_room_members_user", "user_name"),
)

# A private conversation between two users, stored once with user_a < user_b.
contacts = Table(
    "contacts",
    metadata,
    Column("user_a", String, ForeignKey("users.name"), nullable=False),
    Column("user_b", String, ForeignKey("users.name"), nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("user_a", "user_b"),
    Index("ix_contacts_user_b", "user_b"),
)

mailbox = Table(
    "mailbox",
    metadata,
    Column("user_name", String, nullable=False),
    Column("device_id", Integer, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("message_id", String, nullable=False),
    Column("sender_user", String, nullable=False),
    Column("sender_device", Integer, nullable=False),
    Column("conversation_kind", String(16), nullable=False),
    Column("conversation_name", String, nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("sent_at_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("user_name", "device_id", "seq"),
    _device_fk(),
    Index("ix_mailbox_sent_at", "sent_at_ms"),
)

revocations = Table(
    "revocations",
    metadata,
    Column("serial_hex", String, primary_key=True),
    Column("fingerprint", String, nullable=False),
    Column("subject", String, nullable=False),
    Column("revoked_at_ms", BigInteger, nullable=False),
)

# ---- version 2: accounts own their devices ---------------------------------------------------

# The account key (set once, replaced only by a reset) and the newest signed device list.
accounts = Table(
    "accounts",
    metadata,
    Column("user_name", String, ForeignKey("users.name"), primary_key=True),
    Column("account_key", LargeBinary, nullable=False),
    Column("list_version", BigInteger, nullable=False),
    Column("device_list", LargeBinary, nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
)

# Every signed device removal, append-only (a reset of the account key clears them).
device_removals = Table(
    "device_removals",
    metadata,
    Column("user_name", String, ForeignKey("users.name"), nullable=False),
    Column("device_id", Integer, nullable=False),
    Column("identity_digest", LargeBinary, nullable=False),
    Column("removal", LargeBinary, nullable=False),
    Column("removed_at_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("user_name", "device_id", "identity_digest"),
)

# The link relay: one opaque message per (user, relay id, slot), written once, expiring.
link_messages = Table(
    "link_messages",
    metadata,
    Column("user_name", String, ForeignKey("users.name"), nullable=False),
    Column("relay_id", String, nullable=False),
    Column("slot", String(16), nullable=False),
    Column("message", LargeBinary, nullable=False),
    Column("expires_at_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("user_name", "relay_id", "slot"),
    Index("ix_link_messages_expiry", "expires_at_ms"),
)

V2_TABLES: tuple[Table, ...] = (accounts, device_removals, link_messages)

# ---- version 3: mailbox quotas and send deduplication ---------------------------------------

# Undelivered entries and their ciphertext bytes per device, kept in the group-commit and ack
# transactions (never counted per send). ``tracked``: the per-sender shares below are kept too
# (only while the mailbox is big enough for a share to matter; see storage/mailbox_tx.py).
mailbox_totals = Table(
    "mailbox_totals",
    metadata,
    Column("user_name", String, nullable=False),
    Column("device_id", Integer, nullable=False),
    Column("entries", BigInteger, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("tracked", Boolean, nullable=False, server_default=false()),
    # No foreign key: the group commit adds to these rows before it reserves sequences (which
    # is where an unknown device is refused, rolling everything back).
    PrimaryKeyConstraint("user_name", "device_id"),
)

# One sending user's share of a tracked device's undelivered entries.
mailbox_senders = Table(
    "mailbox_senders",
    metadata,
    Column("user_name", String, nullable=False),
    Column("device_id", Integer, nullable=False),
    Column("sender_user", String, nullable=False),
    Column("entries", BigInteger, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    PrimaryKeyConstraint("user_name", "device_id", "sender_user"),
    _device_fk(),
)

# Sends stored recently, by the sender's client_message_id: a retry is answered with the
# first result. Written in the same transaction as the mailbox rows; pruned by age and count.
sent_messages = Table(
    "sent_messages",
    metadata,
    Column("sender_user", String, nullable=False),
    Column("sender_device", Integer, nullable=False),
    Column("client_message_id", String, nullable=False),
    Column("message_id", String, nullable=False),
    Column("sent_at_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("sender_user", "sender_device", "client_message_id"),
    Index("ix_sent_messages_sent_at", "sent_at_ms"),
)

V3_TABLES: tuple[Table, ...] = (mailbox_totals, mailbox_senders, sent_messages)

# ---- version 4: auth limits ------------------------------------------------------------------

# One-use registration codes (auth.registration = invite); only the code's SHA-256.
invites = Table(
    "invites",
    metadata,
    Column("code_hash", LargeBinary, primary_key=True),
    Column("created_by", String, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("expires_at_ms", BigInteger, nullable=False),
    Column("used_by", String, nullable=True),
    Column("used_at_ms", BigInteger, nullable=True),
)

# ---- version 5: signed rosters, room messages stored once -------------------------------------

# Every signed roster event of a room, in sequence order (docs/e2e-wire-rooms.md section 1).
roster_events = Table(
    "roster_events",
    metadata,
    Column("room_name", String, ForeignKey("rooms.name"), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("event", LargeBinary, nullable=False),
    Column("event_hash", LargeBinary, nullable=False),
    Column("appended_at_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("room_name", "sequence"),
)

# A room's sender-key messages, each stored once whatever the member count.
room_messages = Table(
    "room_messages",
    metadata,
    Column("room_name", String, nullable=False),
    Column("room_seq", BigInteger, nullable=False),
    Column("message_id", String, nullable=False),
    Column("sender_user", String, nullable=False),
    Column("sender_device", Integer, nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("sent_at_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("room_name", "room_seq"),
    Index("ix_room_messages_sent_at", "sent_at_ms"),
)

# How far each device has acknowledged each room's log (written on ack, never on send).
room_positions = Table(
    "room_positions",
    metadata,
    Column("user_name", String, nullable=False),
    Column("device_id", Integer, nullable=False),
    Column("room_name", String, nullable=False),
    Column("acked_seq", BigInteger, nullable=False),
    PrimaryKeyConstraint("user_name", "device_id", "room_name"),
    Index("ix_room_positions_room", "room_name"),
)

V5_TABLES: tuple[Table, ...] = (roster_events, room_messages, room_positions)
