"""The certificate authority: create a self-signed EC P-256 CA, load it, sign leaves with it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from securechat.errors import CertificateError, InvalidArgument
from securechat.pki.inspection import aware_now, parse_certificates
from securechat.pki.keys import (
    CERT_MODE,
    KEY_MODE,
    generate_key,
    key_to_pem,
    parse_private_key,
    read_file,
    write_file,
)
from securechat.pki.material import check_key_matches, check_validity

__all__ = [
    "CA_COMMON_NAME",
    "CA_DAYS",
    "CLOCK_SKEW",
    "MAX_DAYS",
    "ORGANIZATION",
    "CertificateAuthority",
    "check_days",
]

CA_DAYS = 3650
"""Default CA lifetime: ten years."""
MAX_DAYS = 36500
CLOCK_SKEW = timedelta(minutes=5)
"""Certificates start this long before ``now`` so peers with slightly slow clocks accept them."""
ORGANIZATION = "securechat"
CA_COMMON_NAME = "securechat development CA"

IssuerKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def check_days(days: int) -> int:
    """Validate a validity period in days (1 … 36500)."""
    if not 1 <= days <= MAX_DAYS:
        raise InvalidArgument(f"--days must be between 1 and {MAX_DAYS}, got {days}")
    return days


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """A CA certificate and its private key; signs server and client certificates."""

    cert: x509.Certificate
    key: IssuerKey

    @classmethod
    def create(
        cls,
        *,
        common_name: str = CA_COMMON_NAME,
        days: int = CA_DAYS,
        now: datetime | None = None,
    ) -> CertificateAuthority:
        """A new self-signed CA: basicConstraints CA:true pathlen 0, keyCertSign/cRLSign, SKI."""
        now = aware_now(now)
        key = generate_key()
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )
        public = key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + timedelta(days=check_days(days)))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert=cert, key=key)

    @classmethod
    def load(
        cls, cert_path: Path | str, key_path: Path | str, *, now: datetime | None = None
    ) -> CertificateAuthority:
        """Load a CA from PEM files, checking it is a CA, unexpired, and that the key matches."""
        cert_path, key_path = Path(cert_path), Path(key_path)
        cert = parse_certificates(read_file(cert_path), cert_path)[0]
        key = parse_private_key(read_file(key_path), key_path)
        check_key_matches(cert, key, key_path)
        try:
            is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise CertificateError(f"{cert_path}: not a CA certificate (basicConstraints CA:false)")
        check_validity(cert, cert_path, aware_now(now))
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise CertificateError(f"{key_path}: unsupported CA key type (use EC P-256 or RSA)")
        return cls(cert=cert, key=key)

    @property
    def cert_pem(self) -> bytes:
        """The CA certificate as PEM."""
        return self.cert.public_bytes(Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        """The CA private key as unencrypted PKCS#8 PEM."""
        return key_to_pem(self.key)

    def save(self, cert_path: Path, key_path: Path, *, force: bool = False) -> None:
        """Write the key (0600) and certificate (0644) atomically; no overwrite unless ``force``."""
        write_file(key_path, self.key_pem, mode=KEY_MODE, force=force)
        write_file(cert_path, self.cert_pem, mode=CERT_MODE, force=force)

    def sign(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        """Sign ``builder`` as this CA: sets the issuer name and the authority key identifier."""
        try:
            ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
        except x509.ExtensionNotFound:
            aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key())
        builder = builder.issuer_name(self.cert.subject).add_extension(aki, critical=False)
        return builder.sign(self.key, hashes.SHA256())
