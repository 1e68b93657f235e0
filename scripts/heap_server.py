"""`securechat-server` with its heap sampled, for the soak's leak hunt (`bench.soak --heap`,
scripts/churn_heap.py).

Same arguments as `securechat-server`; with ``--reference`` first, the bench's bare reference
server (`python -m securechat.bench.reference`'s arguments) instead. Every $HEAP_SAMPLE_S
seconds (default 5) a daemon thread writes the latest figures to $HEAP_SAMPLES_FILE (JSON,
replaced atomically):

- ``malloc_in_use_kb``: glibc malloc's bytes handed out and not freed, every arena and the
  mmapped chunks (`mallinfo2`: uordblks + hblkhd): grpc's C core, BoringSSL, SQLite, and
  Python's objects over 512 bytes;
- ``malloc_free_kb``: bytes malloc holds free inside its arenas (fordblks), resident or not;
- ``sqlite_kb``: SQLite's own heap, every connection's page cache above all
  (`sqlite3_memory_used`; part of malloc's bytes in use);
- ``py_blocks``: Python's allocated memory blocks (`sys.getallocatedblocks`, pymalloc and
  large objects alike).

With HEAP_COLLECT=1 each sample is taken after a full garbage collection (scripts/churn_heap.py:
cyclic garbage that waits for the collector is not growth; the soak leaves the server's
collector alone).

On SIGUSR2 it writes $HEAP_SAMPLES_FILE.trim: the RSS before and after `malloc_trim(0)` (glibc
gives back the free memory of every arena it can). A heap whose in-use figures stay flat while
RSS rises is the allocator keeping freed memory, not a leak; in-use figures that climb are.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from securechat.app import main
from securechat.bench import reference
from securechat.bench.procs import rss_kb

_FIELDS = (
    "arena",
    "ordblks",
    "smblks",
    "hblks",
    "hblkhd",
    "usmblks",
    "fsmblks",
    "uordblks",
    "fordblks",
    "keepcost",
)


class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in _FIELDS]


LIBC = ctypes.CDLL("libc.so.6")
LIBC.mallinfo2.restype = Mallinfo2
LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
SQLITE = ctypes.CDLL("libsqlite3.so.0")  # the library Python's sqlite3 module is linked to
SQLITE.sqlite3_memory_used.restype = ctypes.c_int64


def figures() -> dict[str, int]:
    info = LIBC.mallinfo2()
    return {
        "malloc_in_use_kb": (info.uordblks + info.hblkhd) // 1024,
        "malloc_free_kb": info.fordblks // 1024,
        "sqlite_kb": SQLITE.sqlite3_memory_used() // 1024,
        "py_blocks": sys.getallocatedblocks(),
    }


def write(path: Path, data: dict[str, int]) -> None:
    # Replaced whole, but not with atomicfile.write_atomically: its fsyncs (file and folder)
    # every few seconds would add disk work to the server being measured, for a throwaway file.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def sampler(path: Path, every_s: float, collect: bool) -> None:
    while True:
        if collect:
            gc.collect()
        write(path, figures())
        time.sleep(every_s)


def trim(path: Path) -> None:
    before = {"rss_kb": rss_kb(os.getpid()), **figures()}
    LIBC.malloc_trim(0)
    write(
        path,
        {
            **{f"{k}_before_trim": v for k, v in before.items()},
            "rss_kb_after_trim": rss_kb(os.getpid()),
        },
    )


if __name__ == "__main__":
    target = Path(os.environ["HEAP_SAMPLES_FILE"])
    every = float(os.environ.get("HEAP_SAMPLE_S", "5"))
    collect = os.environ.get("HEAP_COLLECT") == "1"
    threading.Thread(target=sampler, args=(target, every, collect), daemon=True).start()

    def on_usr2(signum: int, frame: FrameType | None) -> None:
        trimmed = target.with_name(target.name + ".trim")
        threading.Thread(target=trim, args=(trimmed,), daemon=True).start()

    signal.signal(signal.SIGUSR2, on_usr2)
    if sys.argv[1:2] == ["--reference"]:
        reference.main(sys.argv[2:])
    else:
        sys.argv[0] = "securechat-server"
        main()
