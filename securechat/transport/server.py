"""The gRPC server of one node: options, the mTLS port, servicers over the services it is given,
health and reflection. The node (securechat/node.py) builds the services and runs the lifecycle,
including the drain (health NOT_SERVING while calls are still served, then the stop)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from securechat.config import Config
from securechat.domain.model import PeerCertificate
from securechat.errors import ConfigError
from securechat.ops.metrics import Metrics
from securechat.services.accounts import Accounts
from securechat.services.admin import Admin
from securechat.services.chat import ChatService
from securechat.services.devices import AccountDevices
from securechat.services.keys import KeyDirectory
from securechat.services.link_relay import LinkRelay
from securechat.services.logins import Logins
from securechat.services.rooms import Rooms
from securechat.transport.account_servicer import AuthServicer
from securechat.transport.admin_servicer import AdminServicer
from securechat.transport.chat_servicer import ChatServicer
from securechat.transport.health import SERVING, GuardedHealth
from securechat.transport.key_servicer import KeyServicer
from securechat.transport.reflection import enable_reflection
from securechat.transport.room_servicer import RoomServicer
from securechat.transport.rpc import Guard, service_handler
from securechat.transport.tls import RotatingCredentials
from securechat_proto.v1 import admin_pb2, auth_pb2, chat_pb2, keys_pb2, rooms_pb2

SERVICES = {
    "AuthService": auth_pb2,
    "KeyService": keys_pb2,
    "RoomService": rooms_pb2,
    "ChatService": chat_pb2,
    "AdminService": admin_pb2,
}


@dataclass(frozen=True, slots=True)
class Services:
    """What the gRPC layer serves, built by the composition root."""

    accounts: Accounts
    keys: KeyDirectory
    rooms: Rooms
    chat: ChatService
    admin: Admin
    is_revoked: Callable[[PeerCertificate], bool]
    logins: Logins
    devices: AccountDevices
    link_relay: LinkRelay


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
        # No grpc.tsi.max_frame_size: TLS records smaller than grpc's 16 KB saved ~7 KB per idle
        # connection, but grpcio 1.85 then corrupts its own TLS stream under load (clients fail
        # with TSI_DATA_CORRUPTED; tests/transport/test_tls_records.py, docs/performance.md).
        ("grpc.so_reuseport", 1 if s.workers > 1 else 0),
    ]


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


class GrpcServer:
    """Constructing it checks the port and loads the certificates (ConfigError,
    CertificateError), so a bad set-up fails before the node opens anything."""

    def __init__(self, config: Config, metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics
        if config.server.port and config.server.workers == 1:
            check_port_free(config.server.host, config.server.port)
        ca, cert, key = (config.tls_path(n) for n in ("ca", "cert", "key"))
        self.credentials = RotatingCredentials(ca, cert, key, config.tls.reload_interval_s)
        self.health = GuardedHealth()
        self.port = 0
        self._server: grpc.aio.Server | None = None

    async def start(self, services: Services) -> int:
        """Register every service, bind the mTLS port and serve; returns the bound port."""
        server = grpc.aio.server(options=grpc_options(self.config))
        guard = Guard(services.accounts, services.is_revoked, self.metrics)
        self.health.is_revoked = services.is_revoked
        servicers = {
            "AuthService": AuthServicer(services.accounts, services.logins),
            "KeyService": KeyServicer(services.keys, services.devices, services.link_relay),
            "RoomService": RoomServicer(services.rooms),
            "ChatService": ChatServicer(services.chat),
            "AdminService": AdminServicer(services.admin),
        }
        names = []
        for name, module in SERVICES.items():
            descriptor = module.DESCRIPTOR.services_by_name[name]
            server.add_generic_rpc_handlers(
                (service_handler(descriptor, servicers[name], guard, admin=name == "AdminService"),)
            )
            names.append(descriptor.full_name)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        names.append(health_pb2.DESCRIPTOR.services_by_name["Health"].full_name)
        enable_reflection(server, names)
        address = f"{self.config.server.host}:{self.config.server.port}"
        try:
            self.port = server.add_secure_port(address, self.credentials.credentials())
        except RuntimeError as exc:
            raise ConfigError("server.port", f"cannot listen on {address}: {exc}") from None
        await server.start()
        self._server = server
        for service in ["", *names]:
            await self.health.set(service, SERVING)
        return self.port

    async def stop_serving(self) -> None:
        """Health checks answer NOT_SERVING (load balancers move new clients elsewhere); calls
        and new connections are still served until :meth:`stop`."""
        await self.health.enter_graceful_shutdown()

    @property
    def serving(self) -> bool:
        return self.health.serving()

    async def stop(self, grace: float) -> None:
        """Stop accepting calls; running calls get ``grace`` seconds, then are cancelled."""
        if self._server is not None:
            server, self._server = self._server, None
            await server.stop(grace)
