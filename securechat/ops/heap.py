"""The server's garbage collector, set once the node has started (issue 18: the low-load tail).

CPython's full (generation 2) collection walks every tracked object. A started server holds
hundreds of thousands of them that live until it stops (modules, grpc, protobuf and SQLAlchemy
metadata, caches filled at start), and each full collection walked them all: 100-180 ms with
the event loop stopped, which was the p99 at low load (docs/performance.md). ``gc.freeze()``
moves everything alive at start into the permanent generation, which collections skip; a full
collection then walks only what was allocated since. The young-generation threshold stays
CPython's: raising it (20,000 was tried) made young collections rarer but let garbage pile up
between them, +6 KB of RSS per idle connected client.
"""

from __future__ import annotations

import gc


def settle() -> int:
    """Collect once and freeze what is alive into the permanent generation; returns how many
    objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
