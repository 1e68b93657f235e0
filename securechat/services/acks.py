"""Acknowledgements of every stream, written together: one transaction per round, no delay.

An ack only deletes what a client has processed; losing one in a crash means a re-delivery
that the client drops by message id. So acks need not be written one by one, and coalescing
them keeps the single SQLite writer free for the group commit of sends.
"""

from __future__ import annotations

import asyncio
import logging

from securechat.domain.model import DeviceRef
from securechat.storage.port import Store

log = logging.getLogger("securechat.acks")


class AckBatcher:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending: dict[DeviceRef, int] = {}
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0

    def ack(self, device: DeviceRef, seq: int) -> None:
        """Record that ``device`` processed everything up to ``seq`` (validated by the caller)."""
        if seq > self._pending.get(device, 0):
            self._pending[device] = seq
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="ack-batch")

    async def _run(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, {}
            try:
                await self.store.ack_many(list(batch.items()))
            except Exception:
                # Not fatal: the entries stay in the mailbox and are delivered again.
                log.warning("could not store %d acknowledgements; they will be redelivered",
                            len(batch))  # fmt: skip
            self.rounds += 1

    async def drain(self) -> None:
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
