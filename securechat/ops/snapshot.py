"""The running node as operators see it: a message-rate meter and the status snapshot.

The status page, ``/api/status`` and the server console read the node through
:class:`securechat.services.view.NodeView`; this package never imports grpc or the transport.
A snapshot holds no secrets and no message content, and personal data (user names, addresses,
room names) only for a request that carried the admin token.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from securechat import __version__
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


@dataclass(frozen=True, slots=True)
class StoreCounts:
    """The counts that cost a query, as last refreshed (never on a request's path)."""

    users: int = 0
    rooms: int = 0
    pending: int = 0
    refreshed_ms: int = 0


async def build_status(
    view: NodeView, metrics: Metrics, rate: RateMeter, counts: StoreCounts, *, personal: bool
) -> dict[str, Any]:
    """The JSON document behind ``/api/status`` and the status page.

    User names, peer addresses, certificate subjects and room names are included only when
    ``personal`` (the request carried the admin token); otherwise the page shows counts only.
    """
    rate.sample()
    logins = dict(view.login_outcomes)
    metrics.sync(logins, view.deliveries)
    clients = view.clients()
    status: dict[str, Any] = {
        "version": __version__,
        "node": view.name,
        "uptime_s": view.uptime_s(),
        "server_time_ms": view.now_ms(),
        "connected_streams": len(clients),
        "users": counts.users,
        "rooms_count": counts.rooms,
        "counts_refreshed_ms": counts.refreshed_ms,
        "messages_accepted": view.messages_accepted,
        "messages_per_second": round(rate.rate(), 2),
        "deliveries": view.deliveries,
        "pending_messages": counts.pending,
        "logins": logins,
        "personal_data": personal,
    }
    if personal:
        status["clients"] = [
            {
                "user": c.device.user,
                "device": c.device.device_id,
                "peer": c.peer,
                "certificate_subject": c.cert_subject,
                "since_ms": c.connected_ms,
                "messages_sent": c.messages_sent,
            }
            for c in clients
        ]
        status["rooms"] = [
            {"name": r.name, "members": r.member_count, "protected": r.protected}
            for r in await view.rooms()
        ]
    return status


def format_duration(seconds: int) -> str:
    """``93784`` -> ``1d 2h 3m 4s`` (the console and the page show uptime this way)."""
    days, rest = divmod(max(0, seconds), 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m")]
    shown = "".join(f"{n}{unit} " for n, unit in parts if n)
    return f"{shown}{secs}s"
