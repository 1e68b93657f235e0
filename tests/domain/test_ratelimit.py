"""Rate limits with an explicit clock: the send token bucket and the login failure throttle."""

from __future__ import annotations

import pytest

from securechat.domain.ratelimit import FailureThrottle, KeyedBuckets, TokenBucket


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
