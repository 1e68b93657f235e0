"""The index of every certificate the CA in a certs folder issued (``issued.json``).

A certificate file can be overwritten or handed away; the index keeps what revocation needs
(serial, SHA-256 fingerprint, common name) for each one, so ``certs revoke SERIAL`` works for any
certificate this CA ever issued. The file looks like::

    {"version": 1,
     "issued": [{"serial": "5f1c…", "fingerprint_sha256": "AB:CD:…", "subject_cn": "alice",
                 "kind": "client", "file": "alice.crt", "not_after": "2028-04-01T12:00:00Z",
                 "issued_at": "2026-01-15T12:00:00Z"}]}

It is written atomically (mode 0644: it holds no secret) next to ``ca.crt``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509

from securechat.errors import CertificateError
from securechat.pki.inspection import aware_now, common_name, fingerprint
from securechat.pki.keys import CERT_MODE, write_file

__all__ = ["INDEX", "IssuedEntry", "IssuedIndex"]

INDEX = "issued.json"
FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class IssuedEntry:
    serial: str
    fingerprint_sha256: str
    subject_cn: str
    kind: str  # "server" or "client"
    file: str
    not_after: str
    issued_at: str


def _serial(text: str) -> int | None:
    try:
        return int(text.strip().lower().removeprefix("0x").replace(":", ""), 16)
    except ValueError:
        return None


class IssuedIndex:
    """The entries of ``directory/issued.json`` (empty when the file does not exist yet)."""

    def __init__(self, path: Path, entries: list[IssuedEntry]) -> None:
        self.path = path
        self.entries = entries

    @classmethod
    def load(cls, directory: Path) -> IssuedIndex:
        path = directory / INDEX
        try:
            doc = json.loads(path.read_bytes())
        except FileNotFoundError:
            return cls(path, [])
        except (OSError, ValueError) as exc:
            raise CertificateError(
                f"{path}: not a readable index of issued certificates: {exc}"
            ) from None
        try:
            if doc.get("version") != FORMAT_VERSION:
                raise ValueError(f"expected version {FORMAT_VERSION}")
            return cls(path, [IssuedEntry(**item) for item in doc["issued"]])
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise CertificateError(
                f"{path}: not a valid index of issued certificates: {exc}"
            ) from None

    def record(
        self, cert: x509.Certificate, kind: str, file: Path, now: datetime | None = None
    ) -> IssuedEntry:
        """Add ``cert`` and write the file."""
        entry = IssuedEntry(
            serial=format(cert.serial_number, "x"),
            fingerprint_sha256=fingerprint(cert),
            subject_cn=common_name(cert) or "",
            kind=kind,
            file=file.name,
            not_after=cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
            issued_at=aware_now(now).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        self.entries.append(entry)
        doc = {"version": FORMAT_VERSION, "issued": [asdict(e) for e in self.entries]}
        write_file(self.path, (json.dumps(doc, indent=2) + "\n").encode(), mode=CERT_MODE,
                   force=True)  # fmt: skip
        return entry

    def by_serial(self, text: str) -> IssuedEntry | None:
        serial = _serial(text)
        if serial is None:
            return None
        return next((e for e in self.entries if int(e.serial, 16) == serial), None)
