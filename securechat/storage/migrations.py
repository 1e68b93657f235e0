"""Numbered schema migrations, applied in order at ``open()`` and recorded in ``schema_version``.

Each step is a function of a synchronous SQLAlchemy ``Connection`` (run through ``run_sync``)
that must work on both SQLite and PostgreSQL. ``migrate`` runs inside the caller's transaction,
so a failing step leaves the database at its previous version.

Adding a migration: append ``Migration(N + 1, ...)`` to ``MIGRATIONS`` and change ``schema.py``
to the new shape. Step 1 builds the frozen version-1 tables of ``schema_v1.py``, so a fresh
database goes through every step like an old one.

2. Accounts own their devices: users get the login salt and Argon2id costs (NULL: a legacy
   password account), devices their certificate and binding; new tables ``accounts``,
   ``device_removals`` and ``link_messages``.
3. Mailbox quotas and send deduplication: tables ``mailbox_totals`` (filled by counting the
   existing mailboxes), ``mailbox_senders`` and ``sent_messages``.
4. Auth limits: sessions remember their certificate, rooms may be listed, registration invites.
5. Signed rosters and rooms stored once: rooms get their roster length, head, verified state and
   message log position, members the log position they joined at; new tables ``roster_events``,
   ``room_messages`` and ``room_positions``. Existing rooms have no roster (length 0) and keep
   working with per-device sends until a member signs a CREATE for them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Connection, false, func, insert, inspect, select, text
from sqlalchemy.schema import CreateColumn

from securechat.errors import FailedPrecondition
from securechat.storage import schema, schema_v1


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


class SchemaTooNew(FailedPrecondition):
    """The database was written by a newer securechat than this one."""

    code = "schema_too_new"

    def __init__(self, found: int, known: int) -> None:
        self.found = found
        self.known = known
        super().__init__(
            f"the database schema is version {found}, but this securechat only knows versions "
            f"up to {known}: upgrade securechat, or point it at a different database"
        )


def _v1_initial(conn: Connection) -> None:
    for table in schema_v1.V1_TABLES:
        table.create(conn)


def _add_missing_columns(conn: Connection, table: str, columns: tuple[Column[Any], ...]) -> None:
    """``ALTER TABLE ... ADD COLUMN`` for each of ``schema.py``'s columns the table lacks, with
    the dialect's type, nullability and server default."""
    present = {c["name"] for c in inspect(conn).get_columns(table)}
    for column in columns:
        if column.name not in present:
            ddl = CreateColumn(column).compile(dialect=conn.dialect)
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {ddl}"))


def _v2_accounts_own_devices(conn: Connection) -> None:
    users, devices = schema.users.c, schema.devices.c
    _add_missing_columns(
        conn,
        "users",
        (users.login_salt, users.login_iterations, users.login_lanes, users.login_memory_kib),
    )
    _add_missing_columns(conn, "devices", (devices.certificate, devices.binding))
    for table in schema.V2_TABLES:
        table.create(conn)


def _v3_mailbox_quotas(conn: Connection) -> None:
    """Per-device mailbox totals (counted once from the mailbox), per-sender shares and the
    records of stored sends that answer a retried send."""
    for table in schema.V3_TABLES:
        table.create(conn)
    mailbox = schema.mailbox
    counted = select(
        mailbox.c.user_name,
        mailbox.c.device_id,
        func.count(),
        func.coalesce(func.sum(func.length(mailbox.c.ciphertext)), 0),
        false(),
    ).group_by(mailbox.c.user_name, mailbox.c.device_id)
    totals = schema.mailbox_totals
    conn.execute(
        insert(totals).from_select(
            ["user_name", "device_id", "entries", "bytes", "tracked"], counted
        )
    )


def _v4_auth_limits(conn: Connection) -> None:
    """Sessions remember their certificate; rooms may be listed; registration invites."""
    _add_missing_columns(
        conn, "sessions", (schema.sessions.c.cert_fingerprint, schema.sessions.c.cert_serial)
    )
    _add_missing_columns(conn, "rooms", (schema.rooms.c.listed,))
    schema.invites.create(conn, checkfirst=True)


def _v5_rosters_and_room_logs(conn: Connection) -> None:
    """Signed roster events, the stored-once room message log and per-device room acks."""
    rooms = schema.rooms.c
    _add_missing_columns(
        conn, "rooms", (rooms.roster_length, rooms.roster_head, rooms.roster_state,
                        rooms.last_room_seq)
    )  # fmt: skip
    _add_missing_columns(conn, "room_members", (schema.room_members.c.joined_room_seq,))
    for table in schema.V5_TABLES:
        table.create(conn, checkfirst=True)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _v1_initial),
    Migration(2, "accounts own their devices", _v2_accounts_own_devices),
    Migration(3, "mailbox quotas and send deduplication", _v3_mailbox_quotas),
    Migration(4, "auth limits: session certificates, listed rooms, invites", _v4_auth_limits),
    Migration(5, "signed rosters and room messages stored once", _v5_rosters_and_room_logs),
)

LATEST_VERSION = MIGRATIONS[-1].version


def _check_numbering() -> None:
    expected = list(range(1, len(MIGRATIONS) + 1))
    if [m.version for m in MIGRATIONS] != expected:
        raise RuntimeError("MIGRATIONS must be numbered 1, 2, 3, ... without gaps")


_check_numbering()


def current_version(conn: Connection) -> int:
    """The highest version recorded (0 for an empty database)."""
    if not conn.dialect.has_table(conn, schema.schema_version.name):
        return 0
    found = conn.execute(select(func.max(schema.schema_version.c.version))).scalar_one()
    return int(found or 0)


def migrate(conn: Connection) -> list[int]:
    """Apply every pending step; return the versions applied (empty when up to date).

    Raises SchemaTooNew, changing nothing, when the database is newer than this code.
    """
    found = current_version(conn)
    if found > LATEST_VERSION:
        raise SchemaTooNew(found, LATEST_VERSION)
    if found == 0:
        schema.schema_version.create(conn, checkfirst=True)
    applied: list[int] = []
    for step in MIGRATIONS[found:]:
        step.apply(conn)
        conn.execute(
            insert(schema.schema_version).values(
                version=step.version, applied_at_ms=time.time_ns() // 1_000_000
            )
        )
        applied.append(step.version)
    return applied
