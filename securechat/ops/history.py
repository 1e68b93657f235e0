"""The last hour of the node in memory: rates, latency quantiles and counts in ring buffers.

Every ``step_s`` seconds :meth:`History.sample` reads the running totals (messages accepted,
deliveries, logins by outcome, non-OK RPCs by gRPC code, the send-latency histogram) and the
stream gauge, and appends one point per series: the growth since the previous sample divided by
the time between them, or the p50/p99 of the sends in that interval, estimated from the histogram
buckets the way Prometheus' ``histogram_quantile`` does. Each series is a ``deque`` of
``window_s / step_s`` points, so memory is fixed whatever the load; the only series created on the
fly are one per login outcome and per gRPC status code, both small closed sets.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Series that always exist, in the order the page draws them.
FIXED = ("messages_per_s", "deliveries_per_s", "send_p50_ms", "send_p99_ms", "streams")
LOGINS = "logins_per_min:"
ERRORS = "errors_per_min:"
ALL = "all"


@dataclass(frozen=True, slots=True)
class Totals:
    """Running totals at one instant (counters only grow; ``streams`` is a gauge)."""

    messages: float
    deliveries: float
    streams: float
    logins: Mapping[str, float]
    errors: Mapping[str, float]
    latency_buckets: Sequence[tuple[float, float]]
    """Cumulative (upper bound in seconds, count) pairs of the send-latency histogram, +Inf last."""


def quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The q-quantile of observations given cumulative buckets (None when there are none)."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower  # beyond the largest finite bucket: its bound is all we know
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower  # pragma: no cover - the +Inf bucket holds every observation


@dataclass
class History:
    window_s: float = 3600.0
    step_s: float = 5.0
    wall: Callable[[], float] = time.time
    points: int = field(init=False)
    times: deque[int] = field(init=False)
    series: dict[str, deque[float | None]] = field(init=False)
    _last: tuple[float, Totals] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.points = max(2, int(self.window_s / self.step_s))
        self.times = deque(maxlen=self.points)
        self.series = {}
        for name in (*FIXED, LOGINS + ALL, ERRORS + ALL):
            self._series(name)

    def _series(self, name: str) -> deque[float | None]:
        found = self.series.get(name)
        if found is None:
            # A series that appears late starts with zeros, aligned with the others.
            found = deque([0.0] * len(self.times), maxlen=self.points)
            self.series[name] = found
        return found

    def sample(self, totals: Totals) -> None:
        """Append one point per series (the first call only records the starting totals)."""
        now = self.wall()
        last, self._last = self._last, (now, totals)
        if last is None:
            return
        then, before = last
        elapsed = now - then
        if elapsed <= 0:
            return
        values: dict[str, float | None] = {
            "messages_per_s": max(0.0, totals.messages - before.messages) / elapsed,
            "deliveries_per_s": max(0.0, totals.deliveries - before.deliveries) / elapsed,
            "streams": totals.streams,
        }
        interval = _bucket_growth(before.latency_buckets, totals.latency_buckets)
        for name, q in (("send_p50_ms", 0.5), ("send_p99_ms", 0.99)):
            seconds = quantile(q, interval)
            values[name] = None if seconds is None else seconds * 1000
        for prefix, now_totals, then_totals in (
            (LOGINS, totals.logins, before.logins),
            (ERRORS, totals.errors, before.errors),
        ):
            per_min = {
                key: max(0.0, value - then_totals.get(key, 0.0)) * 60 / elapsed
                for key, value in now_totals.items()
            }
            for key, rate in per_min.items():
                values[prefix + key] = rate
            values[prefix + ALL] = sum(per_min.values())
        for name in values:
            self._series(name)
        self.times.append(int(now * 1000))
        for name, points in self.series.items():
            value = values.get(name, 0.0)
            points.append(None if value is None else round(value, 3))

    def to_json(self) -> dict[str, Any]:
        """What ``/api/history`` serves: times (ms since the epoch) and aligned series."""
        return {
            "window_s": self.window_s,
            "step_s": self.step_s,
            "times_ms": list(self.times),
            "series": {name: list(points) for name, points in sorted(self.series.items())},
        }


def _bucket_growth(
    before: Sequence[tuple[float, float]], after: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    old = dict(before)
    return [(bound, max(0.0, count - old.get(bound, 0.0))) for bound, count in after]
