"""Prometheus metrics (securechat_*), one registry per server so tests stay independent.

Besides the project's own metrics the registry holds the standard ``process_*``, ``python_info``
and ``python_gc_*`` collectors and ``securechat_build_info``. The store counts (registered users,
undelivered mailbox entries, rooms) are gauges the status server refreshes on an interval
(:meth:`Metrics.set_store_counts`), so a scrape never runs a COUNT.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from importlib.metadata import version

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.metrics import MetricWrapperBase

from securechat import __version__
from securechat.errors import SlowConsumer
from securechat.services.stream_events import Ending


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        Info("securechat_build", "Version of the running server", registry=r).info(
            {
                "version": __version__,
                "python": platform.python_version(),
                "grpcio": version("grpcio"),
            }
        )
        self.users = Gauge(
            "securechat_registered_users", "Registered accounts (refreshed on an interval)",
            registry=r,
        )  # fmt: skip
        self.pending = Gauge(
            "securechat_undelivered_entries",
            "Mailbox entries stored and not yet acknowledged (refreshed on an interval)",
            registry=r,
        )
        self.rooms = Gauge("securechat_rooms", "Rooms (refreshed on an interval)", registry=r)
        self.streams = Gauge("securechat_streams", "Connected Chat streams", registry=r)
        self.rpcs = Counter(
            "securechat_rpcs", "RPCs handled by method and status", ["method", "code"], registry=r
        )
        self.rpc_latency = Histogram(
            "securechat_rpc_latency_seconds",
            "Unary RPC handling time",
            ["method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.deliveries = Counter(
            "securechat_deliveries", "Mailbox entries stored for recipient devices", registry=r
        )
        self.messages = Counter("securechat_messages_accepted", "Sends accepted", registry=r)
        self.send_latency = Histogram(
            "securechat_send_latency_seconds",
            "From receiving a send to its acknowledgement (validation + durable store)",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
            registry=r,
        )
        self.frames = Counter("securechat_frames", "Server frames written to streams", registry=r)
        self.queue_drops = Counter(
            "securechat_queue_drops",
            "Streams cut off because their consumer fell behind",
            registry=r,
        )
        self.logins = Counter(
            "securechat_logins", "Login attempts by outcome", ["outcome"], registry=r
        )
        self.store_latency = Histogram(
            "securechat_store_commit_seconds",
            "Group-commit transaction time",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
            registry=r,
        )
        # What sync() last added, so scrapes only ever add the difference.
        self._synced_logins: dict[str, int] = {}
        self._synced_deliveries = 0

    # ---- services.chat.ChatObserver: what the Chat streams report ----------------------------
    def stream_opened(self) -> None:
        self.streams.inc()

    def stream_closed(self, ending: Ending | None) -> None:
        self.streams.dec()
        if isinstance(ending, SlowConsumer):
            self.queue_drops.inc()

    def frame_written(self) -> None:
        self.frames.inc()

    def send_accepted(self, seconds: float) -> None:
        self.messages.inc()
        self.send_latency.observe(seconds)

    def set_store_counts(self, users: int, rooms: int, pending: int) -> None:
        self.users.set(users)
        self.rooms.set(rooms)
        self.pending.set(pending)

    def sync(self, login_outcomes: Mapping[str, int], deliveries: int) -> None:
        """Bring the login and delivery counters up to the services' own running totals.

        The services count logins (``Accounts.login_outcomes``) and deliveries
        (``Messenger.deliveries``) without importing prometheus; the status server calls this
        before every scrape and every status snapshot. Counters only move forward.
        """
        for outcome, total in login_outcomes.items():
            delta = total - self._synced_logins.get(outcome, 0)
            if delta > 0:
                self.logins.labels(outcome).inc(delta)
                self._synced_logins[outcome] = total
            elif outcome not in self._synced_logins:
                self.logins.labels(outcome)  # expose a zero sample for every known outcome
                self._synced_logins[outcome] = total
        delta = deliveries - self._synced_deliveries
        if delta > 0:
            self.deliveries.inc(delta)
            self._synced_deliveries = deliveries


def samples(metric: MetricWrapperBase) -> list[tuple[str, dict[str, str], float]]:
    """Current samples of one metric as (name, labels, value): what a scrape would show."""
    return [(x.name, x.labels, x.value) for family in metric.collect() for x in family.samples]
