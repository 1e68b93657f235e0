"""After start the server freezes its start-up heap out of the collector (the low-load tail) and
makes collections rarer (the collector's share of a delivery's CPU); it gives malloc's free
memory back to the system every minute (the churn soak's RSS growth)."""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from securechat import node as node_module
from securechat.node import Node
from securechat.ops import heap
from securechat.ops.heap import THRESHOLDS, settle

# 40 MB in 1,000-byte objects (malloc's, not pymalloc's), all freed but the last one made,
# which keeps the heap's top in use: glibc's free cannot shrink the heap below it, so the
# 40 MB stay resident until malloc_trim gives back the free pages inside the heap.
FRAGMENTED_HEAP = """
import json, sys
from securechat.ops.heap import give_back
def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
blocks = [bytes(1000) for _ in range(40_000)]
pin = bytes(1000)
del blocks
before = rss_kb()
gave = give_back()
print(json.dumps({"before": before, "after": rss_kb(), "gave": gave}))
"""


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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_give_back_returns_malloc_free_pages_to_the_system() -> None:
    out = subprocess.run(
        [sys.executable, "-c", FRAGMENTED_HEAP], capture_output=True, text=True, check=True
    )
    figures = json.loads(out.stdout)
    assert figures["gave"] is True
    assert figures["before"] - figures["after"] > 20_000  # KB: most of the 40 MB freed


async def test_the_node_gives_malloc_memory_back_off_the_event_loop(
    server: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bool] = []

    def give_back() -> bool:
        # asyncio.get_running_loop raises outside the loop's thread: not on the loop
        with pytest.raises(RuntimeError):
            asyncio.get_running_loop()
        calls.append(True)
        return True

    monkeypatch.setattr(heap, "give_back", give_back)
    monkeypatch.setattr(node_module, "MALLOC_TRIM_EVERY", 1)  # every tick (a second) from now

    async def given() -> None:
        while not calls:
            await asyncio.sleep(0.05)

    await asyncio.wait_for(given(), 20)  # before the change: never called, a timeout
    assert calls == [True] * len(calls)
