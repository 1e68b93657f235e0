"""bcrypt off the event loop, on a few worker threads fed by a bounded, fair queue.

Every hash names who it is for (:class:`HashTicket`: account, source, lane). The queue
(domain/fairqueue.py) lets at most one hash run per account and per source, serves sources in
turn and a known (allow-listed) login first, and refuses work past its bounds with
ResourceExhausted and a retry-after, so one account or many addresses flooding logins cannot
make an honest login wait without end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import bcrypt

from securechat.domain.fairqueue import FairQueue, Job, Lane
from securechat.errors import ResourceExhausted

BCRYPT_NICENESS = 10


def _yield_to_chat() -> None:
    """Run bcrypt threads at a lower priority (Linux: per-thread nice), so that during a login
    storm the scheduler prefers the event loop thread: logins slow down, chat does not."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BCRYPT_NICENESS)


@dataclass(frozen=True, slots=True)
class HashTicket:
    """Who a hash is for: limits count the account and the source; ``known`` puts a login from
    an allow-listed (account, source) pair in the first lane."""

    account: str
    source: str
    known: bool = False

    @property
    def lane(self) -> Lane:
        return Lane.KNOWN if self.known else Lane.OTHER


#: For the server's own hashes (the bootstrap admin at start-up).
SYSTEM = HashTicket("", "system")


@dataclass(eq=False, slots=True)
class _Work:
    fn: Callable[..., object]
    args: tuple[bytes, ...]
    result: asyncio.Future[object]


class PasswordHasher:
    """Hashes and checks passwords off the event loop, at most ``workers`` at once."""

    def __init__(
        self,
        cost: int,
        workers: int,
        *,
        queue_bound: int = 64,
        per_source: int = 32,
        per_account: int = 2,
    ) -> None:
        self.cost = cost
        self.workers = workers
        self._pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="bcrypt", initializer=_yield_to_chat
        )
        self._queue: FairQueue[_Work] = FairQueue(queue_bound, per_source, per_account)
        self._busy_accounts: Counter[str] = Counter()
        self._busy_sources: Counter[str] = Counter()
        # A real hash at the same cost, checked for unknown users so they cost the same time.
        self._dummy = bcrypt.hashpw(b"securechat-dummy-password", bcrypt.gensalt(cost))
        self.in_flight = 0
        self.refused = 0
        self._seconds = 0.05 * 2 ** max(0, cost - 10)  # a first guess, then a moving average

    @property
    def waiting(self) -> int:
        return len(self._queue)

    async def _run(self, ticket: HashTicket, fn: Callable[..., object], *args: bytes) -> object:
        loop = asyncio.get_running_loop()
        job = Job(ticket.account, ticket.source, ticket.lane, _Work(fn, args, loop.create_future()))
        refusal = self._queue.push(job)
        if refusal is not None:
            self.refused += 1
            raise ResourceExhausted(f"{refusal}: try again shortly", retry_after=self._eta(job))
        self._dispatch()
        try:
            return await asyncio.shield(job.payload.result)
        except asyncio.CancelledError:
            self._queue.discard(job)  # gave up while waiting: the hash never runs
            raise

    def _eta(self, job: Job[_Work]) -> float:
        ahead = self._queue.waiting(job.lane) + self.in_flight
        return float(max(1.0, ahead * self._seconds / self.workers))

    def _dispatch(self) -> None:
        while self.in_flight < self.workers:
            job = self._queue.pop(self._busy_accounts, self._busy_sources)
            if job is None:
                return
            self._start(job)

    def _start(self, job: Job[_Work]) -> None:
        loop = asyncio.get_running_loop()
        self.in_flight += 1
        self._busy_accounts[job.account] += 1
        self._busy_sources[job.source] += 1
        started = loop.time()
        work = job.payload
        future = self._pool.submit(work.fn, *work.args)

        def finished(done: Future[object]) -> None:
            self.in_flight -= 1
            for busy, key in ((self._busy_accounts, job.account), (self._busy_sources, job.source)):
                busy[key] -= 1
                if busy[key] <= 0:
                    del busy[key]
            self._seconds = 0.8 * self._seconds + 0.2 * (loop.time() - started)
            if done.cancelled():  # the pool shut down
                work.result.cancel()
            elif not work.result.done():
                error = done.exception()
                if error is not None:
                    work.result.set_exception(error)
                else:
                    work.result.set_result(done.result())
            self._dispatch()

        def wake(done: Future[object]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(finished, done)

        future.add_done_callback(wake)

    async def hash(self, password: bytes, ticket: HashTicket = SYSTEM) -> bytes:
        salt = bcrypt.gensalt(self.cost)
        result = await self._run(ticket, bcrypt.hashpw, password, salt)
        assert isinstance(result, bytes)
        return result

    async def check(
        self, password: bytes, hashed: bytes | None, ticket: HashTicket = SYSTEM
    ) -> bool:
        """True when the password matches; with ``hashed=None`` burns the same time, False."""
        target = self._dummy if hashed is None else hashed
        ok = await self._run(ticket, bcrypt.checkpw, password, target)
        return bool(ok) and hashed is not None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
