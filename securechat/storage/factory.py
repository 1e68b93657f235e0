"""Choose and build the Store adapter for a configured database address."""

from __future__ import annotations

from pathlib import Path

from securechat.errors import InvalidArgument
from securechat.storage.memory import MemoryStore
from securechat.storage.port import Store

_SQLITE_PREFIX = "sqlite:///"


def open_store(url_or_path: str, *, sqlite_synchronous: str = "FULL") -> Store:
    """The (unopened) Store for an address; call ``await store.open()`` before use.

    - ``postgresql://USER@HOST:PORT/DB`` (or ``postgres://``, ``postgresql+asyncpg://``):
      PostgresStore
    - ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or a plain path:
      SqliteStore
    - ``memory:``: MemoryStore (tests only; nothing survives the process)
    """
    address = url_or_path.strip()
    if not address:
        raise InvalidArgument(
            "the database address is empty: give a file path, sqlite:///PATH or postgresql://..."
        )
    if address == "memory:":
        return MemoryStore()
    if address.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
        # Imported here: the SQL adapters pull in SQLAlchemy and a driver.
        from securechat.storage.postgres import PostgresStore

        return PostgresStore(address)
    if address.startswith("sqlite:"):
        if not address.startswith(_SQLITE_PREFIX) or len(address) == len(_SQLITE_PREFIX):
            raise InvalidArgument(
                f"unsupported SQLite address {address!r}: use sqlite:///relative/path.db "
                "or sqlite:////absolute/path.db"
            )
        path = Path(address[len(_SQLITE_PREFIX) :])
    elif "://" in address:
        scheme = address.split("://", 1)[0]
        raise InvalidArgument(
            f"unsupported database scheme {scheme!r}: use a file path, sqlite:///PATH, "
            "postgresql://... or memory:"
        )
    else:
        path = Path(address).expanduser()
    from securechat.storage.sqlite import SqliteStore

    return SqliteStore(path, synchronous=sqlite_synchronous)
