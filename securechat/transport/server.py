"""The server's lifecycle: wire the services, bind the mTLS port, serve, shut down gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from securechat.bus.factory import open_bus
from securechat.bus.port import Bus
from securechat.config import Config
from securechat.domain.events import BusEvent, CertificateRevoked, Resync
from securechat.errors import ConfigError
from securechat.ops.metrics import Metrics
from securechat.ops.status import StatusServer
from securechat.services.accounts import Accounts
from securechat.services.admin import Admin
from securechat.services.clock import Clock, SystemClock
from securechat.services.directory import Directory
from securechat.services.hub import Hub
from securechat.services.keys import KeyDirectory
from securechat.services.messaging import Messenger
from securechat.services.passwords import PasswordHasher
from securechat.services.rooms import Rooms
from securechat.storage.factory import open_store
from securechat.storage.port import Store
from securechat.transport.account_servicer import AuthServicer
from securechat.transport.admin_servicer import AdminServicer
from securechat.transport.chat_servicer import ChatServicer
from securechat.transport.key_servicer import KeyServicer
from securechat.transport.room_servicer import RoomServicer
from securechat.transport.rpc import Guard, service_handler
from securechat.transport.tls import Revocations, RotatingCredentials
from securechat_proto.v1 import admin_pb2, auth_pb2, chat_pb2, keys_pb2, rooms_pb2

log = logging.getLogger("securechat.server")

SERVICES = {
    "AuthService": auth_pb2,
    "KeyService": keys_pb2,
    "RoomService": rooms_pb2,
    "ChatService": chat_pb2,
    "AdminService": admin_pb2,
}
HOUSEKEEPING_S = 1.0


def grpc_options(config: Config) -> list[tuple[str, int]]:
    s = config.server
    return [
        ("grpc.max_receive_message_length", s.max_receive_bytes),
        ("grpc.max_send_message_length", 16 * 1024 * 1024),
        ("grpc.max_concurrent_streams", s.max_concurrent_streams),
        ("grpc.keepalive_time_ms", s.keepalive_time_s * 1000),
        ("grpc.keepalive_timeout_ms", s.keepalive_timeout_s * 1000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        # No longer than the client's ping interval (30 s), so client keepalives are welcome.
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 20_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 20_000),
        # A stalled reader must not make the transport buffer megabytes for it.
        ("grpc.http2.bdp_probe", 0),
        ("grpc.so_reuseport", 1 if s.workers > 1 else 0),
    ]


def default_bcrypt_workers() -> int:
    """Leave one core to the event loop: a login storm must not stall chat."""
    return max(1, (os.cpu_count() or 2) - 1)


def check_port_free(host: str, port: int) -> None:
    """Fail with one clear line before grpc core logs its own bind error."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError("server.port", f"cannot listen on {host}:{port}: {reason}") from None


class SecureChatServer:
    def __init__(self, config: Config, *, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.metrics = Metrics()
        self.node = config.server.node or f"{socket.gethostname()}:{os.getpid()}"
        self.port = 0
        self._server: grpc.aio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._stopped = asyncio.Event()
        self.store: Store
        self.bus: Bus
        self.status: StatusServer | None = None

    def _tls_paths(self) -> tuple[os.PathLike[str], ...]:
        c = self.config
        return (c.tls_path("ca"), c.tls_path("cert"), c.tls_path("key"))

    async def start(self) -> int:
        """Open everything and bind; returns the bound port. Raises SecureChatError subclasses
        (CertificateError, ConfigError) with one clear line on bad set-up."""
        cfg = self.config
        # Validate the status page settings before opening anything.
        status = StatusServer(self, cfg.status) if cfg.status.port else None
        if cfg.server.port and cfg.server.workers == 1:
            check_port_free(cfg.server.host, cfg.server.port)
        ca, cert, key = (cfg.tls_path(n) for n in ("ca", "cert", "key"))
        self.credentials = RotatingCredentials(ca, cert, key, cfg.tls.reload_interval_s)
        self.store = open_store(cfg.db_url, sqlite_synchronous=cfg.storage.sqlite_synchronous)
        await self.store.open()
        self.bus = open_bus(cfg.bus.url, self.node)
        self.hasher = PasswordHasher(
            cfg.auth.bcrypt_cost, cfg.auth.bcrypt_workers or default_bcrypt_workers()
        )
        self.accounts = Accounts(
            self.store,
            self.bus,
            self.hasher,
            cfg.auth,
            self.clock,
            cfg.chat.default_room,
            cfg.tls.bind_client_cert_to_user,
        )
        self.directory = Directory(self.store)
        self.hub = Hub(
            self.store, self.bus, self.clock, self.directory, cfg.chat.presence_room_limit
        )
        self.rooms = Rooms(self.store, self.bus, self.hasher, self.clock, self.directory)
        self.messenger = Messenger(self.store, self.bus, self.rooms, cfg.chat, self.clock)
        self.messenger.committer.on_commit = self.metrics.store_latency.observe
        self.keys = KeyDirectory(self.store, self.bus, self.clock)
        self.admin = Admin(
            self.store, self.bus, self.hub, self.messenger, self.clock, self.clock.now_ms()
        )
        self.revocations = Revocations(cfg.tls_path("revocation_list"), self.hub)
        await self.revocations.load_from_store(self.store)
        if cfg.auth.admin_user:
            await self.accounts.ensure_admin(cfg.auth.admin_user, cfg.auth.admin_password)
        await self.bus.start(self._on_event)

        server = grpc.aio.server(options=grpc_options(cfg))
        guard = Guard(self.accounts, self.revocations.is_revoked, self.metrics)
        self.chat = ChatServicer(
            self.hub, self.messenger, self.store, cfg.chat, self.metrics, self.clock
        )
        servicers = {
            "AuthService": AuthServicer(self.accounts),
            "KeyService": KeyServicer(self.keys),
            "RoomService": RoomServicer(self.rooms, self.store, self.bus),
            "ChatService": self.chat,
            "AdminService": AdminServicer(self.admin),
        }
        names = []
        for name, module in SERVICES.items():
            descriptor = module.DESCRIPTOR.services_by_name[name]
            server.add_generic_rpc_handlers(
                (service_handler(descriptor, servicers[name], guard, admin=name == "AdminService"),)
            )
            names.append(descriptor.full_name)
        self.health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        names.append(health_pb2.DESCRIPTOR.services_by_name["Health"].full_name)
        reflection.enable_server_reflection([*names, reflection.SERVICE_NAME], server)
        self.service_names = names
        address = f"{cfg.server.host}:{cfg.server.port}"
        try:
            self.port = server.add_secure_port(address, self.credentials.credentials())
        except RuntimeError as exc:
            await self._close_resources()
            raise ConfigError("server.port", f"cannot listen on {address}: {exc}") from None
        await server.start()
        self._server = server
        for service in ["", *names]:
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="housekeeping"))
        # Start the status page once the gRPC port is bound.
        if status is not None:
            try:
                await status.start()
            except BaseException:
                await self.stop(0)
                raise
            self.status = status
        log.info(
            "listening on %s:%d (mTLS, client certificates required) node=%s",
            cfg.server.host,
            self.port,
            self.node,
        )
        return self.port

    def _on_event(self, event: BusEvent) -> None:
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

    async def _housekeeping(self) -> None:
        """Apply revocation-file changes to open streams; expire old messages and sessions."""
        ticks = 0
        retention_ms = int(self.config.chat.retention_days * 86_400_000)
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            ticks += 1
            try:
                self.revocations.sweep()
                if ticks % 3600 == 1:
                    now = self.clock.now_ms()
                    expired = await self.store.expire_messages(now - retention_ms)
                    await self.store.purge_expired_sessions(now)
                    if expired:
                        log.info("expired %d undelivered messages past retention", expired)
            except Exception:
                log.exception("housekeeping failed")

    async def wait(self) -> None:
        await self._stopped.wait()

    async def stop(self, grace: float | None = None) -> None:
        """Graceful shutdown: NOT_SERVING, reconnect hints, drain, close the store."""
        if self._server is None:
            return
        server, self._server = self._server, None
        grace = self.config.server.grace_period_s if grace is None else grace
        log.info("shutting down: telling %d streams to reconnect", len(self.hub.streams))
        await self.health.enter_graceful_shutdown()
        # Stop the status page.
        if self.status is not None:
            status, self.status = self.status, None
            await status.stop()
        self.hub.reconnect_all(1000, "server shutting down: reconnect")
        await server.stop(grace)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.messenger.drain()
        await self.messenger.committer.drain()
        await self.messenger.acks.drain()
        await self._close_resources()
        self._stopped.set()
        log.info("stopped")

    async def _close_resources(self) -> None:
        with contextlib.suppress(Exception):
            await self.bus.close()
        await self.store.close()
        self.hasher.close()
