"""open_store picks the adapter from the address; adapters fail with securechat errors only."""

from __future__ import annotations

from pathlib import Path

import pytest

from securechat.errors import InvalidArgument, Unavailable
from securechat.storage.factory import open_store
from securechat.storage.memory import MemoryStore
from securechat.storage.postgres import PostgresStore, asyncpg_url
from securechat.storage.sqlite import SqliteStore


def test_memory_address() -> None:
    assert isinstance(open_store("memory:"), MemoryStore)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("sqlite:///data/chat.db", Path("data/chat.db")),
        ("sqlite:////var/lib/securechat/chat.db", Path("/var/lib/securechat/chat.db")),
        ("data/chat.db", Path("data/chat.db")),
        ("/srv/chat.db", Path("/srv/chat.db")),
    ],
)
def test_sqlite_addresses(address: str, expected: Path) -> None:
    store = open_store(address)
    assert isinstance(store, SqliteStore)
    assert store.path == expected


@pytest.mark.parametrize(
    "address",
    [
        "postgresql://postgres@127.0.0.1:5432/test",
        "postgres://postgres@127.0.0.1/test",
        "postgresql+asyncpg://postgres@127.0.0.1/test",
    ],
)
def test_postgres_addresses(address: str) -> None:
    assert isinstance(open_store(address), PostgresStore)


def test_postgres_dsn_is_rewritten_for_asyncpg() -> None:
    assert asyncpg_url("postgresql://u@h:5/d") == "postgresql+asyncpg://u@h:5/d"
    assert asyncpg_url("postgres://u@h/d") == "postgresql+asyncpg://u@h/d"


def test_postgres_repr_hides_the_password() -> None:
    assert "s3cret" not in repr(PostgresStore("postgresql://u:s3cret@h/d"))


@pytest.mark.parametrize("address", ["", "mysql://u@h/d", "sqlite://relative.db", "sqlite:///"])
def test_unsupported_addresses_are_rejected(address: str) -> None:
    with pytest.raises(InvalidArgument):
        open_store(address)


async def test_unreachable_postgres_is_unavailable_without_driver_text() -> None:
    store = PostgresStore("postgresql://postgres@127.0.0.1:1/none")
    with pytest.raises(Unavailable) as caught:
        await store.open()
    assert "PostgreSQL" in caught.value.message
    assert "refused" not in caught.value.message.lower()
    await store.close()


async def test_using_a_store_before_open_is_unavailable(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "chat.db")
    with pytest.raises(Unavailable, match="open"):
        await store.get_user("alice")


async def test_unwritable_data_folder_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    store = SqliteStore(blocker / "sub" / "chat.db")
    with pytest.raises(Unavailable, match="data folder"):
        await store.open()
