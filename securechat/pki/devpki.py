"""Throwaway PKIs for tests and demos: a CA, a server and clients in one call, plus bad inputs.

Besides good client certificates, :func:`make_dev_pki` can issue ones the server must refuse:
already expired (``expired=``), signed by a foreign CA (``foreign=``) and listed in
``revoked.json`` (``revoked=``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from securechat.errors import InvalidArgument, NotFound
from securechat.pki.authority import CertificateAuthority
from securechat.pki.inspection import aware_now
from securechat.pki.issue import issue_client_certificate
from securechat.pki.keys import ensure_directory
from securechat.pki.layout import CA_CERT, CA_KEY, REVOKED, SERVER_CERT, SERVER_KEY, init_pki
from securechat.pki.revocation import RevocationList

__all__ = ["FOREIGN_CA_CERT", "FOREIGN_CA_KEY", "CertificatePaths", "DevPki", "make_dev_pki"]

FOREIGN_CA_CERT, FOREIGN_CA_KEY = "foreign-ca.crt", "foreign-ca.key"


@dataclass(frozen=True, slots=True)
class CertificatePaths:
    """Where one certificate and its private key live."""

    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class DevPki:
    """Paths of a PKI made by :func:`make_dev_pki`."""

    directory: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    revocation_list: Path
    clients: Mapping[str, CertificatePaths]
    """Every client certificate, including expired, foreign and revoked ones, by name."""
    foreign_ca_cert: Path | None = None

    def client(self, name: str) -> CertificatePaths:
        """The certificate and key of client ``name``."""
        try:
            return self.clients[name]
        except KeyError:
            raise NotFound(f"no client {name!r} in the dev PKI at {self.directory}") from None


def make_dev_pki(
    directory: Path | str,
    *,
    clients: Sequence[str] = ("client",),
    hosts: Sequence[str] = (),
    now: datetime | None = None,
    expired: Sequence[str] = (),
    foreign: Sequence[str] = (),
    revoked: Sequence[str] = (),
) -> DevPki:
    """Create a complete PKI under ``directory`` and return its paths.

    ``clients`` get valid certificates; ``expired`` ones expired a day before ``now``; ``foreign``
    ones are signed by a separate CA (``foreign-ca.crt``) the server does not trust; names in
    ``revoked`` (which must be among ``clients``) are written to ``revoked.json``.
    """
    directory = Path(directory)
    now = aware_now(now)
    names = [*clients, *expired, *foreign]
    if len(set(names)) != len(names):
        raise InvalidArgument("client names in clients, expired and foreign must be distinct")
    if unknown := set(revoked) - set(clients):
        raise InvalidArgument(f"revoked names must be among clients: {sorted(unknown)}")
    ensure_directory(directory)
    init_pki(directory, hosts=hosts, now=now)
    ca = CertificateAuthority.load(directory / CA_CERT, directory / CA_KEY, now=now)
    paths: dict[str, CertificatePaths] = {}
    revocations = RevocationList()

    def save(name: str, authority: CertificateAuthority, not_after: datetime | None) -> None:
        issued = issue_client_certificate(authority, name, now=now, not_after=not_after)
        entry = CertificatePaths(directory / f"{name}.crt", directory / f"{name}.key")
        issued.save(entry.cert, entry.key)
        paths[name] = entry
        if name in revoked:
            revocations.add(issued.cert, now=now)

    for name in clients:
        save(name, ca, None)
    for name in expired:
        save(name, ca, now - timedelta(days=1))
    foreign_ca_cert: Path | None = None
    if foreign:
        other = CertificateAuthority.create(common_name="foreign CA (not trusted)", now=now)
        foreign_ca_cert = directory / FOREIGN_CA_CERT
        other.save(foreign_ca_cert, directory / FOREIGN_CA_KEY)
        for name in foreign:
            save(name, other, None)
    if revoked:
        revocations.save(directory / REVOKED)
    return DevPki(
        directory=directory,
        ca_cert=directory / CA_CERT,
        ca_key=directory / CA_KEY,
        server_cert=directory / SERVER_CERT,
        server_key=directory / SERVER_KEY,
        revocation_list=directory / REVOKED,
        clients=paths,
        foreign_ca_cert=foreign_ca_cert,
    )
