"""The HTTP side-server: status page, /api/status, /api/history, /metrics and /healthz (aiohttp).

It runs in the server's own event loop. On a loopback address it needs no credentials but answers
only requests whose ``Host`` names a loopback address (a page reached through DNS rebinding gets
421), and shows counts and charts, no user names, addresses or room names. With
``status.admin_token`` (required on any other address) every path except ``/healthz`` needs
``Authorization: Bearer <admin_token>``, and those requests see the personal data too.
``/healthz`` answers 503 once the node drains. A sampler task feeds the rate meter and the
one-hour :class:`~securechat.ops.history.History`, and refreshes the store counts every
``COUNTS_REFRESH_S`` so neither a scrape nor a page load runs a COUNT.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from securechat.config import StatusConfig
from securechat.errors import ConfigError
from securechat.ops.history import History, Totals
from securechat.ops.metrics import Metrics, samples
from securechat.ops.snapshot import RateMeter, StoreCounts, build_status
from securechat.ops.status_page import CONTENT_SECURITY_POLICY, render_page
from securechat.services.view import NodeView

log = logging.getLogger("securechat.status")

SAMPLE_S = 1.0
HISTORY_STEP_S = 5.0
COUNTS_REFRESH_S = 10.0
PUBLIC_PATHS = frozenset({"/healthz"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def loopback_host(header: str) -> bool:
    """Whether a ``Host`` header (``name``, ``name:port``, ``[v6]:port``) names loopback."""
    if header.startswith("["):
        host = header[1:].partition("]")[0]
    else:
        host = header.rpartition(":")[0] if header.count(":") == 1 else header
    return bool(host) and is_loopback(host)


def check_config(config: StatusConfig) -> None:
    """Raise ConfigError when the status page would be exposed without a token."""
    if not is_loopback(config.host) and not config.admin_token:
        raise ConfigError(
            "status.admin_token",
            f"the status page on non-loopback address {config.host!r} needs an admin token "
            "(set status.admin_token or SECURECHAT_STATUS_ADMIN_TOKEN), or bind it to 127.0.0.1",
        )
    if config.admin_token and len(config.admin_token) < 16:
        raise ConfigError("status.admin_token", "must be at least 16 characters")


class StatusServer:
    """Owns the aiohttp runner, the rate meter, the history and the store-count cache."""

    def __init__(
        self,
        view: NodeView,
        metrics: Metrics,
        config: StatusConfig,
        *,
        serving: Callable[[], bool] = lambda: True,
        history_step_s: float = HISTORY_STEP_S,
    ) -> None:
        check_config(config)
        self.view = view
        self.metrics = metrics
        self.config = config
        self.serving = serving
        self.rate = RateMeter(lambda: view.messages_accepted)
        self.history = History(step_s=history_step_s)
        self.counts = StoreCounts()
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._sampler: asyncio.Task[None] | None = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self._page)
        app.router.add_get("/api/status", self._status)
        app.router.add_get("/api/history", self._history)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        return app

    async def start(self) -> int:
        """Bind and serve; returns the bound port (``status.port`` may be 0 only in tests)."""
        await self.refresh_counts()
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(
                "status.port",
                f"cannot listen on {self.config.host}:{self.config.port}: {exc.strerror or exc}",
            ) from None
        self._runner = runner
        addresses = runner.addresses
        self.port = int(addresses[0][1]) if addresses else self.config.port
        self._sampler = asyncio.create_task(self._sample(), name="status-sampler")
        log.info("status page on http://%s:%d/ (%s)", self.config.host, self.port,
                 "token required" if self.config.admin_token else "loopback only")  # fmt: skip
        return self.port

    async def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
            self._sampler = None
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def refresh_counts(self) -> None:
        """Re-read the store counts (users, rooms, undelivered entries) into the cache."""
        stats = await self.view.stats()
        self.counts = StoreCounts(stats.users, stats.rooms, stats.pending_messages,
                                  self.view.now_ms())  # fmt: skip
        self.metrics.set_store_counts(stats.users, stats.rooms, stats.pending_messages)

    def totals(self) -> Totals:
        """The running totals the history turns into rates and quantiles."""
        logins = self.view.login_outcomes
        self.metrics.sync(logins, self.view.deliveries)
        errors: dict[str, float] = {}
        for name, labels, value in samples(self.metrics.rpcs):
            if name.endswith("_total") and labels["code"] != "OK":
                errors[labels["code"]] = errors.get(labels["code"], 0.0) + value
        buckets = [(float(labels["le"]), value)
                   for name, labels, value in samples(self.metrics.send_latency)
                   if name.endswith("_bucket")]  # fmt: skip
        return Totals(
            messages=self.view.messages_accepted,
            deliveries=self.view.deliveries,
            streams=len(self.view.clients()),
            logins={k: float(v) for k, v in logins.items()},
            errors=errors,
            latency_buckets=buckets,
        )

    async def _sample(self) -> None:
        loop = asyncio.get_running_loop()
        next_point = next_counts = loop.time()
        while True:
            try:
                self.rate.sample()
                now = loop.time()
                if now >= next_point:
                    self.history.sample(self.totals())
                    next_point = now + self.history.step_s
                if now >= next_counts:
                    await self.refresh_counts()
                    next_counts = now + COUNTS_REFRESH_S
            except Exception:
                log.exception("status sampler failed")  # the page goes stale, the node goes on
            await asyncio.sleep(min(SAMPLE_S, self.history.step_s))

    # ---- HTTP ---------------------------------------------------------------------------------
    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_loopback(self.config.host) and not loopback_host(request.headers.get("Host", "")):
            log.info("status: refused %s %s from %s (Host is not a loopback name)",
                     request.method, request.path, request.remote)  # fmt: skip
            return web.Response(
                status=421, text="421: this page answers to localhost, 127.0.0.1 or [::1] only\n"
            )
        token = self.config.admin_token
        if token and request.path not in PUBLIC_PATHS and not _authorized(request, token):
            log.info("status: refused %s %s from %s (no valid admin token)",
                     request.method, request.path, request.remote)  # fmt: skip
            return web.Response(
                status=401,
                text="401: send 'Authorization: Bearer <status.admin_token>'\n",
                headers={"WWW-Authenticate": 'Bearer realm="securechat-status"'},
            )
        response = await handler(request)
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    async def _page(self, request: web.Request) -> web.StreamResponse:
        return web.Response(
            text=render_page(self.view.name),
            content_type="text/html",
            charset="utf-8",
            headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY},
        )

    async def _status(self, request: web.Request) -> web.StreamResponse:
        # Past the guard, a configured token means this request carried it.
        personal = bool(self.config.admin_token)
        status = await build_status(self.view, self.metrics, self.rate, self.counts,
                                    personal=personal)  # fmt: skip
        status["serving"] = self.serving()
        return web.json_response(status)

    async def _history(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.history.to_json())

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        self.metrics.sync(self.view.login_outcomes, self.view.deliveries)
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.StreamResponse:
        if not self.serving():
            return web.Response(status=503, text="draining\n", headers={"Retry-After": "1"})
        return web.Response(text="ok\n")


def _authorized(request: web.Request, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8"), token.encode("utf-8"))
