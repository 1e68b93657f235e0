"""The SQLite writer: a transaction that need not be durable (acks) commits without an fsync
(synchronous NORMAL for that transaction only); every other one keeps the configured FULL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from securechat.domain.model import (
    Conversation,
    ConversationKind,
    DeviceRef,
    OutgoingCiphertext,
    Role,
)
from securechat.storage.sql_steps import Many, Query, Tx
from securechat.storage.sqlite import SqliteStore
from securechat.storage.sqlite_writer import SqliteWriter
from tests.storage.test_store_rooms import BOB1, _den, _people

PRAGMAS = ["PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL"]
RELAXED = ("PRAGMA synchronous = NORMAL", "PRAGMA synchronous = FULL")
NORMAL, FULL = 1, 2
DIRECT = Conversation(ConversationKind.DIRECT, "al")


def insert_and_read_mode(value: int, fail: bool = False) -> Tx[int]:
    yield Many("CREATE TABLE IF NOT EXISTS t (v INTEGER)", [()])
    yield Many("INSERT INTO t VALUES (?)", [(value,)])
    rows: Any = yield Query("PRAGMA synchronous")
    if fail:
        raise RuntimeError("the transaction fails")
    return int(rows[0][0])


def read_mode() -> Tx[tuple[int, int]]:
    mode: Any = yield Query("PRAGMA synchronous")
    count: Any = yield Query("SELECT count(*) FROM t")
    return int(mode[0][0]), int(count[0][0])


async def test_only_the_non_durable_transaction_is_relaxed(tmp_path: Path) -> None:
    writer = SqliteWriter(tmp_path / "w.db", PRAGMAS, relaxed=RELAXED)
    try:
        assert await writer.run(insert_and_read_mode(1)) == FULL
        assert await writer.run(insert_and_read_mode(2), durable=False) == NORMAL
        assert await writer.run(read_mode()) == (FULL, 2)  # restored; both rows committed
    finally:
        await writer.close()


async def test_a_failed_relaxed_transaction_rolls_back_and_restores_the_mode(
    tmp_path: Path,
) -> None:
    writer = SqliteWriter(tmp_path / "w.db", PRAGMAS, relaxed=RELAXED)
    try:
        await writer.run(insert_and_read_mode(1))
        with pytest.raises(RuntimeError):
            await writer.run(insert_and_read_mode(2, fail=True), durable=False)
        assert await writer.run(read_mode()) == (FULL, 1)
    finally:
        await writer.close()


async def test_nothing_to_relax_when_the_store_does_not_sync(tmp_path: Path) -> None:
    assert SqliteStore(tmp_path / "a.db", synchronous="NORMAL")._relaxed() is None
    assert SqliteStore(tmp_path / "b.db", synchronous="FULL")._relaxed() == RELAXED


async def test_acks_delete_through_the_relaxed_path(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    try:
        await store.create_user("bob", b"$2b$x", Role.USER, 1)
        bob = DeviceRef("bob", await store.add_device("bob", 1))
        await store.create_user("al", b"$2b$x", Role.USER, 1)
        al = DeviceRef("al", await store.add_device("al", 1))
        for i in range(3):
            await store.enqueue(f"m{i}", al, 1, [OutgoingCiphertext(bob, b"x", DIRECT)])
        await store.ack_many([(bob, 2)])
        assert [e.seq for e in await store.fetch(bob, 0, 10)] == [3]
    finally:
        await store.close()


async def test_room_acks_go_through_the_relaxed_path(tmp_path: Path) -> None:
    """A room ack (a position that only moves up) need not wait for the disk either."""
    store = SqliteStore(tmp_path / "r.db")
    await store.open()
    try:
        await _people(store, "alice", "bob")
        await _den(store, "alice", "bob")
        run = store._writer.run
        modes: list[bool] = []

        async def recorded(tx: Tx[Any], *, durable: bool = True) -> Any:
            modes.append(durable)
            return await run(tx, durable=durable)

        store._writer.run = recorded  # type: ignore[method-assign]
        await store.ack_rooms([(BOB1, "den", 0)])
        assert modes == [False]
        assert await store.room_starts(BOB1) == {"den": 0}
    finally:
        await store.close()
