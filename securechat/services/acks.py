"""Per-device marks written together, one transaction per round and no delay: acknowledgements
and last-seen times.

An ack only deletes what a client has processed; losing one in a crash means a re-delivery
that the client drops by message id. A last-seen time is informational. So neither needs to be
written one by one, and coalescing them keeps the single SQLite writer free for the group commit
of sends (and makes a reconnect storm a handful of writes).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

from securechat.domain.mailbox import ACK_ROWS_PER_TRANSACTION
from securechat.domain.model import DeviceRef
from securechat.storage.port import Store

log = logging.getLogger("securechat.acks")

K = TypeVar("K", bound=Hashable)
# Writes a round's marks; returns the marks it left for the next round (None: none).
Write = Callable[[Sequence[tuple[K, int]]], Awaitable[Sequence[tuple[K, int]] | None]]
# Acks: at most one round per this many seconds. The first ack after a quiet spell is written at
# once; while acks keep coming (each client acks every 50 ms) they wait for the next round
# instead of each starting a write transaction: at 10 clients x 2 msg/s that was ~70 ack
# transactions a second beside 20 group commits, all queued on SQLite's single writer.
ACK_ROUND_S = 0.1


class Coalesced(Generic[K]):
    """The highest mark recorded per key (a device, or a device's room) since the last round,
    written by one task."""

    what = "marks"  # for the log
    task_name = "mark-batch"

    def __init__(self, write: Write[K], interval_s: float = 0.0) -> None:
        self._write = write
        self.interval_s = interval_s
        self._last_round = -interval_s  # when the last round started (loop time)
        self._pending: dict[K, int] = {}
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0

    def _record(self, device: K, mark: int) -> None:
        if mark > self._pending.get(device, 0):
            self._pending[device] = mark
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=self.task_name)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            rest = self._last_round + self.interval_s - loop.time()
            if rest > 0:
                await asyncio.sleep(rest)  # what arrives meanwhile joins this round
            self._last_round = loop.time()
            batch, self._pending = self._pending, {}
            try:
                left = await self._write(list(batch.items()))
            except Exception:
                log.warning("could not store %d %s", len(batch), self.what)
                left = None
            self.rounds += 1
            for key, mark in left or ():
                self._record(key, mark)  # the next round's, with what arrives meanwhile

    async def drain(self) -> None:
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)


class AckBatcher(Coalesced[DeviceRef]):
    """Acks of every stream (a lost one means a redelivery the client drops by message id).
    A round deletes at most ``round_rows`` mailbox entries: the rest of a big ack (a device
    that acks a whole mailbox at once) waits for the next rounds, so the sends' commits on the
    store's one writer never queue behind one long delete."""

    what = "acknowledgements (they will be redelivered)"
    task_name = "ack-batch"

    def __init__(
        self,
        store: Store,
        interval_s: float = ACK_ROUND_S,
        round_rows: int = ACK_ROWS_PER_TRANSACTION,
    ) -> None:
        async def write(marks: Sequence[tuple[DeviceRef, int]]) -> list[tuple[DeviceRef, int]]:
            return await store.ack_many(marks, round_rows)

        super().__init__(write, interval_s)

    def ack(self, device: DeviceRef, seq: int) -> None:
        """Record that ``device`` processed everything up to ``seq`` (validated by the caller)."""
        self._record(device, seq)


class RoomAckBatcher(Coalesced[tuple[DeviceRef, str]]):
    """Room positions acked on every stream, written together (Store.ack_rooms). A lost one
    means the room messages after the previous position are delivered again on reconnect,
    which the client drops by message id, like a lost mailbox ack."""

    what = "room acknowledgements (they will be redelivered)"
    task_name = "room-ack-batch"

    def __init__(self, store: Store, interval_s: float = ACK_ROUND_S) -> None:
        async def write(marks: Sequence[tuple[tuple[DeviceRef, str], int]]) -> None:
            await store.ack_rooms([(device, room, seq) for (device, room), seq in marks])

        super().__init__(write, interval_s)

    def ack(self, device: DeviceRef, room: str, room_seq: int) -> None:
        """``device`` processed ``room`` up to ``room_seq`` (validated by the caller)."""
        self._record((device, room), room_seq)


class LastSeen(Coalesced[DeviceRef]):
    """When each device was last seen: at login, when its stream opens and when it closes
    (never per message). ``Device.last_seen_ms``, shown by ListDevices."""

    what = "last-seen times"
    task_name = "last-seen-batch"

    def __init__(self, store: Store) -> None:
        super().__init__(store.touch_devices)

    def seen(self, device: DeviceRef, now_ms: int) -> None:
        self._record(device, now_ms)
