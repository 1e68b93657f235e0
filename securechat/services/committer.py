"""Group commit: concurrent sends are stored in one transaction, without added delay.

The first send starts a commit at once; sends that arrive while it runs are taken together by
the next one. A batch that fails is retried send by send, so one bad send cannot fail others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from securechat.domain.model import MailboxEntry, PendingSend
from securechat.storage.port import Store

log = logging.getLogger("securechat.commit")


class GroupCommitter:
    def __init__(self, store: Store, max_batch: int = 256) -> None:
        self.store = store
        self.max_batch = max_batch
        self._queue: list[tuple[PendingSend, asyncio.Future[list[MailboxEntry]]]] = []
        self._task: asyncio.Task[None] | None = None
        self.commits = 0
        self.sends = 0
        # Told the duration of every successful commit (the server feeds a histogram).
        self.on_commit: Callable[[float], None] | None = None

    def submit(self, send: PendingSend) -> asyncio.Future[list[MailboxEntry]]:
        """Queue a send; the future resolves once it is durably stored (in submission order)."""
        future: asyncio.Future[list[MailboxEntry]] = asyncio.get_running_loop().create_future()
        self._queue.append((send, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="group-commit")
        return future

    async def _run(self) -> None:
        while self._queue:
            batch = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
            started = time.perf_counter()
            try:
                results = await self.store.enqueue_batch([send for send, _ in batch])
            except Exception:
                await self._one_by_one(batch)
                continue
            self.commits += 1
            self.sends += len(batch)
            if self.on_commit is not None:
                self.on_commit(time.perf_counter() - started)
            for (_, future), entries in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(entries)

    async def _one_by_one(
        self, batch: list[tuple[PendingSend, asyncio.Future[list[MailboxEntry]]]]
    ) -> None:
        for send, future in batch:
            try:
                entries = await self.store.enqueue(
                    send.message_id, send.sender, send.sent_at_ms, send.items
                )
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
                continue
            self.commits += 1
            self.sends += 1
            if not future.done():
                future.set_result(entries)

    async def drain(self) -> None:
        """Wait until every submitted send is stored (graceful shutdown)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
