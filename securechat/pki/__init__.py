"""The securechat PKI: CA, server and client certificates, start-up checks, revocation list.

Modules, bottom up: ``keys`` (EC keys, atomic 0600/0644 writes), ``inspection`` (loading,
fingerprints, summaries), ``material`` (the server's and client's start-up checks),
``authority`` (the CA), ``issue`` (leaf certificates), ``revocation`` (revoked.json and its
watcher), ``index`` (issued.json: every certificate the CA issued),
``layout`` (the certs/ directory behind ``securechat-admin certs``) and ``devpki``
(throwaway PKIs for tests). Imports only ``cryptography``, the standard library and
``securechat.errors``.
"""

from securechat.pki.authority import CA_DAYS, CertificateAuthority
from securechat.pki.devpki import CertificatePaths, DevPki, make_dev_pki
from securechat.pki.index import IssuedIndex
from securechat.pki.inspection import (
    CertificateDetails,
    common_name,
    describe,
    fingerprint,
    fingerprint_der,
    format_fingerprint,
    load_certificate,
    parse_fingerprint,
)
from securechat.pki.issue import (
    LEAF_DAYS,
    SERVER_COMMON_NAME,
    IssuedCertificate,
    issue_client_certificate,
    issue_server_certificate,
)
from securechat.pki.layout import init_pki, issue_client, reissue_server, revoke, show_certificates
from securechat.pki.material import (
    ClientMaterial,
    ServerMaterial,
    load_client_material,
    load_server_material,
)
from securechat.pki.revocation import RevocationEntry, RevocationList, RevocationWatcher

__all__ = [
    "CA_DAYS",
    "LEAF_DAYS",
    "SERVER_COMMON_NAME",
    "CertificateAuthority",
    "CertificateDetails",
    "CertificatePaths",
    "ClientMaterial",
    "DevPki",
    "IssuedCertificate",
    "IssuedIndex",
    "RevocationEntry",
    "RevocationList",
    "RevocationWatcher",
    "ServerMaterial",
    "common_name",
    "describe",
    "fingerprint",
    "fingerprint_der",
    "format_fingerprint",
    "init_pki",
    "issue_client",
    "issue_client_certificate",
    "issue_server_certificate",
    "load_certificate",
    "load_client_material",
    "load_server_material",
    "make_dev_pki",
    "parse_fingerprint",
    "reissue_server",
    "revoke",
    "show_certificates",
]
