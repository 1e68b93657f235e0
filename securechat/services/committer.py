"""Group commit: concurrent sends are stored in one transaction, without added delay.

The first send starts a commit at once; sends that arrive while it runs are taken together by
the next one. A batch that fails is retried send by send, so one bad send cannot fail others.
The store decides quotas and duplicates inside the same transaction (domain/mailbox.py), so a
send's outcome is a :class:`~securechat.domain.mailbox.Committed`, not only its entries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from securechat.domain.mailbox import NO_LIMITS, Committed, MailboxLimits
from securechat.domain.model import PendingSend
from securechat.storage.port import Store

log = logging.getLogger("securechat.commit")


def _never() -> int:
    return 0


class GroupCommitter:
    def __init__(
        self,
        store: Store,
        max_batch: int = 256,
        *,
        limits: MailboxLimits = NO_LIMITS,
        dedup_since: Callable[[], int] = _never,
    ) -> None:
        self.store = store
        self.max_batch = max_batch
        self.limits = limits
        # The oldest record time that still answers a retried send (epoch ms).
        self.dedup_since = dedup_since
        self._queue: list[tuple[PendingSend, asyncio.Future[Committed]]] = []
        self._task: asyncio.Task[None] | None = None
        self.commits = 0
        self.sends = 0
        # Told the duration of every successful commit (the server feeds a histogram).
        self.on_commit: Callable[[float], None] | None = None

    def submit(self, send: PendingSend) -> asyncio.Future[Committed]:
        """Queue a send; the future resolves once it is durably stored (in submission order)."""
        future: asyncio.Future[Committed] = asyncio.get_running_loop().create_future()
        self._queue.append((send, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="group-commit")
        return future

    async def _commit(self, sends: list[PendingSend]) -> list[Committed]:
        return await self.store.commit_sends(sends, self.limits, self.dedup_since())

    async def _run(self) -> None:
        while self._queue:
            batch = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
            started = time.perf_counter()
            try:
                results = await self._commit([send for send, _ in batch])
            except Exception:
                await self._one_by_one(batch)
                continue
            self.commits += 1
            self.sends += len(batch)
            if self.on_commit is not None:
                self.on_commit(time.perf_counter() - started)
            for (_, future), outcome in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(outcome)

    async def _one_by_one(self, batch: list[tuple[PendingSend, asyncio.Future[Committed]]]) -> None:
        for send, future in batch:
            try:
                [outcome] = await self._commit([send])
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
                continue
            self.commits += 1
            self.sends += 1
            if not future.done():
                future.set_result(outcome)

    async def drain(self) -> None:
        """Wait until every submitted send is stored (graceful shutdown)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
