"""The waiting room of password hashing: bounded, fair between sources and accounts.

Every bcrypt computation (a login, a registration, a room password) waits here for a worker.
A job names the account it is for, the source it comes from (domain/sources.py) and its lane:

- the *known* lane: a login of an account from a source it logged in from before (the NIST
  SP 800-63B allow-list), and nothing else; served first, but every ``OTHER_SHARE``-th pick
  goes to the other lane when both wait, so neither can starve the other;
- the *other* lane: everything else.

Each lane holds at most ``capacity`` waiting jobs, a source at most ``per_source`` of them and an
account at most ``per_account``; a job over a bound is refused at once (the caller answers
RESOURCE_EXHAUSTED with a retry-after) instead of waiting without end. Within a lane, sources take
turns (round robin), jobs of one source run in arrival order, and a job whose account or source
already has a hash running waits: at most one hash runs per account and per source.

Pure data structure: no clock, no threads, no asyncio (services/passwords.py drives it).
"""

from __future__ import annotations

import enum
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

OTHER_SHARE = 4


class Lane(enum.IntEnum):
    KNOWN = 0
    OTHER = 1


class Refusal(enum.StrEnum):
    FULL = "the server is busy checking passwords"
    SOURCE = "too many password checks waiting from your address"
    ACCOUNT = "another login for this account is already waiting"


@dataclass(eq=False, slots=True)
class Job(Generic[T]):
    account: str
    source: str
    lane: Lane
    payload: T
    queued: bool = field(default=False)


class FairQueue(Generic[T]):
    def __init__(self, capacity: int, per_source: int, per_account: int) -> None:
        self.capacity = capacity
        self.per_source = per_source
        self.per_account = per_account
        # Per lane: source -> its waiting jobs; the dict's order is the round-robin order.
        self._lanes: tuple[OrderedDict[str, deque[Job[T]]], ...] = (OrderedDict(), OrderedDict())
        self._sizes = [0, 0]
        self._by_source: Counter[tuple[Lane, str]] = Counter()
        self._by_account: Counter[tuple[Lane, str]] = Counter()
        self._picks = 0

    def __len__(self) -> int:
        return self._sizes[0] + self._sizes[1]

    def waiting(self, lane: Lane) -> int:
        return self._sizes[lane]

    def push(self, job: Job[T]) -> Refusal | None:
        """Queue the job, or say why not (nothing changes then)."""
        lane = job.lane
        if self._sizes[lane] >= self.capacity:
            return Refusal.FULL
        if self._by_source[lane, job.source] >= self.per_source:
            return Refusal.SOURCE
        if job.account and self._by_account[lane, job.account] >= self.per_account:
            return Refusal.ACCOUNT
        self._lanes[lane].setdefault(job.source, deque()).append(job)
        self._sizes[lane] += 1
        self._by_source[lane, job.source] += 1
        self._by_account[lane, job.account] += 1
        job.queued = True
        return None

    def pop(self, busy_accounts: Counter[str], busy_sources: Counter[str]) -> Job[T] | None:
        """The next job to run: none of its account's or source's hashes is running."""
        self._picks += 1
        order = (Lane.KNOWN, Lane.OTHER)
        if self._picks % OTHER_SHARE == 0:
            order = (Lane.OTHER, Lane.KNOWN)
        for lane in order:
            job = self._pop_lane(lane, busy_accounts, busy_sources)
            if job is not None:
                return job
        return None

    def _pop_lane(
        self, lane: Lane, busy_accounts: Counter[str], busy_sources: Counter[str]
    ) -> Job[T] | None:
        sources = self._lanes[lane]
        for source, jobs in sources.items():
            if busy_sources[source]:
                continue
            for job in jobs:
                if job.account and busy_accounts[job.account]:
                    continue
                self._remove(job, jobs)
                if source in sources:
                    sources.move_to_end(source)  # its turn is used: the others go first
                return job
        return None

    def discard(self, job: Job[T]) -> bool:
        """Forget a waiting job (its caller gave up). False when it is not waiting."""
        if not job.queued:
            return False
        jobs = self._lanes[job.lane].get(job.source)
        if jobs is None:  # pragma: no cover - a queued job is always in its source's deque
            return False
        self._remove(job, jobs)
        return True

    def _remove(self, job: Job[T], jobs: deque[Job[T]]) -> None:
        lane = job.lane
        jobs.remove(job)
        if not jobs:
            del self._lanes[lane][job.source]
        self._sizes[lane] -= 1
        self._decrement(self._by_source, (lane, job.source))
        self._decrement(self._by_account, (lane, job.account))
        job.queued = False

    @staticmethod
    def _decrement(counter: Counter[tuple[Lane, str]], key: tuple[Lane, str]) -> None:
        counter[key] -= 1
        if counter[key] <= 0:
            del counter[key]
