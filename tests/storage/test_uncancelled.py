"""storage.port.uncancelled: a caller cancelled in the middle of a store read does not cost the
SQL store its pooled connection (SQLAlchemy drops a connection whose query was interrupted, and
for SQLite the pool then opens a new aiosqlite thread and connection)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import event

from securechat.domain.model import DeviceRef, Role
from securechat.storage.port import uncancelled
from securechat.storage.sqlite import SqliteStore

ATTEMPTS = 2000


async def test_the_caller_is_cancelled_at_once_and_the_read_finishes() -> None:
    gate = asyncio.Event()
    finished: list[int] = []

    async def read() -> int:
        await gate.wait()
        finished.append(7)
        return 7

    caller = asyncio.create_task(uncancelled(read()))
    await asyncio.sleep(0)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert not finished  # the caller did not wait for the read
    gate.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert finished == [7]  # ... which was not interrupted


async def test_a_read_that_fails_after_its_caller_left_is_not_reported_unretrieved() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    gate = asyncio.Event()

    async def read() -> int:
        await gate.wait()
        raise RuntimeError("the store failed")

    caller = asyncio.create_task(uncancelled(read()))
    await asyncio.sleep(0)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    gate.set()
    for _ in range(5):
        await asyncio.sleep(0)
    gc.collect()  # an unretrieved exception is reported when its task is collected
    loop.set_exception_handler(None)
    assert not reported


async def _invalidations(
    tmp_path: Path, read: Callable[[SqliteStore, DeviceRef], Awaitable[object]]
) -> int:
    """Cancel callers of ``read`` after growing delays until one interrupts a query (the pool
    drops the connection) or ATTEMPTS are made; the connections dropped."""
    store = SqliteStore(tmp_path / "chat.db")
    await store.open()
    try:
        await store.create_user("ann", b"h", Role.USER, 1)
        device = DeviceRef("ann", await store.add_device("ann", 1))
        assert store._engine is not None
        dropped: list[object] = []
        event.listen(store._engine.sync_engine, "invalidate", lambda *a: dropped.append(a))
        for attempt in range(ATTEMPTS):
            caller = asyncio.create_task(read(store, device))
            await asyncio.sleep((attempt % 40) * 0.00005)
            caller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await caller
            if dropped:
                break
        await asyncio.sleep(0.05)  # reads still finishing on their own
        return len(dropped)
    finally:
        await store.close()


async def test_a_bare_read_cancelled_mid_query_costs_the_pool_its_connection(
    tmp_path: Path,
) -> None:
    """What the stream's pump did before: cancelling it in a fetch dropped the connection."""

    async def bare(store: SqliteStore, device: DeviceRef) -> object:
        return await store.fetch(device, 0, 100, 100_000)

    assert await _invalidations(tmp_path, bare) >= 1


async def test_a_read_through_uncancelled_never_costs_a_connection(tmp_path: Path) -> None:
    async def shielded(store: SqliteStore, device: DeviceRef) -> object:
        return await uncancelled(store.fetch(device, 0, 100, 100_000))

    assert await _invalidations(tmp_path, shielded) == 0
