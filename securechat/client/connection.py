"""The mutual-TLS channel to the server: certificate paths, their resolution and keepalive."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from securechat.errors import CertificateError, InvalidArgument

DEFAULT_SERVER = "localhost:50051"
DEFAULT_CERTS = {"ca": "certs/ca.crt", "cert": "certs/client.crt", "key": "certs/client.key"}
ENV_NAMES = {"ca": "SECURECHAT_CA", "cert": "SECURECHAT_CERT", "key": "SECURECHAT_KEY"}
KEEPALIVE_MS = 30_000
MAX_MESSAGE_BYTES = 4 * 1024 * 1024

CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", KEEPALIVE_MS),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 10_000),
)


@dataclass(frozen=True)
class Endpoint:
    """Where to connect and with which certificate files."""

    server: str
    ca: Path
    cert: Path
    key: Path


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


def _read(path: Path, what: str, flag: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise CertificateError(
            f"{what} {path} not found: pass {flag} or set {ENV_NAMES[flag[2:]]} "
            "(the operator issues client certificates with `securechat-admin`)"
        ) from exc
    except OSError as exc:
        raise CertificateError(f"cannot read {what} {path}: {exc.strerror}") from exc


def check_pair(cert_pem: bytes, key_pem: bytes, endpoint: Endpoint) -> None:
    """Fail early and clearly on an unparsable, expired or mismatched certificate and key."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise CertificateError(f"{endpoint.cert} is not a PEM certificate: check --cert") from exc
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise CertificateError(
            f"{endpoint.key} is not an unencrypted PEM private key: check --key"
        ) from exc
    if cert.not_valid_after_utc < datetime.now(UTC):
        raise CertificateError(
            f"the client certificate {endpoint.cert} expired on "
            f"{cert.not_valid_after_utc:%Y-%m-%d}: ask the operator for a new one"
        )
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    if cert.public_key().public_bytes(encoding, public) != key.public_key().public_bytes(
        encoding, public
    ):
        raise CertificateError(
            f"{endpoint.key} is not the key of {endpoint.cert}: pass the matching --cert/--key"
        )


def credentials(endpoint: Endpoint) -> grpc.ChannelCredentials:
    ca = _read(endpoint.ca, "CA certificate", "--ca")
    key = _read(endpoint.key, "client key", "--key")
    cert = _read(endpoint.cert, "client certificate", "--cert")
    check_pair(cert, key, endpoint)
    return grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )


def open_channel(endpoint: Endpoint) -> grpc.aio.Channel:
    """A grpc.aio channel over mutual TLS with client keepalive."""
    return grpc.aio.secure_channel(
        check_server(endpoint.server), credentials(endpoint), options=CHANNEL_OPTIONS
    )
