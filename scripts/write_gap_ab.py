"""The coalescing-window experiment of issue 18 (stop 24; not kept in the server): the bench's
shapes against a securechat server whose stream writer, once it writes more often than every
GAP_MS, waits GAP_MS before its next frame (so what arrives meanwhile joins it), interleaved
with the reference as usual. Run it with 0 for the same server without the window.

    .venv/bin/python scripts/write_gap_ab.py 10 "50x2 spread" "50x2 spread signed" shape_repeats=2
    .venv/bin/python scripts/write_gap_ab.py 0 "50x2 spread" "50x2 spread signed" shape_repeats=2

The server is this script too (``serve`` as its first argument, the window in the environment's
WRITE_GAP_MS); everything after the window is as for scripts/shape_ab.py.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import shape_ab  # scripts/, beside this one

from securechat.bench import harness
from securechat.bench.procs import ServerProcess
from securechat.services import chat
from securechat.services.stream import StreamSession


def serve() -> None:
    """securechat-server, with the window in its stream writers."""
    gap = float(os.environ.get("WRITE_GAP_MS", "0")) / 1000

    async def write_with_gap(
        self: chat.ChatService,
        stream: StreamSession,
        codec: Any,
        write: Callable[[bytes], Awaitable[object]],
    ) -> None:
        loop = asyncio.get_running_loop()
        last = -1e9
        while (batch := await stream.next_batch()) is not None:
            await write(codec.encode(batch))
            self.observer.frame_written()
            now = loop.time()
            busy, last = now - last < gap, now
            if busy:
                await asyncio.sleep(gap)

    if gap > 0:
        chat.ChatService._write = write_with_gap  # type: ignore[method-assign]
    from securechat.app import main

    main()


def main(args: list[str]) -> None:
    os.environ["WRITE_GAP_MS"] = args[0]
    start = harness.Bench.securechat

    def securechat(
        self: harness.Bench,
        tag: str,
        bcrypt_cost: int | None,
        extra_env: dict[str, str] | None = None,
        program: Sequence[str] | None = None,
    ) -> ServerProcess:
        program = program or [sys.executable, str(Path(__file__).resolve()), "serve"]
        return start(self, tag, bcrypt_cost, extra_env, program)

    harness.Bench.securechat = securechat  # type: ignore[method-assign]
    shape_ab.main(args[1:])


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        del sys.argv[1]
        serve()
    else:
        main(sys.argv[1:])
