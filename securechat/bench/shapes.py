"""Scenarios 1 and 2 (issue 18): every load shape on both servers in the same run, then saturation.

Both servers run side by side for the whole scenario; for each room size both get their own
room of members (separate load processes, separate connections). Each shape (members, rate per
member, sends spread evenly over the period or all at the same instant) is measured
``shape_repeats`` times, the two systems interleaved (securechat first in even repeats, the
reference first in odd ones) so a change in the machine's load hits both alike; the figures are
the medians over the repeats, and the ratios are securechat's median over the reference's.
Saturation follows on the ``room_members`` rooms (``Params.saturation``): securechat's legacy
room and its signed room (the default kind of room since issue 15), each against the reference.

A shape's room kind (issue 15): ``legacy`` rooms get one ciphertext per recipient device;
``signed`` rooms (signed_room.py: a signed roster, one room message per send, stored once)
get their own securechat room and load processes beside the legacy one of the same size, and
their steps also record what each message left in the store (stored.py) and whether every
member received every message.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

from securechat.bench.harness import ROOM_1000, STEP_HEADER, Bench, run_step, step_row
from securechat.bench.procs import ServerProcess
from securechat.bench.report import ratio, show
from securechat.bench.scenarios import SYSTEMS, drain, saturate
from securechat.bench.stored import footprint, per_message
from securechat.bench.workers import Workers

LEGACY, SIGNED = "legacy", "signed"  # room kinds of a shape (Params.shapes)
STORE_TAG = "fanout"  # the securechat server of the shapes
DRAIN_MAX_S = 30.0
# before a saturation search: the search before it may have left a backlog of minutes' worth
SATURATION_DRAIN_MAX_S = 120.0
FIFTY_SIGNED = "50x2 spread signed"  # what the big room is compared with
# Saturation searches: (result key, server, load pool); each securechat room kind is compared
# with the one reference search.
SATURATED = (
    ("securechat", "securechat", LEGACY),
    ("securechat_signed", "securechat", SIGNED),
    ("reference", "reference", "reference"),
)

FIGURES = (
    "server_cpu_us_per_delivery",
    "p50_ms",
    "p99_ms",
    "delivered_per_s",
    "deliveries_per_write",
)
STORED = ("room_log_rows_per_message", "room_log_bytes_per_message",
          "store_rows_per_message", "store_bytes_per_message")  # fmt: skip


def figures(step: dict[str, Any]) -> dict[str, float]:
    """The per-step figures the shapes table compares."""
    return {
        "server_cpu_us_per_delivery": step["server_cpu_s_per_1k_deliveries"] * 1000.0,
        "p50_ms": step["latency_ms"]["p50"],
        "p99_ms": step["latency_ms"]["p99"],
        "delivered_per_s": step["delivered_per_s"],
        "deliveries_per_write": step.get("deliveries_per_write", math.nan),
    }


def medians(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the repeats, plus every repeat's p99 (is the tail steady?)."""
    each = [figures(s) for s in steps]
    out: dict[str, Any] = {k: statistics.median(f[k] for f in each) for k in FIGURES}
    out["p99_ms_each"] = [f["p99_ms"] for f in each]
    out["cpu_us_each"] = [f["server_cpu_us_per_delivery"] for f in each]
    stored = [s["stored"] for s in steps if "stored" in s]
    if stored:
        out["stored"] = {k: statistics.median(x[k] for x in stored) for k in STORED}
    return out


def summarise_shape(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    sc, ref = medians(runs["securechat"]), medians(runs["reference"])
    first = runs["securechat"][0]
    return {
        "members": first["members"],
        "senders": first["senders"],
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
    sizes = sorted({members for _, members, _, _, _ in p.shapes})
    return sizes if p.room_members in sizes or not p.saturation else [*sizes, p.room_members]


def _pools(bench: Bench, size: int, servers: dict[str, ServerProcess]) -> dict[str, Workers]:
    """The load pools of one room size: the reference's, securechat's legacy room when a legacy
    shape (or saturation) needs it, securechat's signed room when a signed shape does."""
    p = bench.params
    kinds = {kind for _, members, _, _, kind in p.shapes if members == size}
    if p.saturation and size == p.room_members:
        kinds |= {LEGACY, SIGNED}
    pools: dict[str, Workers] = {}
    room = f"room{size}"
    try:
        pools["reference"] = bench.room_pool(servers["reference"], "reference", size, room)
        if LEGACY in kinds:
            pools[LEGACY] = bench.room_pool(servers["securechat"], "securechat", size, room)
        if SIGNED in kinds:
            pools[SIGNED] = bench.room_pool(
                servers["securechat"], "securechat", size, f"signed{size}", signed=True
            )
    except BaseException:
        for pool in pools.values():
            pool.close()
        raise
    return pools


def _step(
    bench: Bench, pool: Workers, server: ServerProcess, shape: tuple[str, int, float, str, str]
) -> dict[str, Any]:
    p = bench.params
    name, members, rate, pattern, _ = shape
    return run_step(
        pool,
        server,
        members,
        rate,
        p.fanout_warmup_s,
        p.fanout_s,
        p.step_lead_s,
        pattern,
        p.senders(name),
    )


def _signed_step(
    bench: Bench, pool: Workers, server: ServerProcess, shape: tuple[str, int, float, str, str]
) -> dict[str, Any]:
    """A step of a signed room, with what it left in the store per message."""
    members = shape[1]
    db, room = bench.store_path(STORE_TAG), f"signed{members}"
    before = footprint(db, room)
    step = _step(bench, pool, server, shape)
    # every member got every message (checked after the window: the late ones too), so every
    # message of the step is stored by now
    step["all_delivered"] = drain(pool, members, DRAIN_MAX_S)
    step["stored"] = per_message(before, footprint(db, room), step["sent_messages"])
    counts = pool.call("counts")
    step["sent_total"] = sum(c["sent"] for c in counts)
    step["received_total"] = sum(c["received"] for c in counts)
    return step


def drain_all(pools: dict[str, Workers], members: int) -> bool:
    """Wait until every pool's messages reached all their recipients (each at most
    SATURATION_DRAIN_MAX_S); False when one did not."""
    return all([drain(pool, members, SATURATION_DRAIN_MAX_S) for pool in pools.values()])


def _measure_size(
    bench: Bench,
    size: int,
    servers: dict[str, ServerProcess],
    shapes: dict[str, dict[str, list[dict[str, Any]]]],
    saturation: dict[str, Any],
    setup_s: dict[int, float],
) -> None:
    p = bench.params
    started = time.perf_counter()
    pools = _pools(bench, size, servers)
    setup_s[size] = time.perf_counter() - started
    print(f"[1] room of {size}: set-up (both servers' pools) {setup_s[size]:.1f} s", flush=True)
    try:
        for repeat in range(p.shape_repeats):
            order = SYSTEMS if repeat % 2 == 0 else SYSTEMS[::-1]
            for shape in p.shapes:
                name, members, _, _, kind = shape
                if members != size:
                    continue
                for system in order:
                    if system == "reference":
                        step = _step(bench, pools[system], servers[system], shape)
                    elif kind == SIGNED:
                        step = _signed_step(bench, pools[kind], servers[system], shape)
                    else:
                        step = _step(bench, pools[kind], servers[system], shape)
                    step["shape"], step["repeat"], step["room"] = name, repeat, kind
                    shapes.setdefault(name, {s: [] for s in SYSTEMS})[system].append(step)
                    show(f"[1] {name} #{repeat + 1}", STEP_HEADER, [step_row(system, step)])
        if p.saturation and size == p.room_members:
            for label, system, pool_name in SATURATED:
                pool = pools[pool_name]
                # Another search on the same server (the legacy room's before the signed
                # room's) ends overloaded: its backlog must be gone before this one starts.
                drained = drain_all(pools, size)
                first = run_step(
                    pool,
                    servers[system],
                    size,
                    p.fixed_rate_per_member,
                    p.fanout_warmup_s,
                    p.saturation_step_s,
                    p.step_lead_s,
                )
                first["started_drained"] = drained
                saturation[label] = saturate(bench, pool, servers[system], first)
                show(
                    f"[2] saturation, {label}",
                    STEP_HEADER,
                    [step_row(system, s) for s in saturation[label]["steps"]],
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
                sc["deliveries_per_write"],
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
            "sc deliv/write",
        ],
        rows,
    )
    stored = [
        [name, *(shape["securechat"]["stored"][k] for k in STORED)]
        for name, shape in shapes.items()
        if "stored" in shape["securechat"]
    ]
    if stored:
        show(
            "[1] stored per room message (signed rooms; medians over the repeats)",
            ["shape", "room log rows", "room log bytes", "store rows", "store bytes"],
            stored,
        )


def room_1000(shapes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Issue 18's big-room target: the big signed room's server CPU per delivery over the
    50-member signed room's, both measured in this run (and each one's ratio to the reference
    driven with the same shape)."""
    big, fifty = shapes[ROOM_1000], shapes.get(FIFTY_SIGNED)
    cpu = big["securechat"]["server_cpu_us_per_delivery"]
    out: dict[str, Any] = {
        "shape": ROOM_1000,
        "members": big["members"],
        "senders": big["senders"],
        "cpu_us_per_delivery": cpu,
        "cpu_ratio_to_50": math.nan,
        "cpu_ratio_to_reference": big["cpu_per_delivery_ratio"],
        "all_delivered": all(s["all_delivered"] for s in big["steps"]["securechat"]),
    }
    if fifty is not None:
        out["cpu_ratio_to_50"] = ratio(cpu, fifty["securechat"]["server_cpu_us_per_delivery"])
    members = big["members"]
    note = f"{ROOM_1000}: {members} members, {big['senders']} of them sending"
    if members != 1000:
        note += f" (NOT 1,000: fewer members in --quick; the ratio is for {members})"
    if fifty is None:
        note += f"; {FIFTY_SIGNED} not run, so no ratio to it"
    out["note"] = note
    print(f"[1] {note}: ratio to {FIFTY_SIGNED} {out['cpu_ratio_to_50']:.2f}", flush=True)
    return out


def shapes_and_saturation(bench: Bench) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every shape on both servers (interleaved repeats), then saturation; returns the
    ``fanout`` (shapes) and ``saturation`` results."""
    p = bench.params
    servers: dict[str, ServerProcess] = {}
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {}
    saturation: dict[str, Any] = {"params": p.as_dict()}
    setup_s: dict[int, float] = {}
    try:
        servers["securechat"] = bench.securechat(STORE_TAG, p.setup_bcrypt_cost)
        servers["reference"] = bench.reference()
        for size in _sizes(bench):
            _measure_size(bench, size, servers, raw, saturation, setup_s)
    finally:
        for server in servers.values():
            bench.stop(server)
    shapes = {name: summarise_shape(runs) for name, runs in raw.items()}
    show_shapes(shapes)
    fanout: dict[str, Any] = {"params": p.as_dict(), "shapes": shapes, "setup_s": setup_s}
    if ROOM_1000 in shapes:
        fanout["room_1000"] = room_1000(shapes)
    main = shapes.get("50x2 spread") or next(iter(shapes.values()))
    fanout["cpu_per_delivery_ratio"] = main["cpu_per_delivery_ratio"]
    fanout["p99_ms"] = main["securechat"]["p99_ms"]
    fanout["reference"] = {"latency_ms": {"p99": main["reference"]["p99_ms"]}}
    if not p.saturation:
        saturation["skipped"] = "saturation not run (--no-saturation)"
        return fanout, saturation
    best = {label: saturation[label]["max_sustained_deliveries_per_s"] for label, *_ in SATURATED}
    saturation["ratio"] = ratio(best["securechat"], best["reference"])
    saturation["ratio_signed"] = ratio(best["securechat_signed"], best["reference"])
    drained = {
        label: saturation[label]["max_sustained_drained_deliveries_per_s"]
        for label, *_ in SATURATED
    }
    saturation["ratio_drained"] = ratio(drained["securechat"], drained["reference"])
    saturation["ratio_signed_drained"] = ratio(drained["securechat_signed"], drained["reference"])
    show(
        "[2] saturation summary",
        ["system", "max sustained deliveries/s"],
        [[label, figure] for label, figure in best.items()]
        + [["ratio (legacy room)", saturation["ratio"]]]
        + [["ratio (signed room)", saturation["ratio_signed"]]]
        + [["ratios, steps that started drained", saturation["ratio_drained"]]]
        + [["  (signed room)", saturation["ratio_signed_drained"]]],
    )
    return fanout, saturation
