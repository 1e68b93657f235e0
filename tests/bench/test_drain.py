"""Before a saturation search every load pool of the run is drained: the search before it (on
the same server) may have ended overloaded, and its backlog would be measured as this one's."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from securechat.bench import shapes
from securechat.bench.harness import Params
from securechat.bench.scenarios import best_drained
from securechat.bench.shapes import drain_all


class Pool:
    """A load pool whose members have received ``received`` of what ``sent`` asks for, more
    with every poll (``step``)."""

    def __init__(self, sent: int, received: int, step: int) -> None:
        self.sent, self.received, self.step, self.polls = sent, received, step, 0

    def call(self, command: str) -> list[dict[str, Any]]:
        assert command == "counts"
        self.polls += 1
        counts = [{"sent": self.sent, "received": self.received}]
        self.received += self.step
        return counts


def test_every_pool_is_drained_before_a_search() -> None:
    behind = Pool(sent=10, received=0, step=10)  # 3 members: 20 deliveries due
    done = Pool(sent=5, received=10, step=0)
    assert drain_all({"legacy": behind, "signed": done}, members=3)  # type: ignore[dict-item]
    assert behind.polls == 3 and done.polls == 1


def test_a_pool_that_never_drains_is_reported_and_the_others_still_polled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shapes, "SATURATION_DRAIN_MAX_S", 0.3)
    stuck = Pool(sent=10, received=0, step=0)
    after = Pool(sent=1, received=0, step=1)
    assert not drain_all({"legacy": stuck, "signed": after}, members=2)  # type: ignore[dict-item]
    assert after.polls == 2  # drained too, though the first pool failed


def step(delivered: float, p99_ms: float, drained: bool | None) -> dict[str, Any]:
    return {
        "delivered_per_s": delivered,
        "offered_deliveries_per_s": delivered,
        "latency_ms": {"p99": p99_ms},
        "started_drained": drained,
    }


def test_the_drained_best_skips_steps_that_started_with_a_backlog_and_failed_steps() -> None:
    bench = SimpleNamespace(params=Params.for_run(quick=True))
    limit = bench.params.saturation_max_p99_ms
    steps = [
        step(4_900, 10, drained=True),
        step(19_600, 40, drained=True),
        step(39_200, 5 * limit, drained=True),  # failed: its p99 is over the limit
        step(30_000, limit / 2, drained=False),  # passed, but counted the failed step's backlog
        step(50_000, 10, drained=None),  # a step that never recorded it does not count
    ]
    assert best_drained(bench, steps) == 19_600  # type: ignore[arg-type]
    assert best_drained(bench, steps[3:]) == 0.0  # type: ignore[arg-type]
