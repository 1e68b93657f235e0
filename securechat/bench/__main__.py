"""`python -m securechat.bench [--quick]`: run every scenario and write bench/results/*.json."""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from securechat.bench import scenarios
from securechat.bench.fairness import fairness
from securechat.bench.harness import Bench, Params
from securechat.bench.procs import raise_nofile_limit
from securechat.bench.report import RESULTS_DIR, machine, show, write_json
from securechat.bench.scaleout import scaleout

TARGETS = {
    "saturation_ratio": (">=", 3.0),
    "p99_ms_at_5k": ("<", 50.0),
    "cpu_per_delivery_ratio": ("<=", 0.25),
    "rss_kb_per_client": ("<", 100.0),
    "login_storm_p99_factor": ("<=", 2.0),
}
ALL = ("fanout", "connections", "login_storm", "fairness", "catchup", "crypto", "scaleout")


def crypto_bench(quick: bool) -> dict[str, Any]:
    try:
        from securechat.crypto.bench import run_crypto_bench
    except ImportError as exc:
        return {"available": False, "reason": f"not available: {exc}"}
    started = time.perf_counter()
    from securechat.bench.room_send import run_room_send_bench
    from securechat.crypto.room_bench import run_room_bench

    figures: dict[str, Any] = dict(run_crypto_bench(quick=quick))
    figures.update(run_room_bench(quick=quick))  # sender keys: the crypto core alone
    figures.update(run_room_send_bench(quick=quick))  # the client's room send path
    figures["available"] = True
    figures["bench_s"] = time.perf_counter() - started
    return figures


def _meets(key: str, value: float) -> bool | None:
    if not math.isfinite(value):
        return None
    op, target = TARGETS[key]
    return {"<": value < target, "<=": value <= target, ">=": value >= target}[op]


def scaleout_summary(result: dict[str, Any]) -> dict[str, Any]:
    """The scale-out figures for latest.json (NaN when not run or not available)."""

    def best(workers: int) -> float:
        return float(
            result.get(f"workers_{workers}", {}).get("max_sustained_deliveries_per_s", math.nan)
        )

    return {
        "scaleout_1_worker": best(1),
        "scaleout_2_workers": best(2),
        "scaleout_ratio": result.get("ratio", math.nan),
        "scaleout_available": result.get("available"),
    }


def summarise(
    results: dict[str, dict[str, Any]], params: Params, info: dict[str, Any]
) -> dict[str, Any]:
    nan = math.nan
    fanout = results.get("fanout", {})
    saturation = results.get("saturation", {})
    summary: dict[str, Any] = {
        "saturation_ratio": saturation.get("ratio", nan),
        "saturation_securechat_deliveries_per_s": saturation.get("securechat", {}).get(
            "max_sustained_deliveries_per_s", nan
        ),
        "saturation_reference_deliveries_per_s": saturation.get("reference", {}).get(
            "max_sustained_deliveries_per_s", nan
        ),
        "p99_ms_at_5k": fanout.get("p99_ms", nan),
        "p99_ms_at_5k_reference": fanout.get("reference", {}).get("latency_ms", {}).get("p99", nan),
        "cpu_per_delivery_ratio": fanout.get("cpu_per_delivery_ratio", nan),
        "rss_kb_per_client": results.get("connections", {}).get("rss_kb_per_client", nan),
        "login_storm_p99_factor": results.get("login_storm", {}).get("p99_factor", nan),
        "login_storm_logins_per_s": results.get("login_storm", {}).get("logins_per_s", nan),
        "catchup_10k_s": results.get("catchup", {}).get("catchup_s", nan),
        "catchup_messages": params.catchup_messages,
        **scaleout_summary(results.get("scaleout", {})),
        "crypto": {
            k: v for k, v in results.get("crypto", {"available": False}).items() if k != "machine"
        },
        "quick": params.quick,
        "params": params.as_dict(),
        "machine": info,
    }
    summary["targets"] = {
        key: {"target": f"{op} {target}", "value": summary[key], "met": _meets(key, summary[key])}
        for key, (op, target) in TARGETS.items()
    }
    return summary


def run_bench(params: Params, wanted: set[str], results_dir: Path) -> dict[str, Any]:
    """Run the wanted scenarios, write every result and latest.json; returns the summary."""
    raise_nofile_limit()
    info = machine()
    print(
        f"securechat bench ({'quick' if params.quick else 'full'}) on {info['cores']} cores, "
        f"{info['cpu_model']}, commit {info['git_commit']}",
        flush=True,
    )
    results: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="securechat-bench-") as tmp:
        bench = Bench(Path(tmp), params)
        try:
            steps: list[tuple[str, Callable[[], None]]] = [
                (
                    "fanout",
                    lambda: results.update(
                        zip(
                            ("fanout", "saturation"),
                            scenarios.fanout_and_saturation(bench),
                            strict=True,
                        )
                    ),
                ),
                ("connections", lambda: results.update(connections=scenarios.connections(bench))),
                ("login_storm", lambda: results.update(login_storm=scenarios.login_storm(bench))),
                ("fairness", lambda: results.update(fairness=fairness(bench))),
                ("catchup", lambda: results.update(catchup=scenarios.catchup(bench))),
                ("crypto", lambda: results.update(crypto=crypto_bench(params.quick))),
                ("scaleout", lambda: results.update(scaleout=scaleout(bench))),
            ]
            for name, run in steps:
                if name in wanted:
                    run()
        finally:
            bench.close()
    for name, data in results.items():
        data.setdefault("machine", info)
        write_json(name, data, results_dir)
    summary = summarise(results, params, info)
    summary["run_s"] = time.perf_counter() - started
    summary["scenarios_run"] = sorted(wanted)
    summary["command"] = "python -m securechat.bench" + (" --quick" if params.quick else "")
    write_json("latest", summary, results_dir)
    show(
        "summary (targets from issue 8)",
        ["figure", "value", "target", "met"],
        [[k, v["value"], v["target"], v["met"]] for k, v in summary["targets"].items()]
        + [
            ["catchup_10k_s", summary["catchup_10k_s"], f"{params.catchup_messages} messages", ""],
            ["login_storm_logins_per_s", summary["login_storm_logins_per_s"], "", ""],
            ["scaleout_1_worker", summary["scaleout_1_worker"], "deliveries/s", ""],
            ["scaleout_2_workers", summary["scaleout_2_workers"], "deliveries/s", ""],
            ["scaleout_ratio", summary["scaleout_ratio"], "2 / 1 workers", ""],
        ],
    )
    print(f"\nwrote {results_dir}/latest.json in {summary['run_s']:.0f} s", flush=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m securechat.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs (about a minute)")
    parser.add_argument("--only", choices=ALL, action="append", help="run only these (repeatable)")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="output directory")
    args = parser.parse_args(argv)
    run_bench(Params.for_run(args.quick), set(args.only or ALL), args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
