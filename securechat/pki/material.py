"""Start-up checks: load a CA, certificate and key, and refuse them with one clear line if unusable.

The server calls :func:`load_server_material` before binding its port, the client calls
:func:`load_client_material` before dialing. Each problem becomes a :class:`CertificateError`
whose message names the offending file and says what to do: missing or unreadable file, not PEM,
key not matching the certificate, certificate expired or not yet valid, certificate not signed by
the CA, or a certificate made for the other side of the connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from securechat.errors import CertificateError
from securechat.pki.inspection import aware_now, parse_certificates
from securechat.pki.keys import parse_private_key, read_file

__all__ = [
    "ClientMaterial",
    "ServerMaterial",
    "check_issued_by",
    "check_key_matches",
    "check_validity",
    "load_client_material",
    "load_server_material",
]

_FIX = "issue a new one with `securechat-admin certs`"


@dataclass(frozen=True, slots=True)
class ServerMaterial:
    """PEM bytes the server hands to ``grpc.ssl_server_credentials``, exactly as read."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True, slots=True)
class ClientMaterial:
    """PEM bytes the client hands to ``grpc.ssl_channel_credentials``, exactly as read."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes


def check_validity(cert: x509.Certificate, path: Path, now: datetime) -> None:
    """Raise unless ``now`` lies within the certificate's validity period."""
    now = aware_now(now)
    if now < cert.not_valid_before_utc:
        raise CertificateError(
            f"{path}: certificate is not valid until {cert.not_valid_before_utc:%Y-%m-%d %H:%M} "
            "UTC (check the system clock)"
        )
    if now > cert.not_valid_after_utc:
        raise CertificateError(
            f"{path}: certificate expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC: {_FIX}"
        )


def check_key_matches(cert: x509.Certificate, key: PrivateKeyTypes, key_path: Path) -> None:
    """Raise unless ``key`` is the private half of the certificate's public key."""
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise CertificateError(f"{key_path}: private key does not match its certificate")


def check_issued_by(
    cert: x509.Certificate, cert_path: Path, cas: list[x509.Certificate], ca_path: Path
) -> None:
    """Raise unless one of ``cas`` directly signed ``cert``."""
    for ca in cas:
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return
    raise CertificateError(f"{cert_path}: certificate is not signed by the CA in {ca_path}")


def _check_purpose(cert: x509.Certificate, path: Path, purpose: ObjectIdentifier) -> None:
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return  # no EKU: usable for any purpose
    if purpose not in eku:
        side = "server" if purpose == ExtendedKeyUsageOID.SERVER_AUTH else "client"
        raise CertificateError(f"{path}: not a {side} certificate (its key usage lacks {side}Auth)")


def _load(
    ca_path: Path | str,
    cert_path: Path | str,
    key_path: Path | str,
    now: datetime,
    purpose: ObjectIdentifier,
) -> tuple[bytes, bytes, bytes]:
    ca_path, cert_path, key_path = Path(ca_path), Path(cert_path), Path(key_path)
    now = aware_now(now)
    ca_pem, cert_pem, key_pem = read_file(ca_path), read_file(cert_path), read_file(key_path)
    cas = parse_certificates(ca_pem, ca_path)
    cert = parse_certificates(cert_pem, cert_path)[0]
    key = parse_private_key(key_pem, key_path)
    check_key_matches(cert, key, key_path)
    check_issued_by(cert, cert_path, cas, ca_path)
    check_validity(cas[0], ca_path, now)
    check_validity(cert, cert_path, now)
    _check_purpose(cert, cert_path, purpose)
    return ca_pem, cert_pem, key_pem


def load_server_material(
    ca_path: Path | str, cert_path: Path | str, key_path: Path | str, *, now: datetime
) -> ServerMaterial:
    """Load and check the server's CA, certificate and key; CertificateError if unusable."""
    ca, cert, key = _load(ca_path, cert_path, key_path, now, ExtendedKeyUsageOID.SERVER_AUTH)
    return ServerMaterial(ca_pem=ca, cert_pem=cert, key_pem=key)


def load_client_material(
    ca_path: Path | str, cert_path: Path | str, key_path: Path | str, *, now: datetime
) -> ClientMaterial:
    """Load and check a client's CA, certificate and key; CertificateError if unusable."""
    ca, cert, key = _load(ca_path, cert_path, key_path, now, ExtendedKeyUsageOID.CLIENT_AUTH)
    return ClientMaterial(ca_pem=ca, cert_pem=cert, key_pem=key)
