"""How long one ack holds SQLite's single writer: ENTRIES mailbox entries (300 random bytes each)
of one device, acked at once through the ack round's ``Store.ack_many``, with and without the
per-transaction limit (a temporary file, synchronous=FULL as the server runs it).

    .venv/bin/python scripts/ack_delete_cost.py [ENTRIES ...]

Prints, per size and limit (3 runs each): how many transactions the ack took, the longest of
them (what a send's commit may wait behind) and their total.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from securechat.domain.mailbox import ACK_ROWS_PER_TRANSACTION
from securechat.domain.model import (
    Conversation,
    ConversationKind,
    DeviceRef,
    OutgoingCiphertext,
    PendingSend,
    Role,
)
from securechat.storage.sqlite import SqliteStore

ROOM = Conversation(ConversationKind.ROOM, "lobby")
FILL_BATCH = 500


async def fill(store: SqliteStore, sender: DeviceRef, to: DeviceRef, entries: int) -> None:
    for start in range(0, entries, FILL_BATCH):
        await store.enqueue_batch(
            [
                PendingSend(
                    os.urandom(8).hex(), sender, 1, (OutgoingCiphertext(to, os.urandom(300), ROOM),)
                )
                for _ in range(min(FILL_BATCH, entries - start))
            ]
        )


async def main(sizes: list[int]) -> None:
    with tempfile.TemporaryDirectory(prefix="securechat-ack-") as tmp:
        store = SqliteStore(Path(tmp) / "chat.db")
        await store.open()
        for user in ("alice", "bob"):
            await store.create_user(user, b"h", Role.USER, 1)
        alice = DeviceRef("alice", await store.add_device("alice", 1))
        bob = DeviceRef("bob", await store.add_device("bob", 1))
        for entries in sizes:
            for limit in (0, ACK_ROWS_PER_TRANSACTION):
                for _ in range(3):
                    await fill(store, alice, bob, entries)
                    rest = [(bob, await store.last_seq(bob))]
                    times: list[float] = []
                    while rest:
                        started = time.perf_counter()
                        rest = await store.ack_many(rest, limit)
                        times.append((time.perf_counter() - started) * 1000)
                    print(
                        f"{entries} entries, limit {limit or 'none'}: {len(times)} transactions,"
                        f" longest {max(times):.1f} ms, total {sum(times):.1f} ms",
                        flush=True,
                    )
        await store.close()


if __name__ == "__main__":
    asyncio.run(main([int(a) for a in sys.argv[1:]] or [50, 2000, 20000]))
