"""Scenarios 1 and 2 (issue 18): every load shape on both servers in the same run, then saturation.

Both servers run side by side for the whole scenario; for each room size both get their own
room of members (separate load processes, separate connections). Each shape (members, rate per
member, sends spread evenly over the period or all at the same instant) is measured
``shape_repeats`` times, the two systems interleaved (securechat first in even repeats, the
reference first in odd ones) so a change in the machine's load hits both alike; the figures are
the medians over the repeats, and the ratios are securechat's median over the reference's.
Saturation follows on the ``room_members`` rooms.
"""

from __future__ import annotations

import statistics
from typing import Any

from securechat.bench.harness import STEP_HEADER, Bench, run_step, step_row
from securechat.bench.procs import ServerProcess
from securechat.bench.report import ratio, show
from securechat.bench.scenarios import SYSTEMS, saturate
from securechat.bench.workers import Workers

FIGURES = ("server_cpu_us_per_delivery", "p50_ms", "p99_ms", "delivered_per_s")


def figures(step: dict[str, Any]) -> dict[str, float]:
    """The per-step figures the shapes table compares."""
    return {
        "server_cpu_us_per_delivery": step["server_cpu_s_per_1k_deliveries"] * 1000.0,
        "p50_ms": step["latency_ms"]["p50"],
        "p99_ms": step["latency_ms"]["p99"],
        "delivered_per_s": step["delivered_per_s"],
    }


def medians(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the repeats, plus every repeat's p99 (is the tail steady?)."""
    each = [figures(s) for s in steps]
    out: dict[str, Any] = {k: statistics.median(f[k] for f in each) for k in FIGURES}
    out["p99_ms_each"] = [f["p99_ms"] for f in each]
    out["cpu_us_each"] = [f["server_cpu_us_per_delivery"] for f in each]
    return out


def summarise_shape(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    sc, ref = medians(runs["securechat"]), medians(runs["reference"])
    return {
        "securechat": sc,
        "reference": ref,
        "cpu_per_delivery_ratio": ratio(
            sc["server_cpu_us_per_delivery"], ref["server_cpu_us_per_delivery"]
        ),
        "p99_ratio": ratio(sc["p99_ms"], ref["p99_ms"]),
        "steps": runs,
    }


def _sizes(bench: Bench) -> list[int]:
    p = bench.params
    sizes = sorted({members for _, members, _, _ in p.shapes})
    return sizes if p.room_members in sizes else [*sizes, p.room_members]


def _measure_size(
    bench: Bench,
    size: int,
    servers: dict[str, ServerProcess],
    shapes: dict[str, dict[str, list[dict[str, Any]]]],
    saturation: dict[str, Any],
) -> None:
    p = bench.params
    pools: dict[str, Workers] = {}
    try:
        for system in SYSTEMS:
            pools[system] = bench.room_pool(servers[system], system, size, room=f"room{size}")
        for repeat in range(p.shape_repeats):
            order = SYSTEMS if repeat % 2 == 0 else SYSTEMS[::-1]
            for name, members, rate, pattern in p.shapes:
                if members != size:
                    continue
                for system in order:
                    step = run_step(
                        pools[system],
                        servers[system],
                        members,
                        rate,
                        p.fanout_warmup_s,
                        p.fanout_s,
                        p.step_lead_s,
                        pattern,
                    )
                    step["shape"], step["repeat"] = name, repeat
                    shapes.setdefault(name, {s: [] for s in SYSTEMS})[system].append(step)
                    show(f"[1] {name} #{repeat + 1}", STEP_HEADER, [step_row(system, step)])
        if size == p.room_members:
            for system in SYSTEMS:
                first = run_step(
                    pools[system],
                    servers[system],
                    size,
                    p.fixed_rate_per_member,
                    p.fanout_warmup_s,
                    p.saturation_step_s,
                    p.step_lead_s,
                )
                saturation[system] = saturate(bench, pools[system], servers[system], first)
                show(
                    f"[2] saturation, {system}",
                    STEP_HEADER,
                    [step_row(system, s) for s in saturation[system]["steps"]],
                )
    finally:
        for pool in pools.values():
            pool.close()


def show_shapes(shapes: dict[str, dict[str, Any]]) -> None:
    rows = []
    for name, shape in shapes.items():
        sc, ref = shape["securechat"], shape["reference"]
        rows.append(
            [
                name,
                sc["server_cpu_us_per_delivery"],
                ref["server_cpu_us_per_delivery"],
                shape["cpu_per_delivery_ratio"],
                f"{sc['p50_ms']:.1f} / {sc['p99_ms']:.1f}",
                f"{ref['p50_ms']:.1f} / {ref['p99_ms']:.1f}",
                " ".join(f"{x:.0f}" for x in sc["p99_ms_each"]),
                sc["delivered_per_s"],
            ]
        )
    show(
        "[1] shapes (medians over the repeats; securechat vs reference in the same run)",
        [
            "shape",
            "sc µs/deliv",
            "ref µs/deliv",
            "ratio",
            "sc p50/p99 ms",
            "ref p50/p99 ms",
            "sc p99 each",
            "sc deliv/s",
        ],
        rows,
    )


def shapes_and_saturation(bench: Bench) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every shape on both servers (interleaved repeats), then saturation; returns the
    ``fanout`` (shapes) and ``saturation`` results."""
    p = bench.params
    servers: dict[str, ServerProcess] = {}
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {}
    saturation: dict[str, Any] = {"params": p.as_dict()}
    try:
        servers["securechat"] = bench.securechat("fanout", p.setup_bcrypt_cost)
        servers["reference"] = bench.reference()
        for size in _sizes(bench):
            _measure_size(bench, size, servers, raw, saturation)
    finally:
        for server in servers.values():
            bench.stop(server)
    shapes = {name: summarise_shape(runs) for name, runs in raw.items()}
    show_shapes(shapes)
    fanout: dict[str, Any] = {"params": p.as_dict(), "shapes": shapes}
    main = shapes.get("50x2 spread") or next(iter(shapes.values()))
    fanout["cpu_per_delivery_ratio"] = main["cpu_per_delivery_ratio"]
    fanout["p99_ms"] = main["securechat"]["p99_ms"]
    fanout["reference"] = {"latency_ms": {"p99": main["reference"]["p99_ms"]}}
    saturation["ratio"] = ratio(
        saturation["securechat"]["max_sustained_deliveries_per_s"],
        saturation["reference"]["max_sustained_deliveries_per_s"],
    )
    show(
        "[2] saturation summary",
        ["system", "max sustained deliveries/s"],
        [[s, saturation[s]["max_sustained_deliveries_per_s"]] for s in SYSTEMS]
        + [["ratio", saturation["ratio"]]],
    )
    return fanout, saturation
