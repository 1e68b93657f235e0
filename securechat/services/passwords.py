"""bcrypt hashing on a bounded thread pool, so logins never block the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import bcrypt

BCRYPT_NICENESS = 10


def _yield_to_chat() -> None:
    """Run bcrypt threads at a lower priority (Linux: per-thread nice), so that during a login
    storm the scheduler prefers the event loop thread: logins slow down, chat does not."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BCRYPT_NICENESS)


class PasswordHasher:
    """Hashes and checks passwords off the event loop.

    At most ``workers`` hashes run at once (bcrypt releases the GIL); further calls queue, so a
    login storm slows logins down instead of stalling chat for everyone else.
    """

    def __init__(self, cost: int, workers: int) -> None:
        self.cost = cost
        self._pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="bcrypt", initializer=_yield_to_chat
        )
        # A real hash at the same cost, checked for unknown users so they cost the same time.
        self._dummy = bcrypt.hashpw(b"securechat-dummy-password", bcrypt.gensalt(cost))
        self.in_flight = 0

    async def _run(self, fn: object, *args: bytes) -> object:
        loop = asyncio.get_running_loop()
        self.in_flight += 1
        try:
            return await loop.run_in_executor(self._pool, fn, *args)  # type: ignore[arg-type]
        finally:
            self.in_flight -= 1

    async def hash(self, password: bytes) -> bytes:
        salt = bcrypt.gensalt(self.cost)
        result = await self._run(bcrypt.hashpw, password, salt)
        assert isinstance(result, bytes)
        return result

    async def check(self, password: bytes, hashed: bytes | None) -> bool:
        """True when the password matches; with ``hashed=None`` burns the same time, False."""
        target = self._dummy if hashed is None else hashed
        ok = await self._run(bcrypt.checkpw, password, target)
        return bool(ok) and hashed is not None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
