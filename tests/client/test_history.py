"""The encrypted local history: stored, found, kept, purged, and unreadable without its key."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from securechat.client.events import MessageEvent, Target, UndecryptableEvent
from securechat.client.history import DAY_MS, History, HistoryStore, fts_query
from securechat.client.vault import TEST_ARGON2, Vault
from securechat.crypto.account_password import derive_password_keys, new_login_parameters
from securechat.errors import InvalidArgument, KeystoreError

KEY = bytes(range(32))
LOBBY, BOB = Target.room("lobby"), Target.user("bob")


def received(text: str, *, sender: str = "bob", target: Target = LOBBY, at: int = 1000,
             message_id: str = "") -> MessageEvent:  # fmt: skip
    return MessageEvent(message_id or f"id-{text}", sender, 1, target, text, at)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    opened = HistoryStore.open(tmp_path / "history.db", KEY)
    yield opened
    opened.close()


def test_messages_are_kept_per_conversation_in_order(store: HistoryStore) -> None:
    store.add_received(received("one"), "alice")
    mine = store.add_outgoing(LOBBY, "alice", "two")
    store.add_received(received("private", target=BOB), "alice")
    assert [e.body for e in store.recent("#lobby")] == ["one", "two"]
    assert [e.body for e in store.recent("@bob")] == ["private"]
    assert mine.state == "pending" and mine.outgoing and len(mine.message_id) == 32
    assert store.conversations() == ["@bob", "#lobby"]
    assert [e.body for e in store.recent("#lobby", limit=1)] == ["two"]
    assert [e.body for e in store.recent("#lobby", before=mine.id)] == ["one"]


def test_a_replayed_message_is_stored_once(store: HistoryStore) -> None:
    assert store.add_received(received("once"), "alice") is not None
    assert store.add_received(received("once"), "alice") is None
    assert len(store.recent()) == 1


def test_delivery_states_follow_the_outbox(store: HistoryStore) -> None:
    first = store.add_outgoing(LOBBY, "alice", "first")
    second = store.add_outgoing(BOB, "alice", "second")
    assert [e.message_id for e in store.pending()] == [first.message_id, second.message_id]
    sent = store.mark_sent(first.message_id, 5555)
    assert sent is not None and (sent.state, sent.at_ms) == ("sent", 5555)
    failed = store.mark_failed(second.message_id, "not a member")
    assert failed is not None and (failed.state, failed.error) == ("failed", "not a member")
    assert store.pending() == [] and [e.body for e in store.failed("@bob")] == ["second"]
    again = store.mark_pending(second.message_id)
    assert again is not None and again.message_id == second.message_id  # the same id
    assert [e.body for e in store.pending()] == ["second"]


def test_an_undecryptable_message_is_recorded_without_text(store: HistoryStore) -> None:
    store.add_undecryptable(UndecryptableEvent("u1", "bob", 1, LOBBY, 10))
    (entry,) = store.recent()
    assert (entry.state, entry.body, entry.sender) == ("undecryptable", "", "bob")


def test_search_finds_every_word_and_prefixes(store: HistoryStore) -> None:
    store.add_received(received("the deploy failed on Tuesday"), "alice")
    store.add_received(received("Deployment fixed", target=BOB), "alice")
    store.add_outgoing(LOBBY, "alice", "lunch?")
    both = ["Deployment fixed", "the deploy failed on Tuesday"]
    assert [e.body for e in store.search("deploy")] == both  # newest first
    assert [e.body for e in store.search("deploy tues")] == ["the deploy failed on Tuesday"]
    assert [e.body for e in store.search("deploy", "@bob")] == ["Deployment fixed"]
    assert [e.body for e in store.search("LUNCH")] == ["lunch?"]
    assert store.search("nothing-like-this") == []


@pytest.mark.parametrize("query", ['"', "NOT", "a OR", "x AND (", "col:umn", "*", "^near"])
def test_search_syntax_in_the_words_is_taken_literally(store: HistoryStore, query: str) -> None:
    store.add_received(received("plain text"), "alice")
    try:
        assert store.search(query) == []
    except InvalidArgument:
        assert not query.strip('"')  # only a query of no words at all is refused


def test_a_blank_search_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="at least one word"):
        fts_query("   ")


def test_unread_counts_follow_the_read_marker(store: HistoryStore) -> None:
    store.add_received(received("a"), "alice")
    second = store.add_received(received("b"), "alice")
    store.add_outgoing(LOBBY, "alice", "mine do not count")
    store.add_received(received("c", target=BOB), "alice")
    assert store.unread() == {"#lobby": 2, "@bob": 1}
    assert second is not None
    store.mark_read("#lobby", second.id)
    assert store.unread() == {"@bob": 1}
    store.mark_read("#lobby", 1)  # an older marker never moves it back
    assert store.unread() == {"@bob": 1}
    store.mark_read("@bob")  # all of it
    assert store.unread() == {}


def test_retention_purges_old_messages_but_never_the_outbox(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    store = HistoryStore.open(path, KEY, retention_days=1)
    now = 100 * DAY_MS
    store.add_received(received("old", at=now - 2 * DAY_MS), "alice")
    store.add_received(received("new", at=now - DAY_MS // 2), "alice")
    store.add_outgoing(LOBBY, "alice", "old but unsent", at_ms=now - 5 * DAY_MS)
    assert store.purge(now) == 1
    assert [e.body for e in store.recent()] == ["new", "old but unsent"]
    assert store.search("old") == [store.recent()[1]]  # the index forgot it too
    store.close()
    with pytest.raises(InvalidArgument, match="retention"):
        HistoryStore.open(path, KEY, retention_days=-1)


def test_history_survives_reopening_and_is_encrypted_at_rest(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    store = HistoryStore.open(path, KEY)
    secret = "the vault code is 7291-unique-plaintext"
    store.add_received(received(secret), "alice")
    store.add_outgoing(BOB, "alice", "second-unique-plaintext")
    files = {p: p.read_bytes() for p in tmp_path.iterdir()}  # db, -wal and -shm while open
    store.close()
    files.update({p: p.read_bytes() for p in tmp_path.iterdir()})
    for where, blob in files.items():
        assert b"unique-plaintext" not in blob, where
        assert b"SQLite format 3" not in blob, where  # not even the header is plain
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = HistoryStore.open(path, KEY)
    assert [e.body for e in again.search("vault code")] == [secret]
    again.close()


def test_the_wrong_key_opens_nothing(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    HistoryStore.open(path, KEY).close()
    with pytest.raises(KeystoreError, match="cannot be decrypted"):
        HistoryStore.open(path, bytes(32))
    with pytest.raises(InvalidArgument, match="32 bytes"):
        HistoryStore.open(path, b"short")


def test_the_history_key_lives_in_the_keystore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECURECHAT_KDF_PROFILE", "test")
    path = tmp_path / "keystore.bin"
    keys = derive_password_keys("pw-1", new_login_parameters(TEST_ARGON2))
    vault = Vault.create(path, keys, *Vault.new_account("alice", 1))
    key = vault.history_key()
    assert len(key) == 32 and vault.history_key() == key
    assert Vault.open(path, "pw-1").history_key() == key  # saved, not made again
    assert key not in path.read_bytes()


async def test_the_async_history_runs_off_the_event_loop(tmp_path: Path) -> None:
    import threading

    history = await History.open(tmp_path / "history.db", KEY)
    threads = await history.run(lambda _store: threading.current_thread().name)
    assert threads.startswith("history")
    entry = await history.run(lambda s: s.add_outgoing(LOBBY, "alice", "hi"))
    assert await history.run(lambda s: s.get(entry.message_id)) == entry
    await history.close()
