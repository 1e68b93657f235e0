"""The server's garbage collector, set once the node has started (issue 18: the low-load tail
and the cost of a delivery).

CPython's full (generation 2) collection walks every tracked object. A started server holds
hundreds of thousands of them that live until it stops (modules, grpc, protobuf and SQLAlchemy
metadata, caches filled at start), and each full collection walked them all: 100-180 ms with
the event loop stopped, which was the p99 at low load (docs/performance.md). ``gc.freeze()``
moves everything alive at start into the permanent generation, which collections skip; a full
collection then walks only what was allocated since.

What a chat delivery allocates dies by reference counting; the collector finds almost no
garbage on the hot path (about 85 objects a second in a 1,000-member room), yet with CPython's
thresholds (700, 10, 10) it ran 25 young collections a second, each walking the containers in
flight, and a full one every five seconds walking every stream (55 ms each with 1,000 clients
connected): 19 % of the event loop's CPU in that room. THRESHOLDS make young collections
about three times rarer and full ones dozens of times rarer (none in the 10 s measured): the
collector's time fell by half (0.37 to 0.18 s in 10 s), and the garbage that waits longer is
the same few objects a second. A young threshold of 5,000 saved a little more CPU but cost
+4 KB of RSS per idle client at 1,000 clients (20,000: +6 KB at 500); 2,000 costs less than
the run-to-run noise of 1 KB.
"""

from __future__ import annotations

import gc

THRESHOLDS = (2000, 20, 100)  # young, middle and full generation (gc.set_threshold)


def settle() -> int:
    """Collect once, freeze what is alive into the permanent generation and set THRESHOLDS;
    returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    return gc.get_freeze_count()
