"""The client's prekey checks: throttled (no poll per message), and a drain is told apart."""

from __future__ import annotations

from securechat.client.upkeep import DRAIN_ALERT, RefillWatch, Upkeep


def test_checks_are_throttled() -> None:
    watch = RefillWatch(interval=60.0)
    assert watch.due(0.0)
    assert not watch.due(1.0)
    assert not watch.due(59.9)
    assert watch.due(60.0)


def test_a_fast_fall_between_checks_is_a_drain_and_a_slow_one_is_not() -> None:
    watch = RefillWatch()
    assert watch.observe(Upkeep(one_time_left=100)) == 0
    assert watch.observe(Upkeep(one_time_left=95)) == 0  # five sessions started: normal
    drained = watch.observe(Upkeep(one_time_left=20, one_time_added=80))
    assert drained == 75 >= DRAIN_ALERT
    assert watch.observe(Upkeep(one_time_left=100)) == 0  # refilled to 100: nothing claimed
    assert watch.observe(Upkeep()) == 0  # not asked (publish only)
