"""Rate limits with an explicit clock: the send token bucket and the login failure throttle."""

from __future__ import annotations

import pytest

from securechat.domain.ratelimit import (
    FailureCounter,
    FailureThrottle,
    KeyedBuckets,
    RecentSet,
    TokenBucket,
    growing_delay,
)


def test_token_bucket_allows_a_burst_then_refills() -> None:
    bucket = TokenBucket.full(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)  # one token every 0.5 s
    assert bucket.take(0.5) == 0.0
    assert bucket.take(100.0) == 0.0
    assert bucket.tokens == pytest.approx(2.0)  # capped at the burst


def test_a_clock_going_backwards_does_not_mint_tokens() -> None:
    bucket = TokenBucket.full(rate=1.0, burst=1, now=10.0)
    assert bucket.take(10.0) == 0.0
    assert bucket.take(5.0) > 0.0


def test_keyed_buckets_are_independent_and_bounded() -> None:
    buckets = KeyedBuckets(rate=1.0, burst=1, max_keys=2)
    assert buckets.take("a", 0.0) == 0.0
    assert buckets.take("a", 0.0) > 0.0
    assert buckets.take("b", 0.0) == 0.0
    buckets.take("c", 0.0)  # evicts the least recently used key ("a")
    assert buckets.take("a", 0.0) == 0.0


def test_failures_slow_down_then_lock_then_expire() -> None:
    throttle = FailureThrottle(limit=4, window=60.0, lockout=30.0)
    assert throttle.delay("u", 0.0) == 0.0
    throttle.fail("u", 0.0)
    throttle.fail("u", 1.0)
    assert throttle.delay("u", 1.0) == 0.0  # up to half the limit: no slow-down
    throttle.fail("u", 2.0)
    assert throttle.delay("u", 2.0) == pytest.approx(0.25)
    assert throttle.retry_after("u", 2.0) == 0.0
    throttle.fail("u", 3.0)  # the limit: locked
    assert throttle.retry_after("u", 3.0) == pytest.approx(30.0)
    assert throttle.retry_after("u", 20.0) == pytest.approx(13.0)
    assert throttle.retry_after("other", 20.0) == 0.0
    assert throttle.retry_after("u", 33.0) == 0.0


def test_failures_outside_the_window_are_forgotten() -> None:
    throttle = FailureThrottle(limit=2, window=10.0, lockout=30.0)
    throttle.fail("u", 0.0)
    throttle.fail("u", 11.0)  # the first failure has left the window
    assert throttle.retry_after("u", 11.0) == 0.0
    throttle.fail("u", 12.0)
    assert throttle.retry_after("u", 12.0) == pytest.approx(30.0)


def test_success_clears_the_count() -> None:
    throttle = FailureThrottle(limit=2, window=60.0, lockout=30.0)
    throttle.fail("u", 0.0)
    throttle.succeed("u")
    throttle.fail("u", 1.0)
    assert throttle.retry_after("u", 1.0) == 0.0


def test_delay_is_capped() -> None:
    throttle = FailureThrottle(limit=100, window=1000.0, lockout=30.0)
    for i in range(99):
        throttle.fail("u", float(i))
    assert throttle.delay("u", 99.0) == 2.0


def test_growing_delay_starts_after_the_free_failures_and_is_capped() -> None:
    assert [growing_delay(n, 3, 10.0) for n in range(0, 9)] == [
        0.0, 0.0, 0.0, 0.0, 0.5, 1.0, 2.0, 4.0, 8.0
    ]  # fmt: skip
    assert growing_delay(50, 3, 10.0) == 10.0
    assert growing_delay(10**6, 0, 1.0) == 1.0


def test_failure_counter_counts_consecutive_failures_in_a_window() -> None:
    counter = FailureCounter(window=60.0)
    assert counter.fail("a", 0.0) == 1
    assert counter.fail("a", 50.0) == 2
    assert counter.count("a", 100.0) == 2  # the window runs from the last failure
    assert counter.retry_after("a", 100.0) == pytest.approx(10.0)
    assert counter.count("a", 111.0) == 0
    counter.fail("a", 200.0)
    counter.succeed("a")
    assert counter.count("a", 200.0) == 0


def test_recent_set_forgets_after_its_ttl_and_stays_bounded() -> None:
    seen = RecentSet(ttl=10.0, max_keys=2)
    seen.add("a", 0.0)
    assert seen.recent("a", 10.0)
    assert not seen.recent("a", 10.1)
    for key in ("x", "y", "z"):
        seen.add(key, 20.0)
    assert not seen.recent("x", 20.0)  # the oldest went first
    assert seen.recent("z", 20.0)


def test_bucket_wait_takes_nothing() -> None:
    buckets = KeyedBuckets(rate=1.0, burst=1.0)
    assert buckets.wait("k", 0.0) == 0.0
    assert buckets.take("k", 0.0) == 0.0
    assert buckets.wait("k", 0.5) == pytest.approx(0.5)
    assert buckets.wait("k", 0.5) == pytest.approx(0.5)
    assert buckets.take("k", 1.0) == 0.0
