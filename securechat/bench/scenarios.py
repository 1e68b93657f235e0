"""Saturation search, idle connections, login storm, catch-up (the shapes are in shapes.py).

Each returns a plain dict (written to bench/results/<scenario>.json by the caller) and prints
its table.
"""

from __future__ import annotations

import math
import time
from typing import Any

import bcrypt

from securechat.bench.harness import (
    Bench,
    run_step,
    sleep_until,
)
from securechat.bench.procs import ServerProcess
from securechat.bench.report import percentiles, ratio, show
from securechat.bench.workers import Workers, split

SYSTEMS = ("securechat", "reference")


def _passes(bench: Bench, step: dict[str, Any]) -> bool:
    p = bench.params
    p99 = step["latency_ms"]["p99"]
    enough = (
        step["delivered_per_s"]
        >= p.saturation_min_delivered_fraction * step["offered_deliveries_per_s"]
    )
    return enough and math.isfinite(p99) and p99 <= p.saturation_max_p99_ms


def drain(pool: Workers, members: int, max_s: float) -> bool:
    """Wait until every message sent so far has reached every other member (the server's
    backlog from an overloaded step is gone); False when ``max_s`` passed first."""
    deadline = time.monotonic() + max_s
    while time.monotonic() < deadline:
        counts = pool.call("counts")
        sent = sum(c["sent"] for c in counts)
        if sum(c["received"] for c in counts) >= sent * (members - 1):
            return True
        time.sleep(0.2)
    return False


def saturate(
    bench: Bench, pool: Workers, server: ServerProcess, first: dict[str, Any]
) -> dict[str, Any]:
    """Double the offered load until a step fails, then try once halfway (geometrically).

    When even the first step fails, halve the load instead until one passes (at most 3 times).
    """
    p = bench.params
    steps = [first]

    def step(rate: float) -> dict[str, Any]:
        drained = drain(pool, p.room_members, 30.0)
        result = run_step(
            pool, server, p.room_members, rate, 1.0, p.saturation_step_s, p.step_lead_s
        )
        result["started_drained"] = drained
        steps.append(result)
        return result

    best = first if _passes(bench, first) else None
    failed_rate: float | None = None
    if best is None:
        failed_rate, rate = first["rate_per_member"], first["rate_per_member"]
        for _ in range(3):
            rate /= 2
            if _passes(bench, result := step(rate)):
                best = result
                break
            failed_rate = rate
    else:
        for rate in [r for r in p.saturation_rates if r > first["rate_per_member"]]:
            result = step(rate)
            if not _passes(bench, result):
                failed_rate = rate
                break
            best = result
        if failed_rate is not None and best is not None:
            middle = step(math.sqrt(best["rate_per_member"] * failed_rate))
            if _passes(bench, middle) and middle["delivered_per_s"] > best["delivered_per_s"]:
                best = middle
    return {
        "max_sustained_deliveries_per_s": best["delivered_per_s"] if best else 0.0,
        "max_sustained_rate_per_member": best["rate_per_member"] if best else 0.0,
        "max_sustained_drained_deliveries_per_s": best_drained(bench, steps),
        "limit_hit": failed_rate is not None,
        "steps": steps,
    }


def best_drained(bench: Bench, steps: list[dict[str, Any]]) -> float:
    """The best passing step among those that started with no backlog: a step after an
    overloaded one may start before the drain ended (it waits 30 s at most) and then counts
    the backlog's deliveries in its window, so the best step alone can overstate."""
    return max(
        (s["delivered_per_s"] for s in steps if s.get("started_drained") and _passes(bench, s)),
        default=0.0,
    )


# The idle servers' settings: no default room, every idle user alone, so connecting is not a
# presence broadcast to all (see docs/performance.md: with the lobby, connect time grows with N
# squared).
IDLE_ENV = {"SECURECHAT_CHAT_DEFAULT_ROOM": ""}


def idle_streams(bench: Bench, server: ServerProcess, system: str) -> dict[str, Any]:
    """``idle_clients`` idle streams held on ``server`` (securechat or the reference), each on
    its own connection; the server's RSS before and after they connected."""
    p = bench.params
    users = [f"idle{i:05d}" for i in range(p.idle_clients)]
    specs = [
        {**bench.tls_spec(server.port), "system": system, "users": chunk}
        for chunk in split(users, p.idle_processes)
    ]
    pool = Workers("idle", specs)
    try:
        registered = pool.call("register")
        time.sleep(p.idle_settle_before_s)
        rss_before = server.rss_kb()
        cpu_before = server.cpu()
        connected = pool.call("connect")
        time.sleep(p.idle_settle_after_s)
        rss_after = server.rss_kb()
        cpu_after = server.cpu()
    finally:
        pool.close()
    clients = sum(c["connected"] for c in connected)
    return {
        "clients": clients,
        "load_processes": len(specs),
        "register_s": max(r["s"] for r in registered),
        "connect_s": max(c["s"] for c in connected),
        "server_cpu_s_to_connect": cpu_after - cpu_before,
        "rss_kb_before": rss_before,
        "rss_kb_after": rss_after,
        "rss_kb_per_client": ratio(rss_after - rss_before, clients),
    }


def connections(bench: Bench) -> dict[str, Any]:
    """Scenario 3: N idle authenticated Chat streams; server RSS per client, and the same of
    the reference server holding N idle streams (same client TLS, one connection each) in the
    same run. The target is absolute (80 KB); the reference says how much of it is grpc's and
    TLS's own cost."""
    p = bench.params
    server = bench.securechat("idle", p.setup_bcrypt_cost, dict(IDLE_ENV))
    try:
        secure = idle_streams(bench, server, "securechat")
    finally:
        bench.stop(server)
    server = bench.reference()
    try:
        reference = idle_streams(bench, server, "reference")
    finally:
        bench.stop(server)
    result = {
        "params": p.as_dict(),
        **secure,
        "reference": reference,
        "reference_rss_kb_per_client": reference["rss_kb_per_client"],
        "rss_ratio_to_reference": ratio(
            secure["rss_kb_per_client"], reference["rss_kb_per_client"]
        ),
    }
    show(
        "[3] idle connections (securechat vs reference in the same run)",
        ["system", "clients", "RSS before KB", "RSS after KB", "KB/client", "connect s"],
        [
            [system, r["clients"], r["rss_kb_before"], r["rss_kb_after"],
             r["rss_kb_per_client"], r["connect_s"]]
            for system, r in (("securechat", secure), ("reference", reference))
        ]
        + [["ratio", "", "", "", result["rss_ratio_to_reference"], ""]],
    )  # fmt: skip
    return result


def login_storm(bench: Bench) -> dict[str, Any]:
    """Scenario 4: concurrent logins at the default bcrypt cost while a room chats."""
    p = bench.params
    server = bench.securechat("storm", None)  # the default bcrypt cost
    users = [f"storm{i:03d}" for i in range(p.storm_logins)]
    storm = Workers("storm", [{**bench.tls_spec(server.port), "users": users}])
    pool: Workers | None = None
    try:
        storm.call("register")
        pool = bench.room_pool(server, "securechat", p.storm_room_members, room="stormroom")
        salt = bcrypt.gensalt(12)
        started = time.perf_counter()
        bcrypt.hashpw(b"estimate", salt)
        check_s = time.perf_counter() - started
        # the server hashes on 2 threads: ~2x margin
        budget = p.storm_logins * check_s + p.storm_margin_s
        start_ns = time.time_ns() + int(p.step_lead_s * 1e9)
        window = (start_ns + int(1e9), start_ns + int((1 + p.storm_before_s + budget) * 1e9))
        storm_at = window[0] + int(p.storm_before_s * 1e9)
        pool.send(
            "run",
            {
                "rate": p.storm_rate_per_member,
                "start_ns": start_ns,
                "stop_ns": window[1],
                "window": window,
            },
        )
        storm.send("storm", {"at_ns": storm_at})
        sleep_until(window[1])
        storm_result = storm.collect()[0]
        parts = pool.collect()
    finally:
        if pool is not None:
            pool.close()
        storm.close()
        bench.stop(server)
    before_end = (storm_at - window[0]) / 1e6
    storm_s = (storm_result["end_ns"] - storm_result["start_ns"]) / 1e9
    during = (
        (storm_result["start_ns"] - window[0]) / 1e6,
        (storm_result["end_ns"] - window[0]) / 1e6,
    )
    samples = [
        (t, lat) for part in parts for t, lat in zip(part["at_ms"], part["latency_ms"], strict=True)
    ]
    before = percentiles(lat for t, lat in samples if t < before_end)
    storm_lat = percentiles(lat for t, lat in samples if during[0] <= t <= during[1])
    result = {
        "params": p.as_dict(),
        "logins": p.storm_logins,
        "login_failures": storm_result["failures"],
        "storm_s": storm_s,
        "logins_per_s": ratio(p.storm_logins - storm_result["failures"], storm_s),
        "login_latency_s": percentiles(storm_result["login_s"]),
        "bcrypt_cost12_check_s_here": check_s,
        "chat_offered_deliveries_per_s": p.storm_room_members
        * p.storm_rate_per_member
        * (p.storm_room_members - 1),
        "chat_latency_ms_before": before,
        "chat_latency_ms_during": storm_lat,
        "storm_outlasted_window": storm_result["end_ns"] > window[1],
        "errors": [part["errors"] for part in parts],
        "p99_factor": ratio(storm_lat["p99"], before["p99"]),
    }
    show(
        "[4] login storm",
        ["phase", "samples", "p50 ms", "p99 ms", "max ms"],
        [
            ["before", before["n"], before["p50"], before["p99"], before["max"]],
            ["during", storm_lat["n"], storm_lat["p50"], storm_lat["p99"], storm_lat["max"]],
            ["factor", "", "", result["p99_factor"], ""],
        ],
    )
    show(
        "[4] logins",
        ["logins", "failed", "storm s", "logins/s", "login p50 s", "login p99 s"],
        [
            [
                p.storm_logins,
                storm_result["failures"],
                storm_s,
                result["logins_per_s"],
                result["login_latency_s"]["p50"],
                result["login_latency_s"]["p99"],
            ]
        ],
    )
    return result


def catchup(bench: Bench) -> dict[str, Any]:
    """Scenario 5: a device misses N messages, reconnects; time until its mailbox is drained."""
    p = bench.params
    server = bench.securechat("catchup", p.setup_bcrypt_cost)
    spec = {
        **bench.tls_spec(server.port),
        "target": "offline",
        "senders": [f"sender{i}" for i in range(p.catchup_senders)],
    }
    pool = Workers("catchup", [spec])
    try:
        pool.call("setup")
        filled = pool.call(
            "fill", {"messages": p.catchup_messages, "concurrency": p.catchup_concurrency}
        )[0]
        time.sleep(1.0)
        cpu0 = server.cpu()
        drained = pool.call("drain", {"messages": p.catchup_messages, "timeout_s": 300.0})[0]
        cpu1 = server.cpu()
    finally:
        pool.close()
        bench.stop(server)
    result = {
        "params": p.as_dict(),
        "messages": p.catchup_messages,
        "received": drained["received"],
        "complete": drained["received"] >= p.catchup_messages,
        "fill_s": filled["fill_s"],
        "fill_messages_per_s": p.catchup_messages / filled["fill_s"],
        "catchup_s": drained["drain_s"],
        "catchup_messages_per_s": drained["received"] / drained["drain_s"],
        "server_cpu_s_during_catchup": cpu1 - cpu0,
        "errors": drained["errors"],
    }
    show(
        "[5] offline catch-up",
        ["messages", "received", "catch-up s", "msgs/s", "fill s (unary Send)"],
        [
            [
                p.catchup_messages,
                drained["received"],
                drained["drain_s"],
                result["catchup_messages_per_s"],
                filled["fill_s"],
            ]
        ],
    )
    return result
