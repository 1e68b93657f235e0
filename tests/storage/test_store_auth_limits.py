"""Store contract (memory, SQLite, PostgreSQL) for the issue 13 methods: sessions by
certificate, invites, visible rooms and pages, room counts, bundle peeks; and the upgrade of a
version-1 SQLite database to the latest version."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy

from securechat.domain.model import Invite, PreKeyCounts
from securechat.errors import AlreadyExists, InvalidArgument
from securechat.storage import schema, schema_v1
from securechat.storage.migrations import LATEST_VERSION
from securechat.storage.port import Store
from tests.storage.test_store_contract import BOB1, _bundle, _people, _session


async def test_sessions_remember_and_end_with_their_certificate(store: Store) -> None:
    await _people(store, "alice", "bob")
    laptop = replace(_session(b"t1"), cert_fingerprint="AA:BB", cert_serial="1f")
    phone = replace(_session(b"t2", user="bob"), cert_fingerprint="CC:DD", cert_serial="2f")
    await store.create_session(laptop)
    await store.create_session(phone)
    assert await store.get_session(b"t1") == laptop
    assert await store.revoke_certificate_sessions("", "") == []
    assert await store.revoke_certificate_sessions("AA:BB", "") == [b"t1"]
    assert await store.get_session(b"t1") is None
    assert await store.revoke_certificate_sessions("", "2f") == [b"t2"]
    assert await store.get_session(b"t2") is None


async def test_invites_are_used_once_and_expire(store: Store) -> None:
    await _people(store, "alice")
    await store.create_invite(Invite(b"h1", "alice", 10, 100))
    with pytest.raises(AlreadyExists):
        await store.create_invite(Invite(b"h1", "alice", 10, 100))
    assert not await store.redeem_invite(b"unknown", "sam", 20)
    assert await store.redeem_invite(b"h1", "sam", 20)
    assert not await store.redeem_invite(b"h1", "tom", 20)  # used
    await store.release_invite(b"h1")
    assert await store.redeem_invite(b"h1", "tom", 20)
    await store.create_invite(Invite(b"h2", "alice", 10, 100))
    assert not await store.redeem_invite(b"h2", "sam", 100)  # expired at its expiry


async def test_visible_rooms_pages_and_counts(store: Store) -> None:
    await _people(store, "alice", "bob")
    await store.create_room("open", None, "alice", 1)
    await store.create_room("hidden", b"hash", "alice", 2)
    await store.create_room("listed", b"hash", "alice", 3, listed=True)
    assert (await store.get_room("listed")).listed  # type: ignore[union-attr]
    assert [r.name for r in await store.list_visible_rooms("bob", "", 10)] == ["listed", "open"]
    mine = await store.list_visible_rooms("alice", "", 2)
    assert [r.name for r in mine] == ["hidden", "listed"]
    after = await store.list_visible_rooms("alice", "listed", 2)
    assert [r.name for r in after] == ["open"]
    assert len(await store.list_rooms("bob")) == 3  # the operator's view: every room
    summary = await store.room_summary("hidden", "alice")
    assert summary is not None and summary.member and summary.protected
    assert await store.room_summary("nope", "alice") is None
    assert await store.count_rooms_created_by("alice") == 3
    assert await store.count_rooms_created_by("bob") == 0
    for bad in (0, 1001):
        with pytest.raises(InvalidArgument):
            await store.list_visible_rooms("bob", "", bad)


async def test_peek_bundle_takes_nothing(store: Store) -> None:
    await _people(store, "bob")
    assert await store.peek_bundle(BOB1) is None
    await store.publish_bundle(BOB1, _bundle(otk=range(1, 3), kem=range(1, 2)))
    peeked = await store.peek_bundle(BOB1)
    assert peeked is not None
    assert peeked.one_time_prekey is None and peeked.kem_prekey.last_resort
    assert peeked.kem_prekey.key_id == 100
    assert await store.count_prekeys(BOB1) == PreKeyCounts(2, 1)


async def test_a_version_1_sqlite_database_upgrades_to_the_latest_version(tmp_path: Path) -> None:
    from securechat.storage.sqlite import SqliteStore

    path = tmp_path / "old.db"
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:  # the frozen version-1 tables
        for table in schema_v1.V1_TABLES:
            table.create(conn)
        schema.schema_version.create(conn)
        conn.execute(schema.schema_version.insert().values(version=1, applied_at_ms=0))
        conn.execute(
            sqlalchemy.text(
                "INSERT INTO users (name, password_hash, role, created_at_ms, last_device_id) "
                "VALUES ('alice', x'00', 'user', 1, 0)"
            )
        )
        conn.execute(
            sqlalchemy.text(
                "INSERT INTO sessions VALUES (x'01', 'alice', 1, 'user', 99, 1, 'CN=alice')"
            )
        )
    engine.dispose()
    store = SqliteStore(path, synchronous="normal")
    await store.open()
    try:
        assert store.applied_migrations == list(range(2, LATEST_VERSION + 1))
        old = await store.get_session(b"\x01")
        assert old is not None and old.cert_fingerprint == "" and old.cert_serial == ""
        await store.create_room("r", b"h", "alice", 1, listed=True)
        await store.create_invite(Invite(b"h", "alice", 1, 2))
    finally:
        await store.close()
