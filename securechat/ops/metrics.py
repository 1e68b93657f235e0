"""Prometheus metrics (securechat_*), one registry per server so tests stay independent."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
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
            "securechat_deliveries", "Mailbox entries written to live streams", registry=r
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
