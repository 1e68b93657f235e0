"""Before a saturation search every load pool of the run is drained: the search before it (on
the same server) may have ended overloaded, and its backlog would be measured as this one's."""

from __future__ import annotations

from typing import Any

import pytest

from securechat.bench import shapes
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
