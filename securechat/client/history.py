"""The device's message history: every message sent and received, encrypted at rest, searchable.

One SQLCipher database per profile (``history.db``), opened with a random 256-bit key kept in
the keystore (:meth:`~securechat.client.vault.Vault.history_key`), so it opens only after the
keystore is unlocked and survives password changes. SQLCipher encrypts every page of the file
(AES-256 with an HMAC per page): the messages, the full-text index over their plaintext (FTS5),
the write-ahead log and temporary data alike, which per-record encryption of plain SQLite could
not do for a search index. Nothing here is ever sent to the server.

A row is a message in one conversation (``#room`` or ``@user``) with its sender, its time
(the server's, or the time it was typed while it waits) and its delivery state:

- ``pending``: typed and kept in the outbox until the server accepts it (client/outbox.py);
- ``sent``: the server stored it for every recipient device;
- ``failed``: refused for good (the reason in ``error``; ``/retry`` queues it again);
- ``received``: from someone else (or from another device of this account);
- ``undecryptable``: arrived but could not be decrypted.

:class:`HistoryStore` is synchronous; :class:`History` runs it on one worker thread so no disk
access blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import sqlcipher3

from securechat.client.events import MessageEvent, Target, UndecryptableEvent
from securechat.errors import InvalidArgument, KeystoreError

T = TypeVar("T")
SCHEMA_VERSION = 1
KEY_BYTES = 32
DAY_MS = 24 * 3600 * 1000
STATES = ("pending", "sent", "failed", "received", "undecryptable")
SEARCH_LIMIT = 200

_SCHEMA = """
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL UNIQUE,
    conversation TEXT NOT NULL,
    sender TEXT NOT NULL,
    outgoing INTEGER NOT NULL,
    body TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    state TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX messages_by_conversation ON messages (conversation, id);
CREATE INDEX messages_by_state ON messages (state, id);
CREATE TABLE conversations (
    name TEXT PRIMARY KEY,
    last_read INTEGER NOT NULL DEFAULT 0
);
CREATE VIRTUAL TABLE messages_text USING fts5 (
    body, content='messages', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER messages_text_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_text (rowid, body) VALUES (new.id, new.body);
END;
CREATE TRIGGER messages_text_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_text (messages_text, rowid, body) VALUES ('delete', old.id, old.body);
END;
"""
# Every query is a constant: values only ever travel as parameters.
_SELECT_ONE = (
    "SELECT id, message_id, conversation, sender, outgoing, body, at_ms, state, error "
    "FROM messages WHERE message_id = ?"
)
_SELECT_STATE = (
    "SELECT id, message_id, conversation, sender, outgoing, body, at_ms, state, error "
    "FROM messages WHERE state = ?1 AND (?2 IS NULL OR conversation = ?2) ORDER BY id"
)
_SELECT_RECENT = (
    "SELECT id, message_id, conversation, sender, outgoing, body, at_ms, state, error "
    "FROM messages WHERE (?1 IS NULL OR conversation = ?1) AND (?2 IS NULL OR id < ?2) "
    "ORDER BY id DESC LIMIT ?3"
)
_SELECT_MATCHING = (
    "SELECT m.id, m.message_id, m.conversation, m.sender, m.outgoing, m.body, m.at_ms, "
    "m.state, m.error FROM messages_text JOIN messages m ON m.id = messages_text.rowid "
    "WHERE messages_text MATCH ?1 AND (?2 IS NULL OR m.conversation = ?2) "
    "ORDER BY m.id DESC LIMIT ?3"
)


@dataclass(frozen=True)
class Entry:
    """One stored message."""

    id: int
    message_id: str
    conversation: str  # "#room" or "@user"
    sender: str
    outgoing: bool
    body: str
    at_ms: int
    state: str
    error: str = ""

    @property
    def target(self) -> Target:
        return Target.parse(self.conversation)

    def as_json(self) -> dict[str, object]:
        """The ``history --json`` / ``search --json`` object (plain data, never sanitised)."""
        return {
            "id": self.message_id,
            "conversation": self.conversation,
            "sender": self.sender,
            "outgoing": self.outgoing,
            "text": self.body,
            "at_ms": self.at_ms,
            "state": self.state,
            **({"error": self.error} if self.error else {}),
        }


def _entry(row: tuple[Any, ...]) -> Entry:
    return Entry(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6], row[7], row[8])


def fts_query(text: str) -> str:
    """A user's search words as an FTS5 query: every word must occur (the last as a prefix);
    quoting keeps FTS5 operators and punctuation in the words from being interpreted."""
    words = [w for w in text.split() if w.strip('"')]
    if not words:
        raise InvalidArgument("search for at least one word")
    quoted = ['"' + w.replace('"', '""') + '"' for w in words]
    quoted[-1] += "*"
    return " ".join(quoted)


class HistoryStore:
    """The history database of one profile (open with :meth:`open`)."""

    def __init__(self, connection: sqlcipher3.Connection, retention_days: float) -> None:
        self._db = connection
        self.retention_days = retention_days

    @classmethod
    def open(cls, path: Path, key: bytes, *, retention_days: float = 0.0) -> HistoryStore:
        """Open (creating, mode 0600) the history at ``path`` under ``key``; apply retention."""
        if len(key) != KEY_BYTES:
            raise InvalidArgument("the history key must be 32 bytes")
        if retention_days < 0:
            raise InvalidArgument("history retention must be 0 (keep) or a number of days")
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        db = sqlcipher3.connect(str(path), isolation_level=None, check_same_thread=False)
        try:
            db.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
            try:
                version = db.execute("PRAGMA user_version").fetchone()[0]
            except sqlcipher3.DatabaseError as exc:
                raise KeystoreError(
                    f"the message history {path} cannot be decrypted with this keystore (it "
                    "belongs to another keystore or is damaged): move it away to start anew"
                ) from exc
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA foreign_keys = ON")
            if version == 0:
                db.executescript(
                    f"BEGIN; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                )
            elif version > SCHEMA_VERSION:
                raise KeystoreError(
                    f"the message history {path} was written by a newer securechat: upgrade"
                )
        except BaseException:
            db.close()
            raise
        store = cls(db, retention_days)
        store.purge()
        return store

    def close(self) -> None:
        self._db.close()

    # -- writing ---------------------------------------------------------------------------

    def add_outgoing(
        self, target: Target, sender: str, body: str, *, at_ms: int | None = None
    ) -> Entry:
        """A message just typed: pending, with the client message id it keeps for good."""
        if not body.strip():
            raise InvalidArgument("the message is empty: type some text")
        message_id = uuid.uuid4().hex
        at = _now_ms() if at_ms is None else at_ms
        with _transaction(self._db):
            cursor = self._db.execute(
                "INSERT INTO messages (message_id, conversation, sender, outgoing, body, at_ms, "
                "state) VALUES (?, ?, ?, 1, ?, ?, 'pending')",
                (message_id, str(target), sender, body, at),
            )
        rowid = cursor.lastrowid
        assert rowid is not None
        return Entry(rowid, message_id, str(target), sender, True, body, at, "pending")

    def add_received(self, event: MessageEvent, me: str) -> Entry | None:
        """A message that arrived (None: it is already stored, e.g. a replay)."""
        return self._insert(
            event.message_id, event.target, event.sender, event.sender == me, event.text,
            event.sent_at_ms, "sent" if event.sender == me else "received",
        )  # fmt: skip

    def add_undecryptable(self, event: UndecryptableEvent) -> Entry | None:
        return self._insert(
            event.message_id, event.target, event.sender, False, "", event.sent_at_ms,
            "undecryptable",
        )  # fmt: skip

    def _insert(
        self, message_id: str, target: Target, sender: str, outgoing: bool, body: str,
        at_ms: int, state: str,
    ) -> Entry | None:  # fmt: skip
        with _transaction(self._db):
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO messages (message_id, conversation, sender, outgoing, "
                "body, at_ms, state) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (message_id, str(target), sender, int(outgoing), body, at_ms, state),
            )
        if cursor.rowcount == 0 or cursor.lastrowid is None:
            return None
        return Entry(
            cursor.lastrowid, message_id, str(target), sender, outgoing, body, at_ms, state
        )

    def mark_sent(self, message_id: str, server_time_ms: int) -> Entry | None:
        return self._set_state(message_id, "sent", "", server_time_ms)

    def mark_failed(self, message_id: str, error: str) -> Entry | None:
        return self._set_state(message_id, "failed", error)

    def mark_pending(self, message_id: str) -> Entry | None:
        """Queue a failed message again (same client message id)."""
        return self._set_state(message_id, "pending", "")

    def _set_state(
        self, message_id: str, state: str, error: str, at_ms: int | None = None
    ) -> Entry | None:
        with _transaction(self._db):
            self._db.execute(
                "UPDATE messages SET state = ?, error = ?, at_ms = coalesce(?, at_ms) "
                "WHERE message_id = ? AND outgoing = 1",
                (state, error, at_ms, message_id),
            )
        return self.get(message_id)

    def mark_read(self, conversation: str, up_to: int | None = None) -> None:
        """Everything in ``conversation`` up to ``up_to`` (default: all of it) has been seen."""
        if up_to is None:
            row = self._db.execute(
                "SELECT coalesce(max(id), 0) FROM messages WHERE conversation = ?",
                (conversation,),
            ).fetchone()
            up_to = int(row[0])
        with _transaction(self._db):
            self._db.execute(
                "INSERT INTO conversations (name, last_read) VALUES (?, ?) ON CONFLICT (name) "
                "DO UPDATE SET last_read = max(last_read, excluded.last_read)",
                (conversation, up_to),
            )

    def record(self, events: Iterable[object], me: str) -> None:
        """Store every message among ``events`` (what a stream batch or an inbox run gave)."""
        for event in events:
            if isinstance(event, MessageEvent):
                self.add_received(event, me)
            elif isinstance(event, UndecryptableEvent):
                self.add_undecryptable(event)

    def purge(self, now_ms: int | None = None) -> int:
        """Delete messages older than the retention (never one still waiting to be sent)."""
        if self.retention_days <= 0:
            return 0
        cutoff = (_now_ms() if now_ms is None else now_ms) - int(self.retention_days * DAY_MS)
        with _transaction(self._db):
            cursor = self._db.execute(
                "DELETE FROM messages WHERE at_ms < ? AND state != 'pending'", (cutoff,)
            )
        return int(cursor.rowcount)

    # -- reading ---------------------------------------------------------------------------

    def get(self, message_id: str) -> Entry | None:
        row = self._db.execute(_SELECT_ONE, (message_id,)).fetchone()
        return None if row is None else _entry(row)

    def pending(self) -> list[Entry]:
        """The outbox: messages waiting to be sent, in the order they were typed."""
        return [_entry(row) for row in self._db.execute(_SELECT_STATE, ("pending", None))]

    def failed(self, conversation: str) -> list[Entry]:
        return [_entry(row) for row in self._db.execute(_SELECT_STATE, ("failed", conversation))]

    def recent(
        self, conversation: str | None = None, limit: int = 200, before: int | None = None
    ) -> list[Entry]:
        """The last ``limit`` messages (of one conversation), oldest first."""
        rows = self._db.execute(_SELECT_RECENT, (conversation, before, limit)).fetchall()
        return [_entry(row) for row in reversed(rows)]

    def search(
        self, text: str, conversation: str | None = None, limit: int = SEARCH_LIMIT
    ) -> list[Entry]:
        """Messages containing every word of ``text`` (newest first)."""
        rows = self._db.execute(_SELECT_MATCHING, (fts_query(text), conversation, limit))
        return [_entry(row) for row in rows]

    def conversations(self) -> list[str]:
        """Every conversation with stored messages, most recently active first."""
        rows = self._db.execute(
            "SELECT conversation FROM messages GROUP BY conversation ORDER BY max(id) DESC"
        )
        return [row[0] for row in rows]

    def unread(self) -> dict[str, int]:
        """Messages from others not yet seen, per conversation."""
        rows = self._db.execute(
            "SELECT m.conversation, count(*) FROM messages m LEFT JOIN conversations c "
            "ON c.name = m.conversation WHERE m.outgoing = 0 AND m.id > coalesce(c.last_read, 0) "
            "GROUP BY m.conversation"
        )
        return {row[0]: row[1] for row in rows}


class History:
    """A :class:`HistoryStore` used from the event loop: every call runs on one worker thread."""

    def __init__(self, store: HistoryStore) -> None:
        self.store = store
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="history")
        self._closed = False

    @classmethod
    async def open(cls, path: Path, key: bytes, *, retention_days: float = 0.0) -> History:
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=1) as opener:
            store = await loop.run_in_executor(
                opener, lambda: HistoryStore.open(path, key, retention_days=retention_days)
            )
        return cls(store)

    async def run(self, call: Callable[[HistoryStore], T]) -> T:
        """Run ``call(store)`` on the history's thread and return its result."""
        return await asyncio.get_running_loop().run_in_executor(self._worker, call, self.store)

    async def close(self) -> None:
        """Close the database (again: nothing to do)."""
        if self._closed:
            return
        self._closed = True
        await self.run(HistoryStore.close)
        self._worker.shutdown(wait=False)


@contextlib.contextmanager
def _transaction(db: sqlcipher3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _now_ms() -> int:
    return int(time.time() * 1000)
