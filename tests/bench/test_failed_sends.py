"""A send that failed is nothing anyone is owed: the load pools' counts leave it out, so the
drains before saturation steps (and after signed-room steps) do not wait 30 s for it in vain."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from securechat.bench.harness import Bench, Params
from securechat.bench.roles import RoomRole


async def until(predicate: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_sends_that_failed_are_not_counted_as_due(tmp_path: Path) -> None:
    bench = Bench(tmp_path, Params.for_run(quick=True))
    try:
        server = bench.reference()
        spec = {**bench.tls_spec(server.port), "system": "reference", "users": ["a", "b"]}
        role = RoomRole(spec)

        async def run() -> tuple[dict[str, object], dict[str, int]]:
            await role.cmd_setup()
            bench.stop(server)  # every stream ends: each write from now on fails
            await until(lambda: all(m.call.done() for m in role.members))
            now = time.time_ns()
            window = (now, now + 300_000_000)
            ran = await role.cmd_run(20.0, now, window[1], window)
            return ran, await role.cmd_counts()

        ran, counts = asyncio.run(run())
    finally:
        bench.close()
    assert ran["sent"] and ran["errors"] == {"write_failed": ran["sent"]}
    assert counts == {"sent": 0, "received": 0}
