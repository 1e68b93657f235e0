"""After start the server freezes its start-up heap out of the collector (the low-load tail)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from securechat.ops.heap import settle


@pytest.fixture
def collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("collector")
def test_settle_freezes_what_is_alive_and_keeps_the_thresholds() -> None:
    thresholds = gc.get_threshold()
    alive = [object() for _ in range(10)]  # noqa: F841 - alive while settle runs

    frozen = settle()

    assert frozen == gc.get_freeze_count() > 0
    assert gc.get_threshold() == thresholds
