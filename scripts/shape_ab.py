"""One or more of the bench's load shapes, both servers interleaved, with bench parameters
overridden: the quick A/B behind a change of a parameter (issue 18). Prints one JSON line per
shape (CPU per delivery of each server, their ratio, securechat's p50/p99, the reference's p99;
medians over the repeats).

    .venv/bin/python scripts/shape_ab.py "10x2 spread" "10x2 spread signed" \\
        ack_every_s=0.05 shape_repeats=2
    .venv/bin/python scripts/shape_ab.py "10x2 spread" ack_every_s=0.5 shape_repeats=2

Shapes are the names of ``Params.shapes`` (securechat/bench/harness.py); ``name=value`` sets a
field of Params (its type is the field's). No saturation search.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
from pathlib import Path

from securechat.bench import shapes
from securechat.bench.harness import Bench, Params


def params_of(args: list[str]) -> tuple[Params, dict[str, str]]:
    names = {a for a in args if "=" not in a}
    overrides = dict(a.split("=", 1) for a in args if "=" in a)
    params = Params.for_run(False)
    known = {s[0] for s in params.shapes}
    if not names or names - known:
        raise SystemExit(f"name shapes among: {', '.join(sorted(known))}")
    typed = {k: type(getattr(params, k))(v) for k, v in overrides.items()}
    chosen = tuple(s for s in params.shapes if s[0] in names)
    return dataclasses.replace(params, shapes=chosen, saturation=False, **typed), overrides


def main(args: list[str]) -> None:
    params, overrides = params_of(args)
    with tempfile.TemporaryDirectory(prefix="securechat-ab-") as tmp:
        bench = Bench(Path(tmp), params)
        try:
            fanout, _ = shapes.shapes_and_saturation(bench)
        finally:
            bench.close()
    for name, shape in fanout["shapes"].items():
        ours, ref = shape["securechat"], shape["reference"]
        row = {
            "shape": name,
            **overrides,
            "cpu_ratio": round(shape["cpu_per_delivery_ratio"], 2),
            "securechat_cpu_us": round(ours["server_cpu_us_per_delivery"], 1),
            "reference_cpu_us": round(ref["server_cpu_us_per_delivery"], 1),
            "securechat_p50_ms": round(ours["p50_ms"], 1),
            "securechat_p99_ms": round(ours["p99_ms"], 1),
            "reference_p99_ms": round(ref["p99_ms"], 1),
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":  # the bench's load processes are spawned: guard the entry point
    main(sys.argv[1:])
