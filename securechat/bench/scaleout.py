"""Scenario 6, scale-out: saturation of `securechat-server --workers N` on PostgreSQL + Redis."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import redis

from securechat.bench import procs
from securechat.bench.harness import STEP_HEADER, Bench, Params, run_step, step_row
from securechat.bench.procs import ServerProcess
from securechat.bench.report import ratio, show
from securechat.bench.scenarios import saturate

CONNECT_TIMEOUT_S = 3.0


def free_port() -> int:
    """A port that was free a moment ago (--workers needs a fixed port, not 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _admin_execute(server_url: str, sql: str) -> None:
    admin = await asyncpg.connect(f"{server_url}/postgres", timeout=CONNECT_TIMEOUT_S)
    try:
        await admin.execute(sql)
    finally:
        await admin.close()


def unavailable(p: Params) -> str | None:
    """Why PostgreSQL or Redis cannot be used (None when both answer)."""
    try:
        asyncio.run(_admin_execute(p.scaleout_postgres, "SELECT 1"))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"PostgreSQL not reachable at {p.scaleout_postgres}: {type(exc).__name__}: {exc}"
    client = redis.Redis.from_url(p.scaleout_redis, socket_timeout=CONNECT_TIMEOUT_S)
    try:
        client.ping()
    except (OSError, redis.RedisError) as exc:
        return f"Redis not reachable at {p.scaleout_redis}: {type(exc).__name__}: {exc}"
    finally:
        client.close()
    return None


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new PostgreSQL database for one run (``CREATE DATABASE``), dropped afterwards."""
    name = f"securechat_bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin_execute(server_url, f'CREATE DATABASE "{name}"'))
    try:
        yield f"{server_url}/{name}"
    finally:
        asyncio.run(_admin_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def fresh_bus(redis_url: str) -> Iterator[str]:
    """A bus URL with a prefix of its own; the prefix's keys are deleted afterwards."""
    prefix = f"securechat-bench-{uuid.uuid4().hex[:12]}"
    try:
        yield f"{redis_url}?prefix={prefix}"
    finally:
        client = redis.Redis.from_url(redis_url, socket_timeout=CONNECT_TIMEOUT_S)
        try:
            keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
            if keys:
                client.delete(*keys)
        except (OSError, redis.RedisError):
            pass  # leftovers under a unique prefix harm nobody
        finally:
            client.close()


def start_workers(bench: Bench, workers: int, db: str, bus: str) -> ServerProcess:
    """`securechat-server --workers N` on a free fixed port; returns once every worker listens."""
    env = procs.securechat_env(
        bench.params.setup_bcrypt_cost, {"SECURECHAT_SERVER_GRACE_PERIOD_S": "1"}
    )
    server = procs.start_securechat(
        bench.workdir,
        bench.pki.directory,
        env,
        tag=f"scaleout-{workers}",
        port=free_port(),
        extra_args=["--db", db, "--bus", bus, "--workers", str(workers), "--no-console"],
        listeners=workers,
    )
    bench.servers.append(server)
    return server


def worker_cpu(server: ServerProcess) -> dict[int, float]:
    """CPU seconds per server process: the workers (children), or the server itself."""
    pids = procs.children(server.pid) or [server.pid]
    return {pid: procs.cpu_seconds(pid) for pid in pids}


def _one(bench: Bench, workers: int) -> dict[str, Any]:
    p = bench.params
    with (
        fresh_database(p.scaleout_postgres) as db,
        fresh_bus(p.scaleout_redis) as bus,
    ):
        server = start_workers(bench, workers, db, bus)
        try:
            pool = bench.room_pool(server, "securechat", p.room_members, room="scaleout")
            try:
                cpu0 = worker_cpu(server)
                first = run_step(
                    pool,
                    server,
                    p.room_members,
                    p.fixed_rate_per_member,
                    p.fanout_warmup_s,
                    p.saturation_step_s,
                    p.step_lead_s,
                )
                result = saturate(bench, pool, server, first)
                cpu1 = worker_cpu(server)
            finally:
                pool.close()
        finally:
            bench.stop(server)
    result["workers"] = workers
    result["worker_cpu_s_during_search"] = [cpu1[pid] - cpu0.get(pid, 0.0) for pid in cpu1]
    show(
        f"[6] scale-out saturation, {workers} worker(s)",
        STEP_HEADER,
        [step_row(f"{workers}w", s) for s in result["steps"]],
    )
    return result


def scaleout(bench: Bench) -> dict[str, Any]:
    """Max sustained deliveries/s with 1 and with 2 worker processes, and their ratio."""
    p = bench.params
    result: dict[str, Any] = {"params": p.as_dict(), "worker_counts": list(p.scaleout_workers)}
    reason = unavailable(p)
    if reason is not None:
        print(f"\n[6] scale-out skipped: {reason}", flush=True)
        result.update(available=False, reason=reason)
        return result
    result["available"] = True
    for workers in p.scaleout_workers:
        result[f"workers_{workers}"] = _one(bench, workers)
    best = {w: result[f"workers_{w}"]["max_sustained_deliveries_per_s"] for w in p.scaleout_workers}
    low, high = min(p.scaleout_workers), max(p.scaleout_workers)
    result["ratio"] = ratio(best[high], best[low])
    show(
        "[6] scale-out summary (PostgreSQL + Redis)",
        ["workers", "max sustained deliveries/s", "worker CPU s (search)"],
        [
            [
                w,
                best[w],
                " / ".join(
                    f"{c:.1f}" for c in result[f"workers_{w}"]["worker_cpu_s_during_search"]
                ),
            ]
            for w in p.scaleout_workers
        ]
        + [[f"ratio {high}/{low}", result["ratio"], ""]],
    )
    return result
