"""The password hasher's fair queue with real bcrypt: a full lane refuses at once with a
retry-after (no unbounded wait), one account's hashes run one at a time, a caller that gives up
frees its place."""

from __future__ import annotations

import asyncio

import bcrypt
import pytest

from securechat.errors import ResourceExhausted
from securechat.services.passwords import HashTicket, PasswordHasher

COST = 10  # tens of milliseconds: long enough to queue behind


@pytest.fixture
def hashed() -> bytes:
    return bcrypt.hashpw(b"right password", bcrypt.gensalt(COST))


async def test_a_full_queue_refuses_with_retry_after(hashed: bytes) -> None:
    hasher = PasswordHasher(COST, 1, queue_bound=2, per_source=2, per_account=2)
    try:
        checks = [
            asyncio.create_task(hasher.check(b"x", hashed, HashTicket(f"u{i}", f"s{i}")))
            for i in range(3)  # one runs, two wait
        ]
        await asyncio.sleep(0)
        with pytest.raises(ResourceExhausted) as info:
            await hasher.check(b"x", hashed, HashTicket("late", "elsewhere"))
        assert info.value.retry_after is not None and info.value.retry_after >= 1
        # The allow-listed lane is separate: a known login still gets in.
        assert await hasher.check(b"right password", hashed, HashTicket("k", "home", known=True))
        assert await asyncio.gather(*checks) == [False, False, False]
        assert hasher.refused == 1 and hasher.in_flight == 0 and hasher.waiting == 0
    finally:
        hasher.close()


async def test_one_account_hashes_one_at_a_time(hashed: bytes) -> None:
    hasher = PasswordHasher(COST, 2, queue_bound=10, per_source=10, per_account=10)
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, hasher.in_flight)
            await asyncio.sleep(0.001)

    watcher = asyncio.create_task(watch())
    try:
        await asyncio.gather(
            *(hasher.check(b"x", hashed, HashTicket("same", f"s{i}")) for i in range(4))
        )
        assert peak == 1  # two workers, but one account: never two of its hashes at once
    finally:
        watcher.cancel()
        hasher.close()


async def test_a_caller_that_gives_up_frees_its_place(hashed: bytes) -> None:
    hasher = PasswordHasher(COST, 1, queue_bound=1, per_source=1, per_account=1)
    try:
        running = asyncio.create_task(hasher.check(b"x", hashed, HashTicket("a", "s1")))
        await asyncio.sleep(0)
        waiting = asyncio.create_task(hasher.check(b"x", hashed, HashTicket("b", "s2")))
        await asyncio.sleep(0)
        assert hasher.waiting == 1
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert hasher.waiting == 0
        assert not await hasher.check(b"x", hashed, HashTicket("c", "s3"))
        await running
    finally:
        hasher.close()
