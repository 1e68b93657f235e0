"""How long trimming a room log takes: ROWS acknowledged room messages (1,000 bytes each) in one
room of MEMBERS members, deleted by one trim_room_logs call with the housekeeping's batch and
budget, on SQLite (a temporary file) and, when reachable, PostgreSQL (a scratch database made
on the server at 127.0.0.1:5432 and dropped after).

    .venv/bin/python scripts/room_trim_cost.py [ROWS] [MEMBERS]

Prints, per store: the time of the trim that deletes every row, of the next trim (nothing left
to delete: the idle cost of one housekeeping round for that room), and of a round after ROWS
more messages that every member but one acked (the one lagging member holds them all).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

from securechat.domain.mailbox import NO_LIMITS
from securechat.domain.model import DeviceRef, PendingSend, Role, RoomPost
from securechat.node import ROOM_TRIM_BATCH, ROOM_TRIM_BUDGET
from securechat.storage.port import Store
from securechat.storage.postgres import PostgresStore
from securechat.storage.sqlite import SqliteStore

BODY = bytes(1000)
PG = "postgresql://postgres@127.0.0.1:5432"


async def fill(store: Store, rows: int, members: int) -> None:
    names = [f"u{i:04d}" for i in range(members)]
    for name in names:
        await store.create_user(name, b"h", Role.USER, 1)
        await store.add_device(name, 1)
    await store.create_room("r", None, names[0], 1)
    for name in names[1:]:
        await store.add_member("r", name, 1)
    sender = DeviceRef(names[0], 1)
    for start in range(0, rows, 500):
        sends = [
            PendingSend(f"m{i}", sender, 2, (), room_post=RoomPost("r", BODY))
            for i in range(start, min(rows, start + 500))
        ]
        await store.commit_sends(sends, NO_LIMITS, 0)
    await store.ack_rooms([(DeviceRef(name, 1), "r", rows) for name in names[1:]])


async def fill_more(store: Store, rows: int, members: int) -> None:
    """ROWS more messages, acked by every member but the last."""
    sender = DeviceRef("u0000", 1)
    for start in range(rows, 2 * rows, 500):
        sends = [
            PendingSend(f"m{i}", sender, 2, (), room_post=RoomPost("r", BODY))
            for i in range(start, min(2 * rows, start + 500))
        ]
        await store.commit_sends(sends, NO_LIMITS, 0)
    acks = [(DeviceRef(f"u{i:04d}", 1), "r", 2 * rows) for i in range(1, members - 1)]
    await store.ack_rooms(acks)


async def measure(label: str, store: Store, rows: int, members: int) -> str:
    await store.open()
    try:
        await fill(store, rows, members)
        started = time.perf_counter()
        deleted = await store.trim_room_logs(ROOM_TRIM_BATCH, ROOM_TRIM_BUDGET)
        trim = time.perf_counter() - started
        started = time.perf_counter()
        again = await store.trim_room_logs(ROOM_TRIM_BATCH, ROOM_TRIM_BUDGET)
        idle = time.perf_counter() - started
        assert (deleted, again) == (rows, 0), (deleted, again)
        assert await store.fetch_room("r", 0, 10) == []
        await fill_more(store, rows, members)
        started = time.perf_counter()
        held = await store.trim_room_logs(ROOM_TRIM_BATCH, ROOM_TRIM_BUDGET)
        lagging = time.perf_counter() - started
        assert held == 0, held
    finally:
        await store.close()
    return (
        f"{label}: trimmed {deleted} rows ({members} members, batch {ROOM_TRIM_BATCH}) in "
        f"{trim * 1000:.0f} ms ({deleted / trim:,.0f} rows/s); next round {idle * 1000:.1f} ms; "
        f"a round with one member {rows} behind {lagging * 1000:.1f} ms"
    )


async def postgres(rows: int, members: int) -> str:
    name = f"sc_trim_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(f"{PG}/postgres", timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"PostgreSQL: not reachable ({exc})"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            return await measure("PostgreSQL", PostgresStore(f"{PG}/{name}"), rows, members)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def main(rows: int, members: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        print(await measure("SQLite", SqliteStore(Path(folder) / "trim.db"), rows, members))
    print(await postgres(rows, members))


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    asyncio.run(main(*(args + [10_000, 50][len(args) :])))
