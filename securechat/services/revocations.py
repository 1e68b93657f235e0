"""Revoked client certificates, from the revocation file and from the store (all nodes).

grpcio has no CRL support, so every RPC asks :meth:`Revocations.is_revoked` about its peer's
certificate, and streams of a certificate that becomes revoked are ended (RevokedCertificate).
"""

from __future__ import annotations

import logging
from pathlib import Path

from securechat.domain.model import PeerCertificate
from securechat.pki import RevocationList, RevocationWatcher
from securechat.services.hub import Hub
from securechat.storage.port import Store

log = logging.getLogger("securechat.revocations")


class Revocations:
    """Revoked client certificates from the revocation file and from the store (all nodes)."""

    def __init__(self, path: Path, hub: Hub) -> None:
        self.watcher = RevocationWatcher(path)
        self.hub = hub
        self._file_list: RevocationList | None = None
        self._fingerprints: set[str] = set()
        self._serials: set[str] = set()
        self._store_fingerprints: set[str] = set()
        self._store_serials: set[str] = set()
        # File entries not yet handed to take_new() (their sessions are still to be ended).
        self._new: list[tuple[str, str]] = []

    def _refresh_file(self) -> None:
        current = self.watcher.current()
        if current is self._file_list:
            return
        self._file_list = current
        before = (self._fingerprints, self._serials)
        self._fingerprints = {e.fingerprint for e in current.entries if e.fingerprint}
        self._serials = {e.serial for e in current.entries if e.serial}
        self._new.extend(
            (e.fingerprint or "", e.serial or "")
            for e in current.entries
            if (e.fingerprint and e.fingerprint not in before[0])
            or (e.serial and e.serial not in before[1])
        )
        ended = self.hub.end_revoked(
            self._fingerprints | self._store_fingerprints, self._serials | self._store_serials
        )
        if ended:
            log.info("ended %d streams of revoked certificates", ended)

    def is_revoked(self, cert: PeerCertificate) -> bool:
        self._refresh_file()
        if not cert.fingerprint:
            return False
        return (
            cert.fingerprint in self._fingerprints
            or cert.fingerprint in self._store_fingerprints
            or cert.serial_hex in self._serials
            or cert.serial_hex in self._store_serials
        )

    def add(self, fingerprint: str, serial_hex: str) -> None:
        if fingerprint:
            self._store_fingerprints.add(fingerprint)
        if serial_hex:
            self._store_serials.add(serial_hex)
        self.hub.end_revoked({fingerprint} - {""}, {serial_hex} - {""})

    async def load_from_store(self, store: Store) -> None:
        for serial, fingerprint in await store.list_revocations():
            self.add(fingerprint, serial)

    def sweep(self) -> None:
        """Periodic: apply a changed revocation file to streams already open."""
        self._refresh_file()

    def take_new(self) -> list[tuple[str, str]]:
        """(fingerprint, serial) of file revocations seen since the last call, whose sessions
        the node then ends."""
        new, self._new = self._new, []
        return new
