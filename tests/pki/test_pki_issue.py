"""CA, server and client certificates carry the extensions TLS peers rely on."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from datetime import datetime, timedelta
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from securechat.errors import InvalidArgument
from securechat.pki import (
    CertificateAuthority,
    common_name,
    fingerprint,
    issue_client_certificate,
    issue_server_certificate,
)

T = TypeVar("T", bound=x509.ExtensionType)


@pytest.fixture
def ca(now: datetime) -> CertificateAuthority:
    return CertificateAuthority.create(now=now)


def ext(cert: x509.Certificate, kind: type[T]) -> x509.Extension[T]:
    return cert.extensions.get_extension_for_class(kind)


def test_ca_is_a_p256_ca_with_pathlen_zero_cert_and_crl_signing(
    ca: CertificateAuthority, now: datetime
) -> None:
    cert = ca.cert
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.curve.name == "secp256r1"
    bc = ext(cert, x509.BasicConstraints)
    assert bc.critical
    assert bc.value.ca
    assert bc.value.path_length == 0
    ku = ext(cert, x509.KeyUsage).value
    assert ku.key_cert_sign
    assert ku.crl_sign
    ski = ext(cert, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(public)
    assert cert.subject == cert.issuer
    cert.verify_directly_issued_by(cert)
    assert cert.not_valid_after_utc == now + timedelta(days=3650)


def test_server_certificate_has_localhost_sans_extra_hosts_and_server_auth(
    ca: CertificateAuthority, now: datetime
) -> None:
    issued = issue_server_certificate(
        ca, hosts=["chat.example.com", "10.0.0.5", "localhost"], now=now
    )
    cert = issued.cert
    assert common_name(cert) == "securechat-server"
    san = ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "chat.example.com"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
        ipaddress.ip_address("10.0.0.5"),
    ]
    assert list(ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert ext(cert, x509.BasicConstraints).value.ca is False
    cert.verify_directly_issued_by(ca.cert)
    assert cert.not_valid_after_utc == now + timedelta(days=825)


def test_client_certificate_names_the_client_and_allows_client_auth_only(
    ca: CertificateAuthority, now: datetime
) -> None:
    cert = issue_client_certificate(ca, "alice-laptop", days=30, now=now).cert
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice-laptop"
    assert list(ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    aki = ext(cert, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ext(ca.cert, x509.SubjectKeyIdentifier).value.digest
    assert cert.not_valid_after_utc == now + timedelta(days=30)
    assert cert.not_valid_before_utc < now


def test_serials_are_random_and_distinct(ca: CertificateAuthority, now: datetime) -> None:
    serials = {issue_client_certificate(ca, "c", now=now).cert.serial_number for _ in range(5)}
    assert len(serials) == 5
    assert all(s.bit_length() > 64 for s in serials)


def test_leaf_never_outlives_its_ca(now: datetime) -> None:
    short_ca = CertificateAuthority.create(days=10, now=now)
    cert = issue_client_certificate(short_ca, "c", days=825, now=now).cert
    assert cert.not_valid_after_utc == short_ca.cert.not_valid_after_utc


def test_explicit_past_not_after_makes_an_expired_certificate(
    ca: CertificateAuthority, now: datetime
) -> None:
    cert = issue_client_certificate(ca, "old", now=now, not_after=now - timedelta(days=1)).cert
    assert cert.not_valid_before_utc < cert.not_valid_after_utc < now


@pytest.mark.parametrize("name", ["", "-dash", "a/b", "../x", "x" * 65, "naïve", "a b"])
def test_bad_client_names_are_refused(ca: CertificateAuthority, name: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid client name"):
        issue_client_certificate(ca, name)


@pytest.mark.parametrize("host", ["bad host", "-x.example", "a..b", "exa_mple.com"])
def test_bad_hosts_are_refused(ca: CertificateAuthority, host: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid host"):
        issue_server_certificate(ca, hosts=[host])


@pytest.mark.parametrize("days", [0, -1, 40000])
def test_out_of_range_days_are_refused(ca: CertificateAuthority, days: int) -> None:
    with pytest.raises(InvalidArgument, match="--days"):
        issue_client_certificate(ca, "c", days=days)


def test_naive_now_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="timezone-aware"):
        CertificateAuthority.create(now=datetime(2026, 1, 1))


def test_fingerprint_is_sha256_of_the_der_in_the_pem(
    ca: CertificateAuthority, now: datetime
) -> None:
    issued = issue_client_certificate(ca, "c", now=now)
    # Decode the PEM by hand: base64 between the armour lines is the DER.
    lines = issued.cert_pem.decode().strip().splitlines()
    der = base64.b64decode("".join(lines[1:-1]))
    expected = ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
    assert issued.fingerprint == fingerprint(issued.cert) == expected
    assert len(expected) == 32 * 3 - 1
