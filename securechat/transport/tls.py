"""Server TLS: client certificates required, files re-read on change (rotation without restart),
and the revocation list checked on every RPC (grpcio has no CRL support)."""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import grpc

from securechat.pki import RevocationList, RevocationWatcher, load_server_material
from securechat.pki.material import ServerMaterial
from securechat.services.hub import Hub
from securechat.storage.port import Store
from securechat.transport.peer import PeerCertificate

log = logging.getLogger("securechat.tls")


def _signature(paths: tuple[Path, ...]) -> tuple[tuple[int, int, int], ...]:
    out = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append((0, 0, 0))
        else:
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


class RotatingCredentials:
    """Dynamic server credentials: new handshakes pick up changed certificate files."""

    def __init__(self, ca: Path, cert: Path, key: Path, interval: float = 2.0) -> None:
        self.paths = (ca, cert, key)
        self.interval = interval
        self.material = self._load()  # CertificateError at start-up, with the file named
        self._signature = _signature(self.paths)
        self._checked = time.monotonic()
        self.reloads = 0

    def _load(self) -> ServerMaterial:
        ca, cert, key = self.paths
        return load_server_material(ca, cert, key, now=datetime.now(UTC))

    @staticmethod
    def _config(material: ServerMaterial) -> object:
        return grpc.ssl_server_certificate_configuration(
            [(material.key_pem, material.cert_pem)], root_certificates=material.ca_pem
        )

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._config(self.material), self._fetch, require_client_authentication=True
        )

    def _fetch(self) -> object | None:
        """Called by gRPC before handshakes: a new configuration, or None for 'unchanged'."""
        now = time.monotonic()
        if now - self._checked < self.interval:
            return None
        self._checked = now
        signature = _signature(self.paths)
        if signature == self._signature:
            return None
        self._signature = signature
        try:
            material = self._load()
        except Exception as exc:
            log.warning(
                "certificate files changed but cannot be used, keeping the old ones: %s", exc
            )
            return None
        self.material = material
        self.reloads += 1
        log.info("certificates reloaded from %s", ", ".join(str(p) for p in self.paths))
        return self._config(material)


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

    def _refresh_file(self) -> None:
        current = self.watcher.current()
        if current is self._file_list:
            return
        self._file_list = current
        self._fingerprints = {e.fingerprint for e in current.entries if e.fingerprint}
        self._serials = {e.serial for e in current.entries if e.serial}
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
