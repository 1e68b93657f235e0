"""Rate limits as pure state machines: token buckets (sends, logins, registrations, claims),
failure throttles and counters (logins, room passwords), growing delays and a bounded memory of
recent successes (the login allow-list).

The clock is passed in (monotonic seconds), so tests control time.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    rate: float  # tokens per second
    burst: float
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate: float, burst: float, now: float) -> TokenBucket:
        return cls(rate, burst, burst, now)

    def take(self, now: float, cost: float = 1.0) -> float:
        """Take ``cost`` tokens. Returns 0.0 when allowed, else the seconds to wait."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        self.updated = now
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.rate

    def wait(self, now: float, cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens are there (0.0: now), taking nothing."""
        elapsed = max(0.0, now - self.updated)
        tokens = min(self.burst, self.tokens + elapsed * self.rate)
        return 0.0 if tokens >= cost else (cost - tokens) / self.rate


class KeyedBuckets:
    """One token bucket per key (user), bounded in memory (least recently used evicted)."""

    def __init__(self, rate: float, burst: float, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, key: str, now: float, cost: float = 1.0) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket.full(self.rate, self.burst, now)
            self._buckets[key] = bucket
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now, cost)

    def wait(self, key: str, now: float, cost: float = 1.0) -> float:
        """Seconds until ``key`` may take ``cost`` (0.0: now), taking nothing."""
        bucket = self._buckets.get(key)
        return 0.0 if bucket is None else bucket.wait(now, cost)


@dataclass(slots=True)
class _Failures:
    count: int
    first: float
    locked_until: float


class FailureThrottle:
    """Counts failures per key in a window; past ``limit`` the key is locked for ``lockout``.

    Before the lock, each failure beyond half the limit adds a growing delay (slow down, then
    lock), returned by ``delay``.
    """

    def __init__(self, limit: int, window: float, lockout: float, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.lockout = lockout
        self.max_keys = max_keys
        self._state: OrderedDict[str, _Failures] = OrderedDict()

    def retry_after(self, key: str, now: float) -> float:
        """Seconds until the key may try again (0 when not locked)."""
        state = self._state.get(key)
        if state is None:
            return 0.0
        if state.locked_until > now:
            return state.locked_until - now
        if now - state.first > self.window:
            del self._state[key]
        return 0.0

    def delay(self, key: str, now: float) -> float:
        """Seconds to stall the next attempt (slow-down before lockout)."""
        state = self._state.get(key)
        if state is None or now - state.first > self.window:
            return 0.0
        over = state.count - self.limit // 2
        return min(2.0, 0.25 * (2 ** (over - 1))) if over > 0 else 0.0

    def fail(self, key: str, now: float) -> None:
        state = self._state.get(key)
        if state is None or (now - state.first > self.window and state.locked_until <= now):
            state = _Failures(0, now, 0.0)
            self._state[key] = state
            if len(self._state) > self.max_keys:
                self._state.popitem(last=False)
        state.count += 1
        if state.count >= self.limit:
            state.locked_until = now + self.lockout
            state.count = 0
            state.first = now

    def succeed(self, key: str) -> None:
        self._state.pop(key, None)


def growing_delay(failures: int, free: int, cap: float, base: float = 0.5) -> float:
    """No delay for the first ``free`` failures, then ``base`` seconds doubling per failure,
    never more than ``cap``."""
    over = failures - free
    if over <= 0:
        return 0.0
    return min(cap, base * 2.0 ** min(over - 1, 32))


class FailureCounter:
    """Consecutive failures per key; a key's count starts again once ``window`` seconds passed
    since its last failure, or on success. Never locks anything: callers decide what a count
    means (a delay, an allow-list-only mode)."""

    def __init__(self, window: float, max_keys: int = 100_000) -> None:
        self.window = window
        self.max_keys = max_keys
        self._state: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def count(self, key: str, now: float) -> int:
        state = self._state.get(key)
        if state is None:
            return 0
        if now - state[1] > self.window:
            del self._state[key]
            return 0
        return state[0]

    def retry_after(self, key: str, now: float) -> float:
        """Seconds until the key's count starts again (0.0 when it has none)."""
        state = self._state.get(key)
        return 0.0 if state is None else max(0.0, state[1] + self.window - now)

    def fail(self, key: str, now: float) -> int:
        count = self.count(key, now) + 1
        self._state[key] = (count, now)
        self._state.move_to_end(key)
        if len(self._state) > self.max_keys:
            self._state.popitem(last=False)
        return count

    def succeed(self, key: str) -> None:
        self._state.pop(key, None)


class RecentSet:
    """Keys seen recently (within ``ttl`` seconds), bounded in memory (oldest dropped)."""

    def __init__(self, ttl: float, max_keys: int = 100_000) -> None:
        self.ttl = ttl
        self.max_keys = max_keys
        self._seen: OrderedDict[str, float] = OrderedDict()

    def add(self, key: str, now: float) -> None:
        self._seen[key] = now
        self._seen.move_to_end(key)
        if len(self._seen) > self.max_keys:
            self._seen.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        return key in self._seen

    def recent(self, key: str, now: float) -> bool:
        seen = self._seen.get(key)
        if seen is None:
            return False
        if now - seen > self.ttl:
            del self._seen[key]
            return False
        return True

    def discard(self, key: str) -> None:
        self._seen.pop(key, None)
