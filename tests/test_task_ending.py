"""The teardown check ends what a test leaves running, even a task that needs two cancellations."""

from __future__ import annotations

import asyncio

from tests.support.tasks import end_tasks


async def _swallows_one_cancellation() -> None:
    """aiosqlite's close(): the first cancellation ends the ``try``, ``finally`` waits again."""
    try:
        await asyncio.Event().wait()
    finally:
        await asyncio.Event().wait()


async def _ignores_every_cancellation(stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await stop.wait()
        except asyncio.CancelledError:
            continue


async def test_a_task_that_swallows_one_cancellation_is_ended() -> None:
    task = asyncio.create_task(_swallows_one_cancellation())
    await asyncio.sleep(0)
    assert await end_tasks([task], wait_s=10.0) == set()
    assert task.cancelled()


async def test_a_task_that_ignores_every_cancellation_is_reported() -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(_ignores_every_cancellation(stop))
    await asyncio.sleep(0)
    assert await end_tasks([task], wait_s=2.5) == {task}
    stop.set()
    await task  # ends once it is let go
    assert await end_tasks([task], wait_s=1.0) == set()
