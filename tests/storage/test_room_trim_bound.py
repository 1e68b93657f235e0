"""The trim's bound (storage/room_trim.py), against a brute force over random logs."""

from __future__ import annotations

import random

from securechat.domain.model import DeviceRef
from securechat.storage.room_trim import Reader, trim_bound

Row = tuple[int, DeviceRef, int]  # (position, sender, sent_at_ms)


def _brute_force(log: list[Row], readers: list[Reader], head: int) -> int:
    needed = [
        seq
        for reader in readers
        for seq, sender, sent_at in log
        if seq > reader.floor and sender != reader.device and sent_at >= reader.created_at_ms
    ]
    return min(needed) - 1 if needed else head


async def _bound(
    log: list[Row], readers: list[Reader], head: int, window: int, lowest: int = 1
) -> tuple[int, int]:
    queries = 0

    async def first_needed(reader: Reader, after: int, upto: int) -> int | None:
        nonlocal queries
        queries += 1
        found = [
            seq
            for seq, sender, sent_at in log
            if after < seq <= upto and sender != reader.device and sent_at >= reader.created_at_ms
        ]
        return min(found, default=None)

    found = await trim_bound(readers, head, first_needed, lowest=lowest, window=window)
    return found, queries


async def test_the_bound_is_the_first_row_some_reader_needs() -> None:
    rng = random.Random(15)
    for _ in range(500):
        devices = [DeviceRef(f"u{i}", d) for i in range(rng.randint(1, 4)) for d in (1, 2)]
        head = rng.randint(0, 30)
        log = sorted(
            (seq, rng.choice(devices), seq * 10 + rng.randint(-15, 15))
            for seq in rng.sample(range(1, head + 1), rng.randint(0, head))
        )
        readers = [
            Reader(device, rng.randint(0, head), rng.randint(0, head * 10))
            for device in rng.sample(devices, rng.randint(0, len(devices)))
        ]
        expected = _brute_force(log, readers, head)
        lowest = log[0][0] if log else head + 1
        for window in (1, 3, 1000):
            assert (await _bound(log, readers, head, window))[0] == expected
            assert (await _bound(log, readers, head, window, lowest))[0] == expected


async def test_a_long_run_of_own_messages_is_not_read_through_while_another_reader_lags() -> None:
    alice, bob = DeviceRef("alice", 1), DeviceRef("bob", 1)
    log = [(seq, alice, seq) for seq in range(1, 20_001)]  # alice's own, all of them
    readers = [Reader(alice, 0, 0), Reader(bob, 0, 0)]
    assert await _bound(log[:5_000], readers, 5_000, 1000) == (0, 2)
    alone = [Reader(alice, 0, 0), Reader(bob, 20_000, 0)]
    assert await _bound(log, alone, 20_000, 1000) == (20_000, 20)
    trimmed = log[10_000:]  # rows 1-10,000 are gone: nothing to look through below them
    assert await _bound(trimmed, alone, 20_000, 1000, lowest=10_001) == (20_000, 10)
