"""Leaf certificates: the server's (serverAuth, localhost SANs) and each client's (clientAuth)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from securechat.errors import InvalidArgument
from securechat.pki.authority import CLOCK_SKEW, ORGANIZATION, CertificateAuthority, check_days
from securechat.pki.inspection import aware_now, fingerprint
from securechat.pki.keys import CERT_MODE, KEY_MODE, generate_key, key_to_pem, write_file

__all__ = [
    "DEFAULT_SERVER_HOSTS",
    "LEAF_DAYS",
    "SERVER_COMMON_NAME",
    "IssuedCertificate",
    "check_client_name",
    "issue_client_certificate",
    "issue_server_certificate",
    "parse_host",
]

LEAF_DAYS = 825
"""Default leaf lifetime: the CA/Browser Forum's old 825-day ceiling."""
SERVER_COMMON_NAME = "securechat-server"
DEFAULT_SERVER_HOSTS = ("localhost", "127.0.0.1", "::1")

_CLIENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """A freshly issued certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return key_to_pem(self.key)

    @property
    def fingerprint(self) -> str:
        """SHA-256 fingerprint of the certificate, colon-separated upper-case hex."""
        return fingerprint(self.cert)

    def save(self, cert_path: Path, key_path: Path, *, force: bool = False) -> None:
        """Write the key (0600) and certificate (0644) atomically; no overwrite unless ``force``."""
        write_file(key_path, self.key_pem, mode=KEY_MODE, force=force)
        write_file(cert_path, self.cert_pem, mode=CERT_MODE, force=force)


def check_client_name(name: str) -> str:
    """A client name is 1–64 of letters, digits, ``.``, ``_``, ``-``, starting alphanumeric."""
    if not _CLIENT_NAME.fullmatch(name):
        raise InvalidArgument(
            f"invalid client name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def parse_host(value: str) -> x509.GeneralName:
    """An IP address becomes an IP SAN, anything else must be a DNS name (``*.`` allowed)."""
    try:
        return x509.IPAddress(ipaddress.ip_address(value))
    except ValueError:
        pass
    name = value.rstrip(".").lower()
    labels = name.split(".")
    if labels and labels[0] == "*":
        labels = labels[1:]
    if not name or len(name) > 253 or not labels or not all(map(_DNS_LABEL.fullmatch, labels)):
        raise InvalidArgument(f"invalid host {value!r}: expected a DNS name or an IP address")
    return x509.DNSName(name)


def _validity(
    ca: CertificateAuthority,
    days: int,
    now: datetime | None,
    not_before: datetime | None,
    not_after: datetime | None,
) -> tuple[datetime, datetime]:
    now = aware_now(now)
    if not_after is not None:
        end = aware_now(not_after)
    else:  # never outlive the CA that vouches for it
        end = min(now + timedelta(days=check_days(days)), ca.cert.not_valid_after_utc)
    if not_before is not None:
        start = aware_now(not_before)
    else:  # an explicit not_after in the past (an expired test certificate) starts a day earlier
        start = min(now - CLOCK_SKEW, end - timedelta(days=1))
    if end <= start:
        raise InvalidArgument("certificate validity ends before it starts")
    return start, end


def _leaf(
    ca: CertificateAuthority,
    common_name: str,
    purpose: ObjectIdentifier,
    validity: tuple[datetime, datetime],
    sans: list[x509.GeneralName],
) -> IssuedCertificate:
    key = generate_key()
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                    x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                ]
            )
        )
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return IssuedCertificate(cert=ca.sign(builder), key=key)


def issue_server_certificate(
    ca: CertificateAuthority,
    *,
    hosts: Iterable[str] = (),
    days: int = LEAF_DAYS,
    now: datetime | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> IssuedCertificate:
    """The server certificate: CN securechat-server, serverAuth, SANs localhost/127.0.0.1/::1
    plus ``hosts`` (DNS names or IP addresses)."""
    sans: list[x509.GeneralName] = []
    for host in (*DEFAULT_SERVER_HOSTS, *hosts):
        san = parse_host(host)
        if san not in sans:
            sans.append(san)
    validity = _validity(ca, days, now, not_before, not_after)
    return _leaf(ca, SERVER_COMMON_NAME, ExtendedKeyUsageOID.SERVER_AUTH, validity, sans)


def issue_client_certificate(
    ca: CertificateAuthority,
    name: str,
    *,
    days: int = LEAF_DAYS,
    now: datetime | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> IssuedCertificate:
    """A client certificate: CN ``name``, clientAuth. ``not_after`` in the past makes an expired
    one (for tests of the server's refusal)."""
    validity = _validity(ca, days, now, not_before, not_after)
    return _leaf(ca, check_client_name(name), ExtendedKeyUsageOID.CLIENT_AUTH, validity, [])
