"""Client-certificate revocation: a JSON list the server checks on every RPC (grpcio has no CRLs).

The file (default ``certs/revoked.json``) looks like::

    {"version": 1,
     "revoked": [{"serial": "5f1c…", "fingerprint_sha256": "AB:CD:…",
                  "subject_cn": "alice-laptop", "revoked_at": "2025-01-31T12:00:00Z"}]}

A certificate is revoked when its SHA-256 fingerprint or its serial number is listed. Lookups are
set membership, so :meth:`RevocationList.is_revoked` costs a hash of the DER bytes. The server
holds a :class:`RevocationWatcher`, which re-reads the file when its inode, size or mtime change,
checking with one ``os.stat`` at most every half second.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from securechat.errors import CertificateError, InvalidArgument
from securechat.pki.inspection import (
    aware_now,
    common_name,
    fingerprint,
    fingerprint_der,
    parse_fingerprint,
)
from securechat.pki.keys import CERT_MODE, ensure_directory, write_file

__all__ = ["FORMAT_VERSION", "RevocationEntry", "RevocationList", "RevocationWatcher"]

FORMAT_VERSION = 1
_FileSignature = tuple[int, int, int] | None


def _normalize_serial(value: str) -> str:
    text = value.strip().lower().removeprefix("0x").replace(":", "")
    return format(int(text, 16), "x")  # ValueError when not hex


@dataclass(frozen=True, slots=True)
class RevocationEntry:
    """One revoked certificate. ``serial`` is lower-case hex; either it or the fingerprint may be
    empty in a hand-written file, never both."""

    serial: str
    fingerprint: str
    subject_cn: str
    revoked_at: str

    def to_json(self) -> dict[str, str]:
        return {
            "serial": self.serial,
            "fingerprint_sha256": self.fingerprint,
            "subject_cn": self.subject_cn,
            "revoked_at": self.revoked_at,
        }

    @classmethod
    def from_json(cls, item: Any) -> RevocationEntry:
        if not isinstance(item, dict):
            raise ValueError("each entry must be an object")
        fields = {k: item.get(k, "") for k in ("serial", "fingerprint_sha256", "subject_cn")}
        fields["revoked_at"] = item.get("revoked_at", "")
        if not all(isinstance(v, str) for v in fields.values()):
            raise ValueError("entry fields must be strings")
        if not fields["serial"] and not fields["fingerprint_sha256"]:
            raise ValueError("an entry needs a serial or a fingerprint_sha256")
        return cls(
            serial=_normalize_serial(fields["serial"]) if fields["serial"] else "",
            fingerprint=(
                parse_fingerprint(fields["fingerprint_sha256"])
                if fields["fingerprint_sha256"]
                else ""
            ),
            subject_cn=fields["subject_cn"],
            revoked_at=fields["revoked_at"],
        )


class RevocationList:
    """The revoked certificates, indexed by fingerprint and by serial for O(1) lookups."""

    def __init__(self, entries: Iterable[RevocationEntry] = ()) -> None:
        self._entries: list[RevocationEntry] = []
        self._digests: set[bytes] = set()
        self._serials: set[int] = set()
        for entry in entries:
            self._index(entry)

    def _index(self, entry: RevocationEntry) -> None:
        self._entries.append(entry)
        if entry.fingerprint:
            self._digests.add(bytes.fromhex(entry.fingerprint.replace(":", "")))
        if entry.serial:
            self._serials.add(int(entry.serial, 16))

    @property
    def entries(self) -> tuple[RevocationEntry, ...]:
        return tuple(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @classmethod
    def load(cls, path: Path | str) -> RevocationList:
        """Read the list at ``path``; a missing file is an empty list, a damaged one an error."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return cls()
        except OSError as exc:
            raise CertificateError(f"{path}: cannot read file: {exc.strerror or exc}") from None
        try:
            doc = json.loads(data)
            if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
                raise ValueError(f"expected an object with version {FORMAT_VERSION}")
            items = doc.get("revoked", [])
            if not isinstance(items, list):
                raise ValueError("'revoked' must be a list")
            return cls(RevocationEntry.from_json(item) for item in items)
        except (ValueError, InvalidArgument) as exc:  # json.JSONDecodeError is a ValueError
            raise CertificateError(f"{path}: not a valid revocation list: {exc}") from None

    def to_json(self) -> bytes:
        doc = {"version": FORMAT_VERSION, "revoked": [e.to_json() for e in self._entries]}
        return (json.dumps(doc, indent=2) + "\n").encode()

    def save(self, path: Path | str) -> None:
        """Atomically replace ``path`` (mode 0644): the watcher never reads a half-written file."""
        path = Path(path)
        ensure_directory(path.parent)
        write_file(path, self.to_json(), mode=CERT_MODE, force=True)

    def find(self, cert: x509.Certificate) -> RevocationEntry | None:
        """The entry revoking ``cert``, if any."""
        fp = fingerprint(cert)
        serial = format(cert.serial_number, "x")
        for entry in self._entries:
            if entry.fingerprint == fp or entry.serial == serial:
                return entry
        return None

    def add(self, cert: x509.Certificate, *, now: datetime | None = None) -> RevocationEntry:
        """Revoke ``cert`` (idempotent: returns the existing entry when already listed)."""
        existing = self.find(cert)
        if existing is not None:
            return existing
        entry = RevocationEntry(
            serial=format(cert.serial_number, "x"),
            fingerprint=fingerprint(cert),
            subject_cn=common_name(cert) or "",
            revoked_at=aware_now(now).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        self._index(entry)
        return entry

    def add_record(
        self, serial: str, fingerprint_sha256: str, subject_cn: str, *, now: datetime | None = None
    ) -> RevocationEntry:
        """Revoke by recorded facts, without the certificate (idempotent like :meth:`add`)."""
        entry = RevocationEntry(
            serial=_normalize_serial(serial),
            fingerprint=parse_fingerprint(fingerprint_sha256),
            subject_cn=subject_cn,
            revoked_at=aware_now(now).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        for existing in self._entries:
            if existing.fingerprint == entry.fingerprint or existing.serial == entry.serial:
                return existing
        self._index(entry)
        return entry

    def is_revoked(self, cert_der: bytes) -> bool:
        """Whether the DER certificate is listed, by SHA-256 fingerprint or by serial."""
        if not self._entries:
            return False
        digest = bytes.fromhex(fingerprint_der(cert_der).replace(":", ""))
        if digest in self._digests:
            return True
        if not self._serials:
            return False
        try:
            serial = x509.load_der_x509_certificate(cert_der).serial_number
        except ValueError:
            raise CertificateError("peer certificate is not valid DER") from None
        return serial in self._serials


class RevocationWatcher:
    """Holds the current :class:`RevocationList` and reloads it when the file changes.

    :meth:`current` is cheap enough for every RPC: at most one ``os.stat`` per ``interval``
    seconds, and a re-read only when the file's inode, size or mtime differ. A file that turns
    unreadable or invalid keeps the previous list in force and is reported in ``last_error``.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.interval = interval
        self._clock = clock
        self._signature = self._stat()
        self._list = RevocationList.load(self.path)  # an invalid file at start-up is fatal
        self._checked_at = clock()
        self.last_error: CertificateError | None = None

    def _stat(self) -> _FileSignature:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def current(self) -> RevocationList:
        """The revocation list in force, re-read first if the file changed."""
        now = self._clock()
        if now - self._checked_at < self.interval:
            return self._list
        self._checked_at = now
        try:
            signature = self._stat()
            if signature != self._signature:
                self._list = RevocationList.load(self.path)
                self._signature = signature
            self.last_error = None
        except OSError as exc:
            self.last_error = CertificateError(f"{self.path}: cannot read file: {exc}")
        except CertificateError as exc:
            self.last_error = exc
        return self._list
