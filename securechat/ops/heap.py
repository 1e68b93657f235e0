"""The server's garbage collector, set once the node has started (issue 18: the low-load tail).

CPython's full (generation 2) collection walks every tracked object. A started server holds
hundreds of thousands of them that live until it stops (modules, grpc, protobuf and SQLAlchemy
metadata, caches filled at start), and each full collection walked them all: 100-180 ms with
the event loop stopped, which was the p99 at low load (docs/performance.md). ``gc.freeze()``
moves everything alive at start into the permanent generation, which collections skip; a full
collection then walks only what was allocated since. A larger first-generation threshold makes
the young collections (each a few ms under load) rarer: what survives them is the same, so
memory is unchanged but for the young garbage that waits a little longer.
"""

from __future__ import annotations

import gc

# Allocations minus deallocations between young collections (CPython's default: 700).
YOUNG_THRESHOLD = 20_000


def settle() -> int:
    """Collect once, freeze what is alive into the permanent generation and raise the young
    threshold; returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    return gc.get_freeze_count()
