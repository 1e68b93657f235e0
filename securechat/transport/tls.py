"""Server TLS credentials: client certificates required, files re-read on change (rotation
without restart). The revocation list (grpcio has no CRL support) is services/revocations.py."""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import grpc

from securechat.pki import load_server_material
from securechat.pki.material import ServerMaterial

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
