"""What a load step left in the securechat server's store: rows and bytes per room message.

Read from the server's SQLite file (its default store), read-only, between steps (never inside
a measured window). A signed room (issue 15) stores each message once in ``room_messages``
whatever its member count; the whole store's growth per message is reported beside it (it also
holds the send's deduplication record, one per send in any room).
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securechat.bench.report import ratio


@dataclass(frozen=True)
class Footprint:
    """Rows and binary bytes of one room's log, and of every table of the store."""

    room_rows: int
    room_bytes: int
    store_rows: int
    store_bytes: int


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def footprint(db: Path, room: str) -> Footprint:
    """The store's footprint now (WAL readers do not block the server's writer)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as conn:
        rows, size = conn.execute(
            "SELECT count(*), coalesce(sum(length(ciphertext)), 0) FROM room_messages "
            "WHERE room_name = ?",
            (room,),
        ).fetchone()
        store_rows = store_bytes = 0
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        for table in tables:
            quoted = _quote(table)
            store_rows += conn.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0]  # noqa: S608
            for column in conn.execute(f"PRAGMA table_info({quoted})"):
                if str(column[2]).upper() == "BLOB":
                    total = conn.execute(
                        f"SELECT coalesce(sum(length({_quote(column[1])})), 0) FROM {quoted}"  # noqa: S608
                    ).fetchone()[0]
                    store_bytes += int(total)
    return Footprint(int(rows), int(size), store_rows, store_bytes)


def per_message(before: Footprint, after: Footprint, sent: int) -> dict[str, Any]:
    """Growth per message sent between two footprints (``sent``: messages the step sent)."""
    room_rows = after.room_rows - before.room_rows
    return {
        "messages_sent": sent,
        "room_log_rows": room_rows,
        "room_log_rows_per_message": ratio(room_rows, sent),
        "room_log_bytes_per_message": ratio(after.room_bytes - before.room_bytes, room_rows),
        "store_rows_per_message": ratio(after.store_rows - before.store_rows, sent),
        "store_bytes_per_message": ratio(after.store_bytes - before.store_bytes, sent),
    }
