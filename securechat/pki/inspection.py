"""Reading certificates: PEM loading with clear errors, SHA-256 fingerprints, human summaries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from securechat.errors import CertificateError, InvalidArgument
from securechat.pki.keys import read_file

__all__ = [
    "CertificateDetails",
    "aware_now",
    "common_name",
    "describe",
    "fingerprint",
    "fingerprint_der",
    "format_fingerprint",
    "load_certificate",
    "load_certificates",
    "parse_certificates",
    "parse_fingerprint",
]

_EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
}
_KU_NAMES = (
    ("digital_signature", "digitalSignature"),
    ("content_commitment", "nonRepudiation"),
    ("key_encipherment", "keyEncipherment"),
    ("data_encipherment", "dataEncipherment"),
    ("key_agreement", "keyAgreement"),
    ("key_cert_sign", "keyCertSign"),
    ("crl_sign", "cRLSign"),
)


def aware_now(now: datetime | None) -> datetime:
    """Return ``now`` (or the current time) as an aware UTC datetime; naive values are refused."""
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidArgument("now must be a timezone-aware datetime (e.g. datetime.now(UTC))")
    return now.astimezone(UTC)


def format_fingerprint(digest: bytes) -> str:
    """A SHA-256 digest as securechat shows and stores fingerprints: ``AB:CD:…`` (95 chars)."""
    return digest.hex(":").upper()


def parse_fingerprint(text: str) -> str:
    """Operator input (64 hex digits, colons and case optional) in :func:`format_fingerprint`
    form; InvalidArgument otherwise."""
    digits = text.replace(":", "").strip()
    try:
        digest = bytes.fromhex(digits)
    except ValueError:
        digest = b""
    if len(digest) != 32 or len(digits) != 64:
        raise InvalidArgument("a SHA-256 fingerprint is 64 hex digits (colons optional)")
    return format_fingerprint(digest)


def fingerprint_der(der: bytes) -> str:
    """SHA-256 of DER bytes as colon-separated upper-case hex (``AB:CD:…``)."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    return format_fingerprint(digest.finalize())


def fingerprint(cert: x509.Certificate) -> str:
    """The certificate's SHA-256 fingerprint as colon-separated upper-case hex."""
    return format_fingerprint(cert.fingerprint(hashes.SHA256()))


def common_name(cert: x509.Certificate) -> str | None:
    """The subject CN, or None when the subject has none."""
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        return None
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def load_certificates(path: Path) -> list[x509.Certificate]:
    """Every certificate in the PEM file ``path`` (a bundle is allowed); at least one."""
    return parse_certificates(read_file(path), path)


def parse_certificates(data: bytes, path: Path) -> list[x509.Certificate]:
    """Parse PEM certificate bytes read from ``path`` (named in the error when they are not)."""
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise CertificateError(f"{path}: not a valid PEM certificate") from None
    if not certs:  # pragma: no cover - cryptography raises on an empty bundle
        raise CertificateError(f"{path}: not a valid PEM certificate")
    return certs


def load_certificate(path: Path) -> x509.Certificate:
    """The first (leaf) certificate in the PEM file ``path``."""
    return load_certificates(path)[0]


@dataclass(frozen=True, slots=True)
class CertificateDetails:
    """What `certs show` prints about one certificate."""

    subject: str
    issuer: str
    serial: str
    not_before: datetime
    not_after: datetime
    subject_alt_names: tuple[str, ...]
    key_usage: tuple[str, ...]
    extended_key_usage: tuple[str, ...]
    is_ca: bool
    fingerprint: str


def describe(cert: x509.Certificate) -> CertificateDetails:
    """Summarise ``cert`` for people: names, serial (hex), validity, SANs, EKU, fingerprint."""
    sans: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        pass
    else:
        sans.extend(f"DNS:{name}" for name in san.get_values_for_type(x509.DNSName))
        sans.extend(f"IP:{ip}" for ip in san.get_values_for_type(x509.IPAddress))
    ekus: list[str] = []
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        pass
    else:
        ekus.extend(_EKU_NAMES.get(oid, oid.dotted_string) for oid in eku)
    usages: list[str] = []
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        pass
    else:
        usages.extend(name for attr, name in _KU_NAMES if getattr(ku, attr))
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    return CertificateDetails(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        subject_alt_names=tuple(sans),
        key_usage=tuple(usages),
        extended_key_usage=tuple(ekus),
        is_ca=is_ca,
        fingerprint=fingerprint(cert),
    )
