"""The composition root: one server node. It opens the store and the bus, builds the services,
routes bus events to them, serves them over gRPC (transport/) and the status page (ops/), keeps
house, and shuts down gracefully. ``securechat-server`` (app.py) runs one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from pathlib import Path

from securechat.atomicfile import write_atomically
from securechat.bus.factory import open_bus
from securechat.bus.port import Bus
from securechat.config import Config
from securechat.domain.events import BusEvent, CertificateRevoked, Resync
from securechat.errors import ConfigError
from securechat.ops.metrics import Metrics
from securechat.ops.status import StatusServer, check_config
from securechat.services.accounts import Accounts
from securechat.services.acks import LastSeen
from securechat.services.admin import Admin
from securechat.services.chat import ChatService
from securechat.services.clock import Clock, SystemClock
from securechat.services.devices import AccountDevices
from securechat.services.directory import Directory
from securechat.services.hub import Hub
from securechat.services.keys import KeyDirectory
from securechat.services.link_relay import LinkRelay
from securechat.services.logins import Logins
from securechat.services.messaging import Messenger
from securechat.services.passwords import PasswordHasher
from securechat.services.revocations import Revocations
from securechat.services.rooms import Rooms
from securechat.services.view import NodeView
from securechat.storage.factory import open_store
from securechat.storage.port import Store
from securechat.transport.server import GrpcServer, Services
from securechat.transport.tls import RotatingCredentials

log = logging.getLogger("securechat.server")  # the lifecycle lines operators grep for

HOUSEKEEPING_S = 1.0
# Room logs are trimmed every minute, at most a batch of rows per transaction and a budget per
# round (a backlog larger than that goes in later rounds; see storage/room_trim.py).
ROOM_TRIM_EVERY = 60  # housekeeping ticks
ROOM_TRIM_BATCH = 500
ROOM_TRIM_BUDGET = 50_000
RECONNECT_HINT_MS = 1000
SALT_SECRET_FILE = "login-salt.secret"  # noqa: S105 - a file name, not a secret


def fake_salt_secret(configured: str, data_dir: Path) -> bytes:
    """The configured secret, else the one kept in the data folder (made once, mode 0600)."""
    if configured:
        return configured.encode("utf-8")
    path = data_dir / SALT_SECRET_FILE
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another worker made it first: use theirs
            write_atomically(path, secrets.token_hex(32).encode("ascii"), overwrite=False)
        secret = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(
            "accounts.fake_salt_secret",
            f"cannot keep a generated secret in {path}: {exc.strerror or exc}; set one",
        ) from None
    if len(secret) < 32:
        raise ConfigError("accounts.fake_salt_secret", f"{path} is damaged: delete it")
    return secret


def default_bcrypt_workers() -> int:
    """Leave one core to the event loop: a login storm must not stall chat."""
    return max(1, (os.cpu_count() or 2) - 1)


class Node:
    """After :meth:`start`, the services are attributes (``store``, ``bus``, ``accounts``,
    ``hub``, ``messenger``, ``chat``, ``admin``, ...), ``view`` is what operators see and
    ``port`` the bound gRPC port."""

    def __init__(self, config: Config, *, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.metrics = Metrics()
        self.name = config.server.node or f"{socket.gethostname()}:{os.getpid()}"
        self.port = 0
        self.grpc: GrpcServer | None = None
        self.status: StatusServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._running = False
        self._draining = False
        self._drain_cut = asyncio.Event()
        self._stopped = asyncio.Event()
        self.store: Store
        self.bus: Bus
        self.view: NodeView

    @property
    def credentials(self) -> RotatingCredentials:
        assert self.grpc is not None, "the node has not started"
        return self.grpc.credentials

    async def start(self) -> int:
        """Open everything and bind; returns the bound port. Raises SecureChatError subclasses
        (CertificateError, ConfigError) with one clear line on bad set-up."""
        cfg = self.config
        if cfg.status.port:
            check_config(cfg.status)  # before anything opens
        self.grpc = GrpcServer(cfg, self.metrics)  # checks the port, loads the certificates
        self.store = open_store(cfg.db_url, sqlite_synchronous=cfg.storage.sqlite_synchronous)
        await self.store.open()
        self.bus = open_bus(cfg.bus.url, self.name)
        self._build()
        await self.revocations.load_from_store(self.store)
        if cfg.auth.admin_user:
            await self.accounts.ensure_admin(cfg.auth.admin_user, cfg.auth.admin_password)
        await self.bus.start(self.route)
        try:
            self.port = await self.grpc.start(self._services())
        except BaseException:
            await self._close_resources()
            raise
        self._running = True
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="housekeeping"))
        self._tasks.append(asyncio.create_task(self._room_trims(), name="room-trims"))
        if cfg.status.port:  # once the gRPC port is bound
            status = StatusServer(
                self.view, self.metrics, cfg.status, serving=lambda: not self._draining
            )
            try:
                await status.start()
            except BaseException:
                await self.stop(0)
                raise
            self.status = status
        log.info("listening on %s:%d (mTLS, client certificates required) node=%s",
                 cfg.server.host, self.port, self.name)  # fmt: skip
        return self.port

    def _build(self) -> None:
        """The object graph, from the store and the bus up."""
        cfg, store, bus, clock = self.config, self.store, self.bus, self.clock
        self.hasher = PasswordHasher(
            cfg.auth.bcrypt_cost,
            cfg.auth.bcrypt_workers or default_bcrypt_workers(),
            queue_bound=cfg.auth.hash_queue,
            per_source=cfg.auth.hash_queue_per_source,
        )
        self.last_seen = LastSeen(store)
        secret = fake_salt_secret(cfg.accounts.fake_salt_secret, cfg.server.data_dir)
        self.logins = Logins(store, self.hasher, secret)
        self.account_devices = AccountDevices(store, bus, clock, cfg.accounts.max_devices)
        self.link_relay = LinkRelay(store, clock)
        self.accounts = Accounts(
            store, bus, self.hasher, cfg.auth, clock, self.last_seen,
            cfg.chat.default_room, cfg.tls.bind_client_cert_to_user,
        )  # fmt: skip
        self.directory = Directory(store)
        self.hub = Hub(bus, clock, self.directory, cfg.chat.presence_room_limit)
        self.rooms = Rooms(store, bus, self.hasher, clock, self.directory, cfg.limits)
        self.messenger = Messenger(store, bus, self.rooms, cfg.chat, clock)
        self.messenger.committer.on_commit = self.metrics.store_latency.observe
        self.chat = ChatService(
            self.hub, self.messenger, store, bus, self.last_seen, cfg.chat, clock, self.metrics
        )
        self.keys = KeyDirectory(store, bus, clock, self.account_devices, cfg.limits)
        self.admin = Admin(
            store, bus, self.hub, self.messenger, clock, clock.now_ms(),
            self.accounts.end_certificate_sessions,
        )  # fmt: skip
        self.revocations = Revocations(cfg.tls_path("revocation_list"), self.hub)
        self.view = NodeView(self.name, self.admin, self.accounts, self.messenger)

    def _services(self) -> Services:
        return Services(
            self.accounts, self.keys, self.rooms, self.chat, self.admin,
            self.revocations.is_revoked, self.logins, self.account_devices, self.link_relay,
        )  # fmt: skip

    def route(self, event: BusEvent) -> None:
        """Every bus event (from this node or another) to the services it concerns."""
        self.directory.observe(event)
        self.accounts.observe(event)
        if isinstance(event, CertificateRevoked):
            self.revocations.add(event.fingerprint, event.serial_hex)
        elif isinstance(event, Resync):
            # Revocations published while the bus was down reach us through the store.
            task = asyncio.create_task(self.revocations.load_from_store(self.store))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        self.hub.handle(event)

    async def trim_room_logs(self) -> int:
        """Delete the room-log rows every current member device is past (one bounded round,
        run every ROOM_TRIM_EVERY seconds). The number deleted."""
        trimmed = await self.store.trim_room_logs(ROOM_TRIM_BATCH, ROOM_TRIM_BUDGET)
        if trimmed:
            log.info("trimmed %d room messages every member device has acknowledged", trimmed)
        return trimmed

    async def _room_trims(self) -> None:
        """Trim the room logs every ROOM_TRIM_EVERY seconds, apart from the housekeeping: a
        long round never delays revocations."""
        ticks = 0
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            ticks += 1
            if ticks % ROOM_TRIM_EVERY:
                continue
            try:
                await self.trim_room_logs()
            except Exception:
                log.exception("trimming the room logs failed")

    async def _housekeeping(self) -> None:
        """Apply revocation-file changes to open streams and sessions; expire old messages and
        sessions."""
        ticks = 0
        chat = self.config.chat
        retention_ms = int(chat.retention_days * 86_400_000)
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            ticks += 1
            try:
                self.revocations.sweep()
                for fingerprint, serial in self.revocations.take_new():
                    await self.accounts.end_certificate_sessions(fingerprint, serial)
                if ticks % 3600 == 1:
                    now = self.clock.now_ms()
                    expired = await self.store.expire_messages(now - retention_ms)
                    await self.store.purge_expired_sessions(now)
                    await self.link_relay.purge()
                    await self.store.prune_sent(
                        self.messenger.dedup_since(), chat.dedup_max_per_device
                    )
                    if expired:
                        log.info("expired %d undelivered messages past retention", expired)
            except Exception:
                log.exception("housekeeping failed")

    async def wait(self) -> None:
        await self._stopped.wait()

    @property
    def draining(self) -> bool:
        """True from the start of a graceful shutdown: health NOT_SERVING, /healthz 503."""
        return self._draining

    def end_drain(self) -> None:
        """Cut the drain period short (a second SIGTERM, /shutdown during a drain)."""
        self._drain_cut.set()

    async def stop(self, grace: float | None = None, drain: float | None = None) -> None:
        """Graceful shutdown: NOT_SERVING and reconnect hints, ``drain`` seconds in which new
        connections are still served (a load balancer notices and moves traffic), then hints to
        the streams opened meanwhile, ``grace`` seconds for them to end, close the store."""
        if not self._running or self.grpc is None:
            return
        self._running = False
        self._draining = True
        grace = self.config.server.grace_period_s if grace is None else grace
        drain = self.config.server.drain_period_s if drain is None else drain
        log.info("shutting down: telling %d streams to reconnect, draining for %.1f s",
                 len(self.hub.streams), drain)  # fmt: skip
        await self.grpc.stop_serving()
        self.hub.reconnect_all(RECONNECT_HINT_MS, "server shutting down: reconnect")
        if drain > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drain_cut.wait(), drain)
        if self.status is not None:
            status, self.status = self.status, None
            await status.stop()
        self.hub.reconnect_all(RECONNECT_HINT_MS, "server shutting down: reconnect")
        await self.grpc.stop(grace)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.hub.drain()
        await self.messenger.drain()
        await self.messenger.committer.drain()
        await self.messenger.acks.drain()
        await self.messenger.room_acks.drain()
        await self.last_seen.drain()
        await self._close_resources()
        self._stopped.set()
        log.info("stopped")

    async def _close_resources(self) -> None:
        with contextlib.suppress(Exception):
            await self.bus.close()
        await self.store.close()
        self.hasher.close()
