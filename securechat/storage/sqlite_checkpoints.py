"""SQLite WAL checkpoints off the commit path.

In WAL mode a commit appends pages to the log, and a checkpoint copies them back into the
database file and syncs it. By default SQLite runs that checkpoint inside whichever commit takes
the log past 1,000 pages, so now and then one send's COMMIT also copies the whole log and waits
for a second sync: the send and every send queued behind it on the one writer wait with it.
Measured under the bench's 10 × 2 signed room (docs/performance.md, stop 25): COMMITs of 24-81 ms
among ~1 ms ones, each a stall of every send in flight; with the automatic checkpoint off, none.

So every connection of the store sets ``wal_autocheckpoint = 0`` and this task checkpoints
instead, every ``every_s`` seconds, on its own connection and thread. A PASSIVE checkpoint takes
no lock that writers or readers wait for: commits go on appending to the log while it copies what
is already there, and once everything is copied the next writer starts the log over, so it stays
as small as before. A checkpoint that fails is logged and retried at the next tick; durability is
the commit's own sync of the log (``synchronous``), which this does not change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("securechat.storage")

CHECKPOINT_EVERY_S = 1.0
NO_AUTOCHECKPOINT = "PRAGMA wal_autocheckpoint = 0"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What one ``PRAGMA wal_checkpoint(PASSIVE)`` reported."""

    busy: bool  # another checkpoint was running: nothing done
    log_pages: int  # pages in the log
    copied_pages: int  # of them, in the database file now


class WalCheckpointer:
    def __init__(
        self, path: Path, pragmas: Sequence[str], every_s: float = CHECKPOINT_EVERY_S
    ) -> None:
        self.path = path
        self.pragmas = pragmas
        self.every_s = every_s
        self.checkpoints = 0  # checkpoints that copied pages
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-checkpoint")
        self._conn: sqlite3.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="sqlite-checkpoints"
            )

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            try:
                await self.checkpoint()
            except sqlite3.Error as exc:
                log.warning("WAL checkpoint failed (retried in %.0f s): %s", self.every_s, exc)

    async def checkpoint(self) -> Checkpoint:
        """One PASSIVE checkpoint now, on the checkpointer's thread."""
        done = await asyncio.get_running_loop().run_in_executor(self._thread, self._checkpoint)
        if done.copied_pages and not done.busy:
            self.checkpoints += 1
        return done

    def _checkpoint(self) -> Checkpoint:
        if self._conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            for pragma in self.pragmas:
                conn.execute(pragma)
            self._conn = conn
        busy, log_pages, copied = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return Checkpoint(bool(busy), int(log_pages), int(copied))

    async def stop(self) -> None:
        """Stop checkpointing and close the connection (SQLite checkpoints the log when the
        last connection closes)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._thread, shut)
