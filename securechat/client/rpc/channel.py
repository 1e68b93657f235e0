"""The one channel factory: where to connect, the certificate files, mutual TLS and keepalive."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc

from securechat.errors import CertificateError, InvalidArgument
from securechat.pki import ClientMaterial, load_client_material

DEFAULT_SERVER = "localhost:50051"
DEFAULT_CERTS = {"ca": "certs/ca.crt", "cert": "certs/client.crt", "key": "certs/client.key"}
ENV_NAMES = {"ca": "SECURECHAT_CA", "cert": "SECURECHAT_CERT", "key": "SECURECHAT_KEY"}
WHAT = {"ca": "CA certificate", "cert": "client certificate", "key": "client key"}
KEEPALIVE_MS = 30_000
MAX_RECEIVE_BYTES = 4 * 1024 * 1024

CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    # Ping every 30 s, also without calls: idle chat streams survive NAT, dead peers are found.
    ("grpc.keepalive_time_ms", KEEPALIVE_MS),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # Above any frame the server sends (its batches are bounded in bytes below this).
    ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
    # The channel's own reconnect backoff: kept as short as the link's while an outage is
    # young, else a server back after 10 s was found only up to 10 s (+ jitter) later.
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 3_000),
    # Every channel its own TCP + TLS connection: one device, one connection (the bench opens
    # hundreds of channels in one process, each standing for one client).
    ("grpc.use_local_subchannel_pool", 1),
)


@dataclass(frozen=True)
class Endpoint:
    """Where to connect and with which certificate files."""

    server: str
    ca: Path
    cert: Path
    key: Path

    def load(self) -> ClientMaterial:
        """Read and check the three files (CertificateError naming the file and the fix)."""
        for name, path in (("ca", self.ca), ("cert", self.cert), ("key", self.key)):
            if not path.exists():
                raise CertificateError(
                    f"{WHAT[name]} {path} not found: pass --{name} or set {ENV_NAMES[name]} "
                    "(the operator issues client certificates with `securechat-admin`)"
                )
        return load_client_material(self.ca, self.cert, self.key, now=datetime.now(UTC))

    def open(self) -> grpc.aio.Channel:
        """Check the address and the certificate files, then open the channel (no RPC yet)."""
        check_server(self.server)
        return open_channel(self.server, self.load())


def check_server(server: str) -> str:
    """Validate HOST:PORT (InvalidArgument otherwise)."""
    host, sep, port = server.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgument(f"bad --server {server!r}: use HOST:PORT, e.g. localhost:50051")
    return server


def resolve_path(
    name: str, option: str | None, remembered: str, env: Mapping[str, str] = os.environ
) -> Path:
    """Option > environment > profile > ./certs default, for ``name`` in ca/cert/key."""
    value = option or env.get(ENV_NAMES[name]) or remembered or DEFAULT_CERTS[name]
    return Path(value).expanduser().absolute()


def open_channel(server: str, material: ClientMaterial) -> grpc.aio.Channel:
    """A grpc.aio channel to ``server`` over mutual TLS with client keepalive.

    ``material`` is loaded once (:meth:`Endpoint.load`) and may serve many channels."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=material.ca_pem,
        private_key=material.key_pem,
        certificate_chain=material.cert_pem,
    )
    return grpc.aio.secure_channel(server, credentials, options=CHANNEL_OPTIONS)
