"""`securechat-server` under tracemalloc, for the soak's leak hunt (`bench.soak --tracemalloc`).

Same arguments as `securechat-server`. Each SIGUSR1 writes a tracemalloc snapshot (10 frames
deep) to $TRACEMALLOC_SNAPSHOT_DIR/snapshot-N.pickle, N = 1, 2, ...; the file appears once
complete (written under a temporary name, then renamed).
"""

from __future__ import annotations

import gc
import itertools
import os
import signal
import sys
import threading
import tracemalloc
from pathlib import Path
from types import FrameType

from securechat.app import main

COUNTER = itertools.count(1)


def dump(directory: Path) -> None:
    index = next(COUNTER)
    gc.collect()
    snapshot = tracemalloc.take_snapshot()
    tmp = directory / f".snapshot-{index}.tmp"
    snapshot.dump(str(tmp))
    tmp.rename(directory / f"snapshot-{index}.pickle")


def on_signal(directory: Path) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=dump, args=(directory,), daemon=True).start()

    signal.signal(signal.SIGUSR1, handler)


if __name__ == "__main__":
    target = Path(os.environ.get("TRACEMALLOC_SNAPSHOT_DIR", "."))
    target.mkdir(parents=True, exist_ok=True)
    tracemalloc.start(10)
    on_signal(target)
    sys.argv[0] = "securechat-server"
    main()
