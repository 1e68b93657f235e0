"""WAL checkpoints off the commit path: a commit never checkpoints (so no send's COMMIT waits for
a copy of the whole log), the checkpointer's task does, and the log stays as small as SQLite's
own automatic checkpoint kept it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from securechat.storage.sql_steps import Many, Tx
from securechat.storage.sqlite import SqliteStore

MB = 1024 * 1024
ROUND = 8  # transactions of 1 MB each: 2,000 pages, twice SQLite's automatic threshold


def one_megabyte() -> Tx[None]:
    yield Many("CREATE TABLE IF NOT EXISTS scratch (data BLOB)", [()])
    yield Many("INSERT INTO scratch VALUES (?)", [(os.urandom(MB),)])


async def write_round(store: SqliteStore) -> None:
    for _ in range(ROUND):
        await store._transact(one_megabyte())


def wal_bytes(store: SqliteStore) -> int:
    return Path(f"{store.path}-wal").stat().st_size


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "c.db", checkpoint_every_s=3600)  # the test checkpoints
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def test_commits_never_checkpoint(store: SqliteStore) -> None:
    """With SQLite's automatic checkpoint the commit past 1,000 pages copies the log into the
    database and the next one starts the log over (it would stay near 4 MB); here every page
    stays in the log until the checkpointer copies it."""
    await write_round(store)

    assert wal_bytes(store) > ROUND * MB
    assert store.checkpointer.checkpoints == 0


async def test_a_checkpoint_copies_the_log_and_the_log_starts_over(store: SqliteStore) -> None:
    await write_round(store)
    done = await store.checkpointer.checkpoint()
    size = wal_bytes(store)

    assert not done.busy
    assert done.copied_pages == done.log_pages > ROUND * MB // 4096
    assert store.checkpointer.checkpoints == 1
    await write_round(store)  # written from the log's start again: the file does not grow
    assert wal_bytes(store) <= size


async def test_the_task_checkpoints_by_itself(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "t.db", checkpoint_every_s=0.05)
    await store.open()
    try:
        await store._transact(one_megabyte())
        for _ in range(400):  # up to 20 s on a busy machine; usually the first tick
            if store.checkpointer.checkpoints:
                break
            await asyncio.sleep(0.05)
        assert store.checkpointer.checkpoints >= 1
    finally:
        await store.close()


async def test_close_stops_the_task_and_the_database_reopens(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    store = SqliteStore(path, checkpoint_every_s=0.05)
    await store.open()
    await store._transact(one_megabyte())
    await store.close()
    assert not Path(f"{path}-wal").exists()  # the last connection's close checkpointed it

    again = SqliteStore(path)
    await again.open()
    try:
        assert await again.schema_version() > 0
    finally:
        await again.close()
