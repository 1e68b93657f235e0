"""The PKI directory on disk (``certs/``): file names and the init, issue, server, show and revoke
steps.

These are the operations behind ``securechat-admin certs``; they return what happened and leave
the printing to the command line. Bad input raises before anything is written. Every certificate
issued is recorded in ``issued.json`` (:mod:`securechat.pki.index`), so any of them can be revoked
by serial later; re-issuing a client certificate over an existing one revokes the one replaced.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509

from securechat.errors import InvalidArgument, NotFound
from securechat.pki.authority import CA_DAYS, CertificateAuthority
from securechat.pki.index import IssuedIndex
from securechat.pki.inspection import CertificateDetails, describe, fingerprint, load_certificate
from securechat.pki.issue import (
    DEFAULT_SERVER_HOSTS,
    LEAF_DAYS,
    check_client_name,
    issue_client_certificate,
    issue_server_certificate,
)
from securechat.pki.keys import ensure_directory, refuse_existing
from securechat.pki.revocation import RevocationEntry, RevocationList

__all__ = [
    "CA_CERT",
    "CA_KEY",
    "RESERVED_NAMES",
    "REVOKED",
    "SERVER_CERT",
    "SERVER_KEY",
    "RevokeResult",
    "ShownCertificate",
    "WrittenFile",
    "init_pki",
    "issue_client",
    "reissue_server",
    "revoke",
    "show_certificates",
]

CA_CERT, CA_KEY = "ca.crt", "ca.key"
SERVER_CERT, SERVER_KEY = "server.crt", "server.key"
REVOKED = "revoked.json"
RESERVED_NAMES = frozenset({"ca", "server"})


@dataclass(frozen=True, slots=True)
class WrittenFile:
    """A file the PKI wrote; ``fingerprint`` is the SHA-256 of the certificate it holds or
    belongs to (a key file carries its certificate's fingerprint)."""

    path: Path
    kind: str  # "certificate" or "private key"
    fingerprint: str


@dataclass(frozen=True, slots=True)
class ShownCertificate:
    path: Path
    details: CertificateDetails
    revoked: RevocationEntry | None


@dataclass(frozen=True, slots=True)
class RevokeResult:
    path: Path
    entry: RevocationEntry
    already_revoked: bool
    revocation_list: Path


@dataclass(frozen=True, slots=True)
class IssueResult:
    written: list[WrittenFile]
    replaced: RevocationEntry | None
    """The certificate the new one replaced, now revoked (``--force`` over an existing file)."""


def _pair(cert_path: Path, key_path: Path, fp: str) -> list[WrittenFile]:
    return [
        WrittenFile(cert_path, "certificate", fp),
        WrittenFile(key_path, "private key", fp),
    ]


def init_pki(
    directory: Path | str,
    *,
    hosts: Iterable[str] = (),
    days: int = LEAF_DAYS,
    ca_days: int = CA_DAYS,
    force: bool = False,
    now: datetime | None = None,
) -> list[WrittenFile]:
    """Create ``ca.crt``/``ca.key`` and ``server.crt``/``server.key`` in ``directory``."""
    directory = Path(directory)
    paths = [directory / n for n in (CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY)]
    if not force:
        refuse_existing(paths)
    ca = CertificateAuthority.create(days=ca_days, now=now)
    server = issue_server_certificate(ca, hosts=list(hosts), days=days, now=now)
    ensure_directory(directory)
    ca.save(paths[0], paths[1], force=force)
    server.save(paths[2], paths[3], force=force)
    IssuedIndex.load(directory).record(server.cert, "server", paths[2], now)
    return _pair(paths[0], paths[1], fingerprint(ca.cert)) + _pair(
        paths[2], paths[3], server.fingerprint
    )


def issue_client(
    name: str,
    *,
    directory: Path | str,
    out_dir: Path | str | None = None,
    days: int = LEAF_DAYS,
    force: bool = False,
    now: datetime | None = None,
    not_after: datetime | None = None,
) -> IssueResult:
    """Issue ``NAME.crt``/``NAME.key`` signed by the CA in ``directory``, into ``out_dir``.

    With ``force`` over an existing client certificate, that certificate is revoked first (in
    ``revoked.json``): a re-issued certificate never leaves the old one valid."""
    check_client_name(name)
    if name in RESERVED_NAMES:
        raise InvalidArgument(f"{name!r} is reserved for the {name} files: choose another name")
    directory = Path(directory)
    target = Path(out_dir) if out_dir is not None else directory
    cert_path, key_path = target / f"{name}.crt", target / f"{name}.key"
    if not force:
        refuse_existing([cert_path, key_path])
    ca = CertificateAuthority.load(directory / CA_CERT, directory / CA_KEY, now=now)
    index = IssuedIndex.load(directory)
    replaced = None
    if cert_path.is_file():
        old = load_certificate(cert_path)
        if _is_client(old):
            replaced = _add_revocation(directory, old, now)[0]
    issued = issue_client_certificate(ca, name, days=days, now=now, not_after=not_after)
    ensure_directory(target)
    issued.save(cert_path, key_path, force=force)
    index.record(issued.cert, "client", cert_path, now)
    return IssueResult(_pair(cert_path, key_path, issued.fingerprint), replaced)


def current_server_hosts(directory: Path) -> list[str]:
    """The DNS names and IP addresses of ``server.crt`` beyond the defaults (none if absent)."""
    path = directory / SERVER_CERT
    if not path.is_file():
        return []
    names = [san.split(":", 1)[1] for san in describe(load_certificate(path)).subject_alt_names]
    return [n for n in names if n not in DEFAULT_SERVER_HOSTS]


def reissue_server(
    directory: Path | str,
    *,
    hosts: Iterable[str] = (),
    keep_hosts: bool = True,
    days: int = LEAF_DAYS,
    now: datetime | None = None,
) -> list[WrittenFile]:
    """A new ``server.key`` and ``server.crt`` from the existing CA, replacing the old pair.

    The names are localhost, 127.0.0.1, ::1, the current certificate's other names (unless
    ``keep_hosts`` is False) and ``hosts``. The key is written before the certificate, each
    atomically, so a running server, which re-reads both, never loads a half-written pair (it
    keeps the old pair while the new key does not match the old certificate)."""
    directory = Path(directory)
    names = [*(current_server_hosts(directory) if keep_hosts else []), *hosts]
    ca = CertificateAuthority.load(directory / CA_CERT, directory / CA_KEY, now=now)
    server = issue_server_certificate(ca, hosts=list(dict.fromkeys(names)), days=days, now=now)
    cert_path, key_path = directory / SERVER_CERT, directory / SERVER_KEY
    server.save(cert_path, key_path, force=True)
    IssuedIndex.load(directory).record(server.cert, "server", cert_path, now)
    return _pair(cert_path, key_path, server.fingerprint)


def _certificate_files(directory: Path) -> list[Path]:
    order = {CA_CERT: 0, SERVER_CERT: 1}
    found = sorted(directory.glob("*.crt"), key=lambda p: (order.get(p.name, 2), p.name))
    if not found:
        raise NotFound(f"no certificates in {directory}: run `securechat-admin certs init`")
    return found


def show_certificates(
    directory: Path | str, files: Sequence[Path | str] = ()
) -> list[ShownCertificate]:
    """Describe ``files`` (default: every ``*.crt`` in ``directory``) and their revocation."""
    directory = Path(directory)
    paths = [Path(f) for f in files] or _certificate_files(directory)
    revoked = RevocationList.load(directory / REVOKED)
    shown = []
    for path in paths:
        cert = load_certificate(path)
        shown.append(ShownCertificate(path, describe(cert), revoked.find(cert)))
    return shown


def _find_by_serial(directory: Path, text: str) -> tuple[Path, x509.Certificate] | None:
    try:
        serial = int(text.strip().lower().removeprefix("0x").replace(":", ""), 16)
    except ValueError:
        return None
    for path in directory.glob("*.crt"):
        cert = load_certificate(path)
        if cert.serial_number == serial:
            return path, cert
    return None


def _is_client(cert: x509.Certificate) -> bool:
    usage = describe(cert)
    return not usage.is_ca and "clientAuth" in usage.extended_key_usage


def _add_revocation(
    directory: Path, cert: x509.Certificate, now: datetime | None
) -> tuple[RevocationEntry, bool]:
    list_path = directory / REVOKED
    revocations = RevocationList.load(list_path)
    before = len(revocations)
    entry = revocations.add(cert, now=now)
    already = len(revocations) == before
    if not already:
        revocations.save(list_path)
    return entry, already


def revoke(target: str, *, directory: Path | str, now: datetime | None = None) -> RevokeResult:
    """Add the client certificate ``directory/TARGET.crt``, or the one with serial TARGET (hex)
    that this CA issued (from ``issued.json``, so an overwritten file does not matter), or one in
    a ``*.crt`` file of ``directory``, to ``directory/revoked.json``."""
    directory = Path(directory)
    by_name = directory / f"{target}.crt"
    list_path = directory / REVOKED
    if "/" not in target and "\\" not in target and by_name.is_file():
        path, cert = by_name, load_certificate(by_name)
    elif (issued := IssuedIndex.load(directory).by_serial(target)) is not None:
        if issued.kind != "client":
            raise InvalidArgument(f"serial {target} is the {issued.kind} certificate: only "
                                  "client certificates can be revoked")  # fmt: skip
        revocations = RevocationList.load(list_path)
        before = len(revocations)
        entry = revocations.add_record(issued.serial, issued.fingerprint_sha256,
                                       issued.subject_cn, now=now)  # fmt: skip
        already = len(revocations) == before
        if not already:
            revocations.save(list_path)
        return RevokeResult(directory / issued.file, entry, already, list_path)
    elif (found := _find_by_serial(directory, target)) is not None:
        path, cert = found
    else:
        raise NotFound(
            f"no certificate {by_name.name} in {directory} and none with serial {target!r}: "
            "see `securechat-admin certs show`"
        )
    if not _is_client(cert):
        raise InvalidArgument(f"{path} is not a client certificate: only those can be revoked")
    entry, already = _add_revocation(directory, cert, now)
    return RevokeResult(path, entry, already, list_path)
