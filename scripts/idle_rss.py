"""Server RSS per idle Chat stream, one server at a time (issue 18's memory target).

Runs the bench's idle-stream step (securechat.bench.scenarios.idle_streams: each client its own
mTLS connection; securechat: Register, then Login + open, then idle) against one fresh server,
securechat or the bare reference, and prints the server's VmRSS before and after and KB per
client as one JSON line. Faster to repeat than `python -m securechat.bench --only connections`
(which measures both servers), to compare a change at a fixed client count:

    .venv/bin/python scripts/idle_rss.py securechat 1000
    .venv/bin/python scripts/idle_rss.py reference 1000 --grpc-option grpc.tsi.max_frame_size=4096
    .venv/bin/python scripts/idle_rss.py securechat 300 --trace   # + where the Python heap grew

(``grpc.tsi.max_frame_size`` only as a memory experiment: below 16 KB, grpcio 1.85 corrupts TLS
streams under load; tests/transport/test_tls_records.py.)

``--trace`` runs securechat under scripts/traced_server.py and prints the tracemalloc sites that
grew per client between the two RSS readings (much slower: keep the client count low).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import tracemalloc
from pathlib import Path

from securechat.bench.harness import Bench, Params
from securechat.bench.procs import ServerProcess, raise_nofile_limit
from securechat.bench.scenarios import IDLE_ENV, idle_streams
from securechat.bench.soak import TRACED_SERVER, snapshot


def start(bench: Bench, args: argparse.Namespace, snaps: Path) -> ServerProcess:
    if args.system == "reference":
        return bench.reference(
            [a for option in args.grpc_option for a in ("--grpc-option", option)]
        )
    env = dict(IDLE_ENV)  # as the bench's connections scenario
    program = None
    if args.trace:
        env["TRACEMALLOC_SNAPSHOT_DIR"] = str(snaps)
        program = [sys.executable, str(TRACED_SERVER)]
    return bench.securechat("idle", bench.params.setup_bcrypt_cost, env, program)


def grown(snaps: Path, clients: int, top: int = 40) -> str:
    """The allocation sites that grew between the snapshots, in bytes per client."""
    old = tracemalloc.Snapshot.load(str(snaps / "snapshot-1.pickle"))
    new = tracemalloc.Snapshot.load(str(snaps / "snapshot-2.pickle"))
    stats = new.compare_to(old, "lineno")
    total = sum(s.size_diff for s in stats)
    lines = [f"Python heap grew {total / clients:.0f} B per client"]
    lines += [
        f"{s.size_diff / clients:8.0f} B {s.count_diff / clients:6.2f} objects  {s.traceback}"
        for s in stats[:top]
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("system", choices=("securechat", "reference"))
    parser.add_argument("clients", type=int)
    parser.add_argument("--trace", action="store_true", help="securechat under tracemalloc")
    parser.add_argument("--grpc-option", action="append", default=[], metavar="NAME=INT")
    args = parser.parse_args()
    raise_nofile_limit()
    with tempfile.TemporaryDirectory(prefix="idle-rss-") as tmp:
        params = dataclasses.replace(Params.for_run(True), idle_clients=args.clients)
        bench = Bench(Path(tmp), params)
        snaps = Path(tmp) / "snapshots"
        try:
            server = start(bench, args, snaps)
            if args.trace:  # a snapshot at each RSS reading
                read = server.rss_kb
                taken = iter(range(1, 3))

                def traced() -> int:
                    snapshot(server, snaps, next(taken))
                    return read()

                server.rss_kb = traced  # type: ignore[method-assign]
            result = idle_streams(bench, server, args.system)
        finally:
            bench.close()
        keys = ("clients", "rss_kb_before", "rss_kb_after", "rss_kb_per_client", "connect_s")
        print(json.dumps({"system": args.system, **{k: result[k] for k in keys}}))
        if args.trace:
            print(grown(snaps, result["clients"]))


if __name__ == "__main__":
    main()
