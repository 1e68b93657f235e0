"""Who is on the other end: the client certificate from the TLS auth context."""

from __future__ import annotations

from functools import lru_cache

import grpc
from cryptography import x509

from securechat.domain.model import NO_CERTIFICATE, PeerCertificate
from securechat.pki.inspection import fingerprint


@lru_cache(maxsize=4096)
def _parse(pem: bytes) -> PeerCertificate:
    cert = x509.load_pem_x509_certificate(pem)
    cns = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    cn = cns[0].value if cns else None
    return PeerCertificate(
        subject=cert.subject.rfc4514_string(),
        common_name=cn if isinstance(cn, str) else None,
        fingerprint=fingerprint(cert),
        serial_hex=format(cert.serial_number, "x"),
    )


def peer_certificate(context: grpc.aio.ServicerContext) -> PeerCertificate:
    auth = context.auth_context()
    pems = auth.get("x509_pem_cert") if auth else None
    if not pems:
        return NO_CERTIFICATE
    return _parse(bytes(pems[0]))
