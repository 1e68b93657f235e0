"""The bench's shared set-up: parameters, the throwaway PKI, servers, and one measured load step."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from securechat.bench import procs
from securechat.bench.procs import ServerProcess
from securechat.bench.report import percentiles, ratio
from securechat.bench.workers import Workers, split
from securechat.client.rpc import ACK_EVERY_S, ROOM_ACK_EVERY_S
from securechat.pki import DevPki, make_dev_pki

# Issue 18's big room: 1,000 members on real streams, a few of them sending (2 msg/s in all,
# about 2,000 deliveries/s); --quick runs it with fewer members (the output says how many).
ROOM_1000 = "1000x spread signed"
ROOM_1000_SENDERS = 4
QUICK_ROOM_1000_MEMBERS = 200


@dataclass(frozen=True)
class Params:
    """Every knob of a run (recorded in each result so a run can be repeated)."""

    quick: bool
    room_members: int = 50
    room_processes: int = 2
    fixed_rate_per_member: float = 2.0  # 50 members x 2 msg/s x 49 recipients = 4,900/s
    # The load shapes of issue 18 (name, members, msg/s per member, send pattern, room kind),
    # each measured on both servers in the same run, interleaved, ``shape_repeats`` times
    # (medians reported). Room kind "legacy": one ciphertext per recipient device; "signed"
    # (issue 15): a signed roster, one room message per send stored once. The rate is per
    # sending member: every member sends, except in the shapes of ``shape_senders``.
    shapes: tuple[tuple[str, int, float, str, str], ...] = (
        ("10x2 spread", 10, 2.0, "spread", "legacy"),
        ("50x2 spread", 50, 2.0, "spread", "legacy"),
        ("50x2 burst", 50, 2.0, "burst", "legacy"),
        ("10x2 spread signed", 10, 2.0, "spread", "signed"),
        ("50x2 spread signed", 50, 2.0, "spread", "signed"),
        ("50x2 burst signed", 50, 2.0, "burst", "signed"),
        (ROOM_1000, 1000, 2.0 / ROOM_1000_SENDERS, "spread", "signed"),
    )
    # shapes where only the room's first N members send (the others only receive)
    shape_senders: tuple[tuple[str, int], ...] = ((ROOM_1000, ROOM_1000_SENDERS),)
    saturation: bool = True  # scenario 2 after the shapes
    shape_repeats: int = 3
    fanout_warmup_s: float = 2.0
    fanout_s: float = 10.0
    saturation_step_s: float = 6.0
    saturation_max_p99_ms: float = 1000.0
    saturation_min_delivered_fraction: float = 0.9
    saturation_rates: tuple[float, ...] = (2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0)
    idle_clients: int = 5000
    idle_processes: int = 4
    storm_logins: int = 50
    storm_room_members: int = 30
    storm_rate_per_member: float = 2.0
    storm_before_s: float = 6.0
    catchup_messages: int = 10_000
    catchup_senders: int = 4
    catchup_concurrency: int = 64
    setup_bcrypt_cost: int = 4
    storm_bcrypt_cost: str = "default (12)"
    ciphertext_bytes: str = "200-400 random, first 8 = send time"
    ack_every_s: float = ACK_EVERY_S  # the client library's own cadences
    room_ack_every_s: float = ROOM_ACK_EVERY_S
    step_lead_s: float = 1.5  # time the load processes get to prepare a step before it starts
    idle_settle_before_s: float = 2.0
    idle_settle_after_s: float = 3.0
    storm_margin_s: float = 5.0  # added to the storm's estimated duration
    scaleout_workers: tuple[int, ...] = (1, 2)
    scaleout_postgres: str = "postgresql://postgres@127.0.0.1:5432"
    scaleout_redis: str = "redis://127.0.0.1:6379/0"

    @classmethod
    def for_run(cls, quick: bool) -> Params:
        if not quick:
            return cls(quick=False)
        shapes = tuple(
            (name, QUICK_ROOM_1000_MEMBERS if name == ROOM_1000 else members, *rest)
            for name, members, *rest in cls(quick=True).shapes
        )
        return cls(
            quick=True,
            shapes=shapes,  # type: ignore[arg-type]
            fanout_warmup_s=1.0,
            fanout_s=4.0,
            shape_repeats=1,
            saturation_step_s=2.5,
            idle_clients=500,
            idle_processes=2,
            storm_logins=20,
            storm_room_members=10,
            storm_before_s=3.0,
            catchup_messages=1000,
        )

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def senders(self, shape: str) -> int | None:
        """How many of the shape's members send (None: all of them)."""
        return dict(self.shape_senders).get(shape)


@dataclass
class Bench:
    """A run's working directory, PKI and servers (stopped by ``close``)."""

    workdir: Path
    params: Params
    pki: DevPki = field(init=False)
    servers: list[ServerProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.pki = make_dev_pki(self.workdir / "pki", clients=("bench",))

    def tls_spec(self, port: int) -> dict[str, Any]:
        paths = self.pki.client("bench")
        return {
            "port": port,
            "ca": str(self.pki.ca_cert),
            "cert": str(paths.cert),
            "key": str(paths.key),
        }

    def securechat(
        self,
        tag: str,
        bcrypt_cost: int | None,
        extra_env: dict[str, str] | None = None,
        program: Sequence[str] | None = None,
    ) -> ServerProcess:
        """A securechat server; ``program`` replaces the `securechat-server` command."""
        env = procs.securechat_env(bcrypt_cost, extra_env)
        server = procs.start_securechat(self.workdir, self.pki.directory, env, tag, program=program)
        self.servers.append(server)
        return server

    def reference(
        self,
        extra_args: Sequence[str] = (),
        program: Sequence[str] | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> ServerProcess:
        """The bare reference; ``program`` replaces its command (scripts/heap_server.py)."""
        server = procs.start_reference(
            self.workdir, self.pki.directory, extra_args, program, extra_env
        )
        self.servers.append(server)
        return server

    def stop(self, server: ServerProcess) -> None:
        server.stop()
        if server in self.servers:
            self.servers.remove(server)

    def close(self) -> None:
        for server in list(self.servers):
            self.stop(server)

    def store_path(self, tag: str) -> Path:
        """The SQLite file of the securechat server started with ``tag`` (its default store)."""
        return self.workdir / f"{tag}-data" / "securechat.db"

    def room_pool(
        self,
        server: ServerProcess,
        system: str,
        members: int,
        room: str = "bench",
        *,
        signed: bool = False,
    ) -> Workers:
        parts = split(range(members), self.params.room_processes)
        specs = [
            {
                **self.tls_spec(server.port),
                "system": system,
                "room": room,
                "users": [f"{room}{i:04d}" for i in indexes],
                "indexes": indexes,
                "room_size": members,
                "ack_every_s": self.params.ack_every_s,
                "room_ack_every_s": self.params.room_ack_every_s,
                "signed": signed,
            }
            for indexes in parts
        ]
        pool = Workers("room", specs)
        try:
            pool.call("setup")
        except Exception:
            pool.close()
            raise
        return pool


def sleep_until(t_ns: int) -> None:
    delay = (t_ns - time.time_ns()) / 1e9
    if delay > 0:
        time.sleep(delay)


def loadgen_cpu(pool: Workers) -> float:
    return sum(procs.cpu_seconds(p.pid) for p in pool.procs if p.pid is not None)


def run_step(
    pool: Workers,
    server: ServerProcess,
    members: int,
    rate: float,
    warmup_s: float,
    duration_s: float,
    lead_s: float,
    pattern: str = "spread",
    senders: int | None = None,
) -> dict[str, Any]:
    """Offer ``rate`` messages/s per sending member (``senders`` of them, None: every member),
    sent in ``pattern`` (spread, burst, random; see RoomRole.phase); measure deliveries,
    latency and server CPU."""
    start_ns = time.time_ns() + int(lead_s * 1e9)
    window = (start_ns + int(warmup_s * 1e9), start_ns + int((warmup_s + duration_s) * 1e9))
    command: dict[str, Any] = {
        "rate": rate,
        "start_ns": start_ns,
        "stop_ns": window[1],
        "window": window,
        "pattern": pattern,
    }
    if senders is not None:
        command["senders"] = senders
    pool.send("run", command)
    sleep_until(window[0])
    cpu0, load0, box0 = server.cpu(), loadgen_cpu(pool), procs.machine_busy_seconds()
    sleep_until(window[1])
    cpu1, load1, box1 = server.cpu(), loadgen_cpu(pool), procs.machine_busy_seconds()
    parts = pool.collect()
    latencies = [x for part in parts for x in part["latency_ms"]]
    delivered = sum(p["delivered"] for p in parts)
    frames = sum(p.get("delivery_frames", 0) for p in parts)
    errors: dict[str, int] = {}
    for part in parts:
        for key, count in part["errors"].items():
            errors[key] = errors.get(key, 0) + count
    offered = (members if senders is None else senders) * rate * (members - 1)
    server_cpu = cpu1 - cpu0
    return {
        "rate_per_member": rate,
        "pattern": pattern,
        "members": members,
        "senders": members if senders is None else senders,
        "offered_deliveries_per_s": offered,
        "delivered_per_s": delivered / duration_s,
        "deliveries_per_write": ratio(delivered, frames),  # frames that carried deliveries
        "sent_messages": sum(p["sent"] for p in parts),
        "latency_ms": percentiles(latencies),
        "server_cpu_s": server_cpu,
        "server_cpu_s_per_1k_deliveries": ratio(server_cpu * 1000, delivered),
        "server_cpu_utilisation": server_cpu / duration_s,
        "loadgen_cpu_utilisation": (load1 - load0) / duration_s,
        "machine_cpu_busy_cores": (box1 - box0) / duration_s,
        "errors": errors,
        "reconnects_total": sum(p["reconnects"] for p in parts),
        "duration_s": duration_s,
    }


def step_row(system: str, step: dict[str, Any]) -> list[Any]:
    lat = step["latency_ms"]
    return [
        system,
        step["offered_deliveries_per_s"],
        step["delivered_per_s"],
        lat["p50"],
        lat["p95"],
        lat["p99"],
        step["server_cpu_s_per_1k_deliveries"],
        step["server_cpu_utilisation"],
        step["loadgen_cpu_utilisation"],
        step["machine_cpu_busy_cores"],
    ]


STEP_HEADER = [
    "system",
    "offered/s",
    "delivered/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "cpu s/1k",
    "srv cpu",
    "load cpu",
    "box cpu",
]
