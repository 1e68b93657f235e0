"""Ending the tasks a test leaves running (tests/conftest.py's teardown check)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


async def end_tasks(tasks: Iterable[asyncio.Task[Any]], wait_s: float) -> set[asyncio.Task[Any]]:
    """Cancel ``tasks`` and wait up to ``wait_s`` for them to end; the ones still running.

    A task still pending a second after its cancellation is cancelled again: aiosqlite's
    ``Connection.close()`` spends one cancellation in its ``try`` and then awaits the worker's
    stop in ``finally``. When SQLAlchemy invalidates a connection whose query was cancelled (a
    server handler cut by its client) and is cancelled again meanwhile (the server's stop), it
    force-stops the worker while its shielded graceful close is still queued; that close then
    waits for a worker that is gone until it is cancelled a second time."""
    left = {task for task in tasks if not task.done()}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while left and loop.time() < deadline:
        for task in left:
            task.cancel()
        _, left = await asyncio.wait(left, timeout=min(1.0, max(0.0, deadline - loop.time())))
    return left
