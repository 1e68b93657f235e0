"""`make bench-soak` (`python -m securechat.bench.soak`): a long churn soak of a server (issue 18).

A real `securechat-server` (embedded SQLite, throwaway PKI and data directory) and load processes
whose users connect, send a few room messages and disconnect, over and over (bench/churn.py).
Every ``--sample-s`` the server's RSS (VmRSS), open files (/proc/PID/fd) and store size (the
data directory's files, WAL included) are sampled into a CSV; at the end a PNG plot of the three
curves, and the RSS slope over the second half of the run (KB/min: the warm-up's growth, caches
filling and allocator arenas, is left out).

``--tracemalloc`` runs the server under scripts/traced_server.py instead (tracemalloc on, a
snapshot written on SIGUSR1; the server is slower under it): a snapshot after the first quarter
and one at the end, and the top allocation sites by growth between them in
``soak-tracemalloc.txt``, to tell a leak (one site growing without bound) from a heap that
settles.

``--heap`` runs the server under scripts/heap_server.py instead (cheap: a thread reads glibc's
`mallinfo2` every few seconds): each sample also has malloc's bytes in use and free and Python's
allocated blocks and SQLite's heap (plotted beside RSS), and after the load the RSS before and after
`malloc_trim(0)`, to tell memory the allocator keeps from memory still in use.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securechat.bench import procs
from securechat.bench.procs import ServerProcess, raise_nofile_limit
from securechat.bench.report import machine
from securechat.bench.workers import Workers, split
from securechat.pki import make_dev_pki

COLUMNS = ("elapsed_s", "rss_kb", "open_files", "store_bytes")
HEAP_COLUMNS = ("malloc_in_use_kb", "malloc_free_kb", "sqlite_kb", "py_blocks")
SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
TRACED_SERVER = SCRIPTS / "traced_server.py"
HEAP_SERVER = SCRIPTS / "heap_server.py"


@dataclass(frozen=True)
class SoakParams:
    minutes: float = 30.0
    sample_s: float = 10.0
    users: int = 40
    processes: int = 2
    messages: int = 3  # per session
    gap_s: float = 1.0  # between a session's messages
    tracemalloc: bool = False
    heap: bool = False
    # The heap figures taken after a full garbage collection each (HEAP_COLLECT in
    # scripts/heap_server.py): garbage waiting for the collector is then not counted as growth.
    heap_collect: bool = False

    def __post_init__(self) -> None:
        if self.tracemalloc and self.heap:
            raise ValueError("--tracemalloc and --heap each run their own server; choose one")
        if self.heap_collect and not self.heap:
            raise ValueError("--heap-collect is a way of sampling the heap: give --heap too")


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def store_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def slope_per_min(samples: Sequence[dict[str, float]], key: str) -> float:
    """Least-squares slope of ``key`` per minute over the second half of the samples."""
    half = list(samples[len(samples) // 2 :])
    if len(half) < 2:
        return float("nan")
    xs = [s["elapsed_s"] / 60 for s in half]
    ys = [s[key] for s in half]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def sample(
    server: ServerProcess, data: Path, started: float, heap: Path | None = None
) -> dict[str, float]:
    """One row: RSS, open files, store size, and with ``heap`` (the heap server's samples
    file) its latest heap figures."""
    row: dict[str, float] = {
        "elapsed_s": round(time.monotonic() - started, 1),
        "rss_kb": server.rss_kb(),
        "open_files": open_files(server.pid),
        "store_bytes": store_bytes(data),
    }
    if heap is not None:
        figures = json.loads(heap.read_text()) if heap.exists() else {}
        row.update({k: figures.get(k, float("nan")) for k in HEAP_COLUMNS})
    return row


def trim_heap(server: ServerProcess, heap: Path) -> dict[str, int]:
    """Ask the heap server for `malloc_trim(0)` and return its RSS before and after."""
    done = heap.with_name(heap.name + ".trim")
    server.popen.send_signal(signal.SIGUSR2)
    deadline = time.monotonic() + 60
    while not done.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return dict(json.loads(done.read_text())) if done.exists() else {}


def write_csv(path: Path, samples: Sequence[dict[str, float]]) -> None:
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(
            out, fieldnames=[k for k in (*COLUMNS, *HEAP_COLUMNS) if k in samples[0]]
        )
        writer.writeheader()
        writer.writerows(samples)


def plot(path: Path, samples: Sequence[dict[str, float]], title: str) -> bool:
    """The three curves over time as a PNG; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    minutes = [s["elapsed_s"] / 60 for s in samples]
    mb = 1024
    memory = [("RSS", [s["rss_kb"] / mb for s in samples])]
    if "malloc_in_use_kb" in samples[0]:
        memory.append(("malloc in use", [s["malloc_in_use_kb"] / mb for s in samples]))
        memory.append(("malloc free", [s["malloc_free_kb"] / mb for s in samples]))
        memory.append(("SQLite (in use)", [s["sqlite_kb"] / mb for s in samples]))
    curves = (
        ("server memory (MB)", memory),
        ("open files", [("open files", [s["open_files"] for s in samples])]),
        ("store size (MB)", [("store", [s["store_bytes"] / 1e6 for s in samples])]),
    )
    fig, axes = plt.subplots(len(curves), 1, figsize=(8, 7), sharex=True)
    for axis, (label, lines) in zip(axes, curves, strict=True):
        for name, values in lines:
            axis.plot(minutes, values, label=name)
        if len(lines) > 1:
            axis.legend(fontsize=8)
        axis.set_ylabel(label)
        axis.grid(True, alpha=0.3)
    axes[-1].set_xlabel("minutes")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def start_server(workdir: Path, certs: Path, params: SoakParams) -> tuple[ServerProcess, Path]:
    env = procs.securechat_env(4)
    program: list[str] | None = None
    if params.tracemalloc:
        env["TRACEMALLOC_SNAPSHOT_DIR"] = str(workdir / "snapshots")
        program = [sys.executable, str(TRACED_SERVER)]
    if params.heap:
        env["HEAP_SAMPLES_FILE"] = str(workdir / "heap.json")
        env["HEAP_SAMPLE_S"] = str(min(5.0, params.sample_s))
        env["HEAP_COLLECT"] = "1" if params.heap_collect else "0"
        program = [sys.executable, str(HEAP_SERVER)]
    server = procs.start_securechat(workdir, certs, env, "soak", program=program)
    return server, workdir / "soak-data"


def snapshot(server: ServerProcess, directory: Path, index: int) -> Path:
    """Ask the traced server for snapshot ``index`` and wait until it is written."""
    path = directory / f"snapshot-{index}.pickle"
    server.popen.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 120
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    return path


def tracemalloc_diff(first: Path, last: Path, top: int = 25) -> str:
    import tracemalloc

    old = tracemalloc.Snapshot.load(str(first))
    new = tracemalloc.Snapshot.load(str(last))
    stats = new.compare_to(old, "lineno")
    total = sum(s.size_diff for s in stats)
    lines = [f"total growth between the snapshots: {total / 1024:.1f} KiB"]
    lines += [str(s) for s in stats[:top]]
    return "\n".join(lines) + "\n"


def run_soak(params: SoakParams, out: Path, name: str = "soak") -> dict[str, Any]:
    raise_nofile_limit()
    out.mkdir(parents=True, exist_ok=True)
    info = machine()
    duration_s = params.minutes * 60
    samples: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="securechat-soak-") as tmp:
        workdir = Path(tmp)
        pki = make_dev_pki(workdir / "pki", clients=("bench",))
        server, data = start_server(workdir, pki.directory, params)
        paths = pki.client("bench")
        tls = {"port": server.port, "ca": str(pki.ca_cert), "cert": str(paths.cert)}
        tls["key"] = str(paths.key)
        users = [f"churn{i:04d}" for i in range(params.users)]
        specs = [{**tls, "room": "soak", "users": part} for part in split(users, params.processes)]
        pool = Workers("churn", specs)
        snaps: list[Path] = []
        heap = workdir / "heap.json" if params.heap else None
        trimmed: dict[str, int] = {}
        try:
            pool.call("setup")
            started = time.monotonic()
            stop_ns = time.time_ns() + int(duration_s * 1e9)
            command = {"stop_ns": stop_ns, "messages": params.messages, "gap_s": params.gap_s}
            pool.send("churn", {**command, "session_s": params.messages * params.gap_s})
            next_at = started
            while time.monotonic() - started < duration_s:
                samples.append(sample(server, data, started, heap))
                if params.tracemalloc and not snaps and time.monotonic() - started > duration_s / 4:
                    snaps.append(snapshot(server, workdir / "snapshots", 1))
                next_at += params.sample_s
                time.sleep(max(0.0, next_at - time.monotonic()))
            churn = pool.collect()
            samples.append(sample(server, data, started, heap))
            if heap is not None:
                trimmed = trim_heap(server, heap)
            if params.tracemalloc:
                snaps.append(snapshot(server, workdir / "snapshots", 2))
                diff = tracemalloc_diff(snaps[0], snaps[1])
                (out / f"{name}-tracemalloc.txt").write_text(diff)
                print(diff, flush=True)
        finally:
            pool.close()
            server.stop()
    result = {
        "params": params.__dict__,
        "machine": info,
        "sessions": sum(c["sessions"] for c in churn),
        "messages_sent": sum(c["sent"] for c in churn),
        "deliveries": sum(c["received"] for c in churn),
        "failures": [c["failures"] for c in churn],
        "stream_errors": [c["stream_errors"] for c in churn],
        "rss_kb_first": samples[0]["rss_kb"],
        "rss_kb_last": samples[-1]["rss_kb"],
        "rss_kb_per_min_second_half": slope_per_min(samples, "rss_kb"),
        "open_files_first": samples[0]["open_files"],
        "open_files_last": samples[-1]["open_files"],
        "store_bytes_last": samples[-1]["store_bytes"],
        "samples": len(samples),
        **trimmed,
    }
    if heap is not None:
        for key in HEAP_COLUMNS:
            result[f"{key}_per_min_second_half"] = slope_per_min(samples, key)
    write_csv(out / f"{name}.csv", samples)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    title = (
        f"churn soak: {params.users} users, {params.minutes:g} min, "
        f"commit {info['git_commit'][:10]}, load {info['load_average_at_start']}"
    )
    result["plot"] = plot(out / f"{name}.png", samples, title)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2), flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m securechat.bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=SoakParams.minutes)
    parser.add_argument("--sample-s", type=float, default=SoakParams.sample_s)
    parser.add_argument("--users", type=int, default=SoakParams.users)
    parser.add_argument("--tracemalloc", action="store_true", help="snapshot diff (slower)")
    parser.add_argument("--heap", action="store_true", help="malloc and Python heap figures")
    parser.add_argument(
        "--heap-collect", action="store_true", help="--heap, each after a full gc.collect()"
    )
    parser.add_argument("--out", type=Path, default=Path("docs"), help="CSV/PNG/JSON folder")
    parser.add_argument("--name", default="soak", help="file name stem in --out")
    args = parser.parse_args(argv)
    params = SoakParams(
        minutes=args.minutes,
        sample_s=args.sample_s,
        users=args.users,
        tracemalloc=args.tracemalloc,
        heap=args.heap or args.heap_collect,
        heap_collect=args.heap_collect,
    )
    run_soak(params, args.out, args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
