"""The SQLite data folder and database files are the server user's alone, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from securechat.domain.model import Role
from securechat.storage.sqlite import SqliteStore


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o000], ids=["umask-022", "umask-000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


async def test_a_new_data_folder_and_its_files_are_private(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "data" / "securechat.db"
    store = SqliteStore(path)
    await store.open()
    try:
        await store.create_user("alice", b"hash", Role.USER, 1)  # the WAL and its index exist
        files = [path, path.with_name("securechat.db-wal"), path.with_name("securechat.db-shm")]
        assert all(f.exists() for f in files)
        assert mode(path.parent) == 0o700
        assert [mode(f) for f in files] == [0o600] * 3
    finally:
        await store.close()


async def test_an_existing_open_folder_and_files_are_tightened(tmp_path: Path, umask: int) -> None:
    folder = tmp_path / "data"
    path = folder / "securechat.db"
    store = SqliteStore(path)
    await store.open()
    await store.create_user("alice", b"hash", Role.USER, 1)
    await store.close()
    folder.chmod(0o777)
    path.chmod(0o666)  # as an older securechat (or a copy with cp) left them
    reopened = SqliteStore(path)
    await reopened.open()
    try:
        assert (mode(folder), mode(path)) == (0o700, 0o600)
        assert await reopened.get_user("alice") is not None
    finally:
        await reopened.close()


async def test_a_shared_folder_is_left_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    store = SqliteStore(shared / "chat.db")
    await store.open()
    try:
        assert mode(shared) == 0o1777
        assert mode(shared / "chat.db") == 0o600
        assert "not the server's own" in caplog.text
    finally:
        await store.close()
