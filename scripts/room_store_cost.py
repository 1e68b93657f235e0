"""What the store writes for one room message: stored once (a sender-key send) against the
per-device fan-out of before, on SQLite, for rooms of the given member counts.

    .venv/bin/python scripts/room_store_cost.py 2 50 1000

Prints the mean group-commit time of one 1,000-byte message and the rows and bytes it adds.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from securechat.domain.mailbox import NO_LIMITS
from securechat.domain.model import (
    Conversation,
    ConversationKind,
    DeviceRef,
    OutgoingCiphertext,
    PendingSend,
    Role,
    RoomPost,
)
from securechat.storage.sqlite import SqliteStore

ROUNDS = 50
BODY = bytes(1000)


async def measure(members: int) -> str:
    with tempfile.TemporaryDirectory() as folder:
        store = SqliteStore(Path(folder) / "cost.db")
        await store.open()
        try:
            names = [f"u{i:04d}" for i in range(members)]
            for name in names:
                await store.create_user(name, b"h", Role.USER, 1)
                await store.add_device(name, 1)
            await store.create_room("r", None, names[0], 1)
            for name in names[1:]:
                await store.add_member("r", name, 1)
            sender = DeviceRef(names[0], 1)
            started = time.perf_counter()
            for i in range(ROUNDS):
                post = PendingSend(f"a{i}", sender, 2, (), room_post=RoomPost("r", BODY))
                await store.commit_sends([post], NO_LIMITS, 0)
            once = (time.perf_counter() - started) / ROUNDS
            room = Conversation(ConversationKind.ROOM, "r")
            items = tuple(OutgoingCiphertext(DeviceRef(n, 1), BODY, room) for n in names[1:])
            started = time.perf_counter()
            for i in range(ROUNDS):
                await store.commit_sends([PendingSend(f"b{i}", sender, 2, items)], NO_LIMITS, 0)
            fan_out = (time.perf_counter() - started) / ROUNDS
        finally:
            await store.close()
    copies = members - 1
    return (
        f"{members} members: stored once {once * 1000:.2f} ms (1 row, {len(BODY)} B); "
        f"per-device {fan_out * 1000:.2f} ms ({copies} rows, {copies * len(BODY)} B)"
    )


def main() -> None:
    for members in [int(arg) for arg in sys.argv[1:]] or [2, 50, 1000]:
        print(asyncio.run(measure(members)))


if __name__ == "__main__":
    main()
