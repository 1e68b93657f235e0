"""The in-memory Store adapter, for unit tests: same semantics as the SQL adapters, no I/O.

Every method validates before it mutates and never awaits in between, so each call is atomic on
one event loop exactly as a database transaction would be. Data lives as long as the object
(``close()`` then ``open()`` keeps it). One module per concept, combined here.
"""

from __future__ import annotations

from securechat.storage.memory.accounts import AccountsMemory
from securechat.storage.memory.devices import DevicesMemory
from securechat.storage.memory.mailbox import MailboxMemory
from securechat.storage.memory.room_log import RoomLogMemory
from securechat.storage.memory.rooms import RoomsMemory
from securechat.storage.migrations import LATEST_VERSION

__all__ = ["MemoryStore"]


class MemoryStore(AccountsMemory, DevicesMemory, RoomsMemory, RoomLogMemory, MailboxMemory):
    """Store kept in dictionaries."""

    def __repr__(self) -> str:
        return "MemoryStore()"

    # ---- lifecycle ------------------------------------------------------------------------
    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def schema_version(self) -> int:
        return LATEST_VERSION
