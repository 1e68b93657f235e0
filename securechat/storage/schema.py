"""The relational schema shared by the SQLite and PostgreSQL adapters (SQLAlchemy Core tables).

This module describes the *current* shape of the database. Databases are created and upgraded by
the numbered steps in ``migrations.py``, never by ``metadata.create_all`` at run time.

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
)

room_members = Table(
    "room_members",
    metadata,
    Column("room_name", String, ForeignKey("rooms.name"), nullable=False),
    Column("user_name", String, ForeignKey("users.name"), nullable=False),
    Column("joined_at_ms", BigInteger, nullable=False),
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

# ---- version 3: mailbox quotas and send deduplication -------------------------------------------
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

# Tables in creation order (parents first) for the first migration.
V1_TABLES: tuple[Table, ...] = (
    users,
    sessions,
    devices,
    signed_prekeys,
    one_time_prekeys,
    kem_prekeys,
    rooms,
    room_members,
    contacts,
    mailbox,
    revocations,
)
