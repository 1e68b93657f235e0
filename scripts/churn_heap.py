"""Native heap per churned connection (issue 18's soak): does a server keep memory for every
connection that came and went?

Starts one server under scripts/heap_server.py (securechat, or the bare reference with
``reference``), opens and closes ``N`` connections from 4 threads, each its own mTLS
connection with ``--calls`` calls on it (securechat: the Health check; the reference: a stream
that reads its hello). With ``--sessions`` (securechat) each connection is instead the soak's
session (bench/churn.py): Login as a known device, open a Chat stream, ``--messages`` room
messages ``--gap`` seconds apart, close. With no gap a session ends before its backlog (the
others' messages since its last session) is replayed and acknowledged, so the mailboxes grow
with every round: use ``--gap 1`` (the soak's) to measure sessions that read their mail.

After ``--warmup`` connections and after each of ``--rounds`` rounds it reads the server's
glibc malloc bytes in use and free, Python's allocated blocks (both after a full garbage
collection) and RSS, and prints the growth per connection (and over the second half of the
rounds: settling or linear?) as one JSON line:

    .venv/bin/python scripts/churn_heap.py reference 10000 --rounds 4
    .venv/bin/python scripts/churn_heap.py securechat 10000 --rounds 4
    .venv/bin/python scripts/churn_heap.py securechat 10000 --sessions --messages 0 --rounds 4
    .venv/bin/python scripts/churn_heap.py securechat 3000 --sessions --trace

``--trace`` runs securechat under tracemalloc instead and prints the allocation sites that grew
per connection. ``--grpc-option`` (the reference only: securechat takes its options from its
config) sets an integer server option.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import grpc

from securechat.bench import reference
from securechat.bench.churn import ChurnRole
from securechat.bench.harness import Bench, Params
from securechat.bench.procs import ServerProcess
from securechat.bench.scenarios import IDLE_ENV
from securechat.bench.soak import HEAP_SERVER, TRACED_SERVER, snapshot

HEALTH = "/grpc.health.v1.Health/Check"
THREADS = 4
SAMPLE_S = 0.5  # the heap server's sampling period


def credentials(bench: Bench) -> grpc.ChannelCredentials:
    paths = bench.pki.client("bench")
    return grpc.ssl_channel_credentials(
        bench.pki.ca_cert.read_bytes(), paths.key.read_bytes(), paths.cert.read_bytes()
    )


def one_connection(target: str, creds: grpc.ChannelCredentials, system: str, calls: int) -> None:
    # A local subchannel pool: each channel makes its own connection (grpc otherwise shares
    # one between channels to the same target).
    options = [("grpc.use_local_subchannel_pool", 1)]
    with grpc.secure_channel(target, creds, options=options) as channel:
        for _ in range(calls):
            if system == "reference":
                call = channel.stream_stream(reference.METHOD)(iter(()))
                assert next(call) == reference.HELLO
                call.cancel()
            else:
                channel.unary_unary(HEALTH)(b"", timeout=30)


def churn(bench: Bench, server: ServerProcess, system: str, count: int, calls: int) -> None:
    """``count`` connections, each its own, ``calls`` calls on each."""
    target = f"localhost:{server.port}"
    creds = credentials(bench)
    with ThreadPoolExecutor(THREADS) as pool:
        for future in [
            pool.submit(one_connection, target, creds, system, calls) for _ in range(count)
        ]:
            future.result()


class Sessions:
    """The soak's sessions, run in this process: 20 users of one room, one session each at a
    time, until ``count`` sessions are done."""

    def __init__(self, bench: Bench, server: ServerProcess, messages: int, gap_s: float) -> None:
        users = [f"churn{i:02d}" for i in range(20)]
        self.role = ChurnRole({**bench.tls_spec(server.port), "room": "churn", "users": users})
        self.messages, self.gap_s = messages, gap_s
        # One event loop for every round: grpc.aio's poller outlives a loop that asyncio.run
        # closes (and complains about it).
        self.runner = asyncio.Runner()
        self.runner.run(self.role.cmd_setup())

    def churn(self, count: int) -> None:
        async def run() -> None:
            left = iter(range(count))

            async def loop(user: str) -> None:
                for _ in left:
                    await self.role.session(user, self.messages, self.gap_s)

            await asyncio.gather(*(loop(u) for u in self.role.spec["users"]))

        self.runner.run(run())
        if self.role.failures:
            raise RuntimeError(f"sessions failed: {self.role.failures}")


def sample(server: ServerProcess, heap: Path) -> dict[str, Any]:
    time.sleep(SAMPLE_S * 2.5)  # the sampler has written figures taken after the churn
    return {**json.loads(heap.read_text()), "rss_kb": server.rss_kb()}


def grown(first: Path, last: Path, connections: int, top: int = 25) -> str:
    """The allocation sites that grew between the snapshots, per connection."""
    stats = tracemalloc.Snapshot.load(str(last)).compare_to(
        tracemalloc.Snapshot.load(str(first)), "lineno"
    )
    total = sum(s.size_diff for s in stats)
    lines = [f"Python heap grew {total / connections:.1f} B per connection"]
    lines += [
        f"{s.size_diff / connections:8.1f} B {s.count_diff / connections:6.2f} objects  "
        f"{s.traceback}"
        for s in stats[:top]
    ]
    return "\n".join(lines)


def per_connection(first: dict[str, Any], last: dict[str, Any], count: int) -> dict[str, float]:
    figures = {
        f"{key.removesuffix('_kb')}_bytes_per_connection": round(
            (last[key] - first[key]) * 1024 / count, 1
        )
        for key in ("malloc_in_use_kb", "malloc_free_kb", "rss_kb")
    }
    figures["py_blocks_per_connection"] = round((last["py_blocks"] - first["py_blocks"]) / count, 2)
    return figures


def start(bench: Bench, args: argparse.Namespace, heap: Path, snaps: Path) -> ServerProcess:
    if args.trace:
        env = {"TRACEMALLOC_SNAPSHOT_DIR": str(snaps)}
        return bench.securechat(
            "churn", 4, {**IDLE_ENV, **env}, [sys.executable, str(TRACED_SERVER)]
        )
    env = {"HEAP_SAMPLES_FILE": str(heap), "HEAP_SAMPLE_S": str(SAMPLE_S), "HEAP_COLLECT": "1"}
    program = [sys.executable, str(HEAP_SERVER)]
    if args.system == "reference":
        extra = [a for o in args.grpc_option for a in ("--grpc-option", o)]
        return bench.reference(extra, [*program, "--reference"], env)
    return bench.securechat("churn", 4, {**IDLE_ENV, **env}, program)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("system", choices=("securechat", "reference"))
    parser.add_argument("connections", type=int)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=1, help="sample after each of them")
    parser.add_argument("--sessions", action="store_true", help="securechat: the soak's")
    parser.add_argument("--messages", type=int, default=3, help="per session (--sessions)")
    parser.add_argument("--gap", type=float, default=0.0, help="seconds after each message")
    parser.add_argument(
        "--trace", action="store_true", help="securechat under tracemalloc: the sites that grew"
    )
    parser.add_argument("--calls", type=int, default=1, help="calls per connection")
    parser.add_argument("--grpc-option", action="append", default=[], metavar="NAME=INT")
    args = parser.parse_args()
    if (args.sessions or args.trace) and args.system != "securechat":
        parser.error("--sessions and --trace are for securechat")
    each = args.connections // args.rounds
    with tempfile.TemporaryDirectory(prefix="churn-heap-") as tmp:
        bench = Bench(Path(tmp), Params.for_run(True))
        heap, snaps = Path(tmp) / "heap.json", Path(tmp) / "snapshots"
        try:
            server = start(bench, args, heap, snaps)
            if args.sessions:
                run = Sessions(bench, server, args.messages, args.gap).churn
            else:
                run = partial(churn, bench, server, args.system, calls=args.calls)
            run(args.warmup)
            if args.trace:
                first = snapshot(server, snaps, 1)
                run(each * args.rounds)
                print(grown(first, snapshot(server, snaps, 2), each * args.rounds))
                return
            samples = [sample(server, heap)]
            started = time.monotonic()
            for _ in range(args.rounds):
                run(each)
                samples.append(sample(server, heap))
            took = time.monotonic() - started
        finally:
            bench.close()
    half = args.rounds // 2
    result = {
        "system": args.system,
        "grpc_options": args.grpc_option,
        "connections": each * args.rounds,
        "calls_per_connection": args.calls,
        "sessions": args.sessions,
        "messages": args.messages if args.sessions else None,
        "gap_s": args.gap if args.sessions else None,
        "seconds": round(took, 1),
        **per_connection(samples[0], samples[-1], each * args.rounds),
    }
    if half:
        second = per_connection(samples[half], samples[-1], each * (args.rounds - half))
        result["second_half"] = second
    result["samples"] = samples
    print(json.dumps(result))


if __name__ == "__main__":
    main()
