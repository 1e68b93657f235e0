"""The HTTP side-server: status page, /api/status, Prometheus /metrics and /healthz (aiohttp).

It runs in the server's own event loop. On a loopback address it needs no credentials; on any
other address it refuses to start without ``status.admin_token`` and then requires
``Authorization: Bearer <admin_token>`` on every path except ``/healthz``.
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
from securechat.ops.metrics import Metrics
from securechat.ops.snapshot import RateMeter, build_status
from securechat.ops.status_page import CONTENT_SECURITY_POLICY, render_page
from securechat.services.view import NodeView

log = logging.getLogger("securechat.status")

SAMPLE_S = 1.0
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
    """Owns the aiohttp runner and the message-rate sampler for one node."""

    def __init__(self, view: NodeView, metrics: Metrics, config: StatusConfig) -> None:
        check_config(config)
        self.view = view
        self.metrics = metrics
        self.config = config
        self.rate = RateMeter(lambda: view.messages_accepted)
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._sampler: asyncio.Task[None] | None = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self._page)
        app.router.add_get("/api/status", self._status)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        return app

    async def start(self) -> int:
        """Bind and serve; returns the bound port (``status.port`` may be 0 only in tests)."""
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
        self._sampler = asyncio.create_task(self._sample(), name="status-rate-sampler")
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

    async def _sample(self) -> None:
        while True:
            self.rate.sample()
            await asyncio.sleep(SAMPLE_S)

    # ---- HTTP ---------------------------------------------------------------------------------
    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
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
        return web.json_response(await build_status(self.view, self.metrics, self.rate))

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        self.metrics.sync(self.view.login_outcomes, self.view.deliveries)
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok\n")


def _authorized(request: web.Request, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8"), token.encode("utf-8"))
