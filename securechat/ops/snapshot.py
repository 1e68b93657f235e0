"""The running server as operators see it: a small Protocol, a message-rate meter, a snapshot.

The status page, ``/api/status`` and the server console all read the server through
:class:`ServerView`, which ``securechat.transport.server.SecureChatServer`` satisfies; this
package never imports grpc or the transport. A snapshot holds no secrets and no message
content: user names, device ids, peer addresses, certificate subjects, counts and times.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from securechat.ops.metrics import Metrics
from securechat.services.admin import Admin


class LoginCounts(Protocol):
    @property
    def login_outcomes(self) -> Mapping[str, int]: ...


class AcceptedCount(Protocol):
    @property
    def accepted(self) -> int: ...


class ServerView(Protocol):
    """What operations tools need from a running server."""

    @property
    def admin(self) -> Admin: ...

    @property
    def accounts(self) -> LoginCounts: ...

    @property
    def messenger(self) -> AcceptedCount: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def node(self) -> str: ...


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


async def build_status(view: ServerView, rate: RateMeter) -> dict[str, Any]:
    """The JSON document behind ``/api/status`` and the status page."""
    rate.sample()
    stats = await view.admin.stats()
    rooms = await view.admin.store.list_rooms("")
    logins = dict(view.accounts.login_outcomes)
    view.metrics.sync(logins, view.admin.messenger.deliveries)
    now_ms = view.admin.clock.now_ms()
    return {
        "version": stats.version,
        "node": view.node,
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
            for c in view.admin.clients()
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
