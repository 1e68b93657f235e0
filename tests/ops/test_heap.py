"""After start the server freezes its start-up heap out of the collector (the low-load tail) and
makes collections rarer (the collector's share of a delivery's CPU)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from securechat.ops.heap import THRESHOLDS, settle


@pytest.fixture
def collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("collector")
def test_settle_freezes_what_is_alive_and_makes_collections_rarer() -> None:
    young, middle, full = gc.get_threshold()
    alive = [object() for _ in range(10)]  # noqa: F841 - alive while settle runs

    frozen = settle()

    assert frozen == gc.get_freeze_count() > 0
    assert gc.get_threshold() == THRESHOLDS
    assert THRESHOLDS[0] > young and THRESHOLDS[1] >= middle and THRESHOLDS[2] > full
