"""The running node as operators see it: a message-rate meter and the status snapshot.

The status page, ``/api/status`` and the server console read the node through
:class:`securechat.services.view.NodeView`; this package never imports grpc or the transport.
A snapshot holds no secrets and no message content.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from securechat.ops.metrics import Metrics
from securechat.services.view import NodeView


class RateMeter:
    """Messages per second from a running total, sampled over a sliding window.

    ``sample()`` is called on a timer (and before each snapshot); the rate is the growth of the
    total between the oldest and the newest sample inside ``window_s``.
    """

    def __init__(
        self,
        total: Callable[[], int],
        window_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.window_s = window_s
        self.clock = clock
        self._samples: deque[tuple[float, int]] = deque()

    def sample(self) -> None:
        now = self.clock()
        self._samples.append((now, self.total()))
        # Keep one sample older than the window so the rate always spans the whole window.
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window_s:
            self._samples.popleft()

    def rate(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        if t1 <= t0:
            return 0.0
        return max(0, n1 - n0) / (t1 - t0)


async def build_status(view: NodeView, metrics: Metrics, rate: RateMeter) -> dict[str, Any]:
    """The JSON document behind ``/api/status`` and the status page."""
    rate.sample()
    stats = await view.stats()
    rooms = await view.rooms()
    logins = dict(view.login_outcomes)
    metrics.sync(logins, view.deliveries)
    now_ms = view.now_ms()
    return {
        "version": stats.version,
        "node": view.name,
        "uptime_s": stats.uptime_s,
        "server_time_ms": now_ms,
        "connected_streams": stats.connected_streams,
        "users": stats.users,
        "messages_accepted": stats.messages_accepted,
        "messages_per_second": round(rate.rate(), 2),
        "deliveries": stats.deliveries,
        "pending_messages": stats.pending_messages,
        "logins": logins,
        "clients": [
            {
                "user": c.device.user,
                "device": c.device.device_id,
                "peer": c.peer,
                "certificate_subject": c.cert_subject,
                "since_ms": c.connected_ms,
                "messages_sent": c.messages_sent,
            }
            for c in view.clients()
        ],
        "rooms": [
            {"name": r.name, "members": r.member_count, "protected": r.protected} for r in rooms
        ],
    }


def format_duration(seconds: int) -> str:
    """``93784`` -> ``1d 2h 3m 4s`` (the console and the page show uptime this way)."""
    days, rest = divmod(max(0, seconds), 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m")]
    shown = "".join(f"{n}{unit} " for n, unit in parts if n)
    return f"{shown}{secs}s"
