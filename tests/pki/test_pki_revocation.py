"""revoked.json: add, save, load, O(1) lookups, and the watcher's reload on change."""

from __future__ import annotations

import json
import stat
from datetime import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from securechat.errors import CertificateError
from securechat.pki import DevPki, RevocationList, RevocationWatcher, fingerprint, load_certificate


def der(path: Path) -> bytes:
    return load_certificate(path).public_bytes(Encoding.DER)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_missing_file_is_an_empty_list(tmp_path: Path) -> None:
    revoked = RevocationList.load(tmp_path / "revoked.json")
    assert len(revoked) == 0
    assert not revoked.is_revoked(b"anything")


def test_add_save_load_round_trip(dev_pki: DevPki, tmp_path: Path, now: datetime) -> None:
    cert = load_certificate(dev_pki.client("client").cert)
    revoked = RevocationList()
    entry = revoked.add(cert, now=now)
    assert revoked.add(cert, now=now) is entry  # idempotent
    path = tmp_path / "sub" / "revoked.json"
    revoked.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    doc = json.loads(path.read_text())
    assert doc == {
        "version": 1,
        "revoked": [
            {
                "serial": format(cert.serial_number, "x"),
                "fingerprint_sha256": fingerprint(cert),
                "subject_cn": "client",
                "revoked_at": "2026-01-15T12:00:00Z",
            }
        ],
    }
    loaded = RevocationList.load(path)
    assert loaded.entries == (entry,)
    assert loaded.is_revoked(cert.public_bytes(Encoding.DER))
    assert not loaded.is_revoked(der(dev_pki.client("mallory").cert))


def test_dev_pki_revokes_the_requested_clients(dev_pki: DevPki) -> None:
    revoked = RevocationList.load(dev_pki.revocation_list)
    assert revoked.is_revoked(der(dev_pki.client("mallory").cert))
    assert not revoked.is_revoked(der(dev_pki.client("client").cert))


def test_lookup_by_serial_alone(dev_pki: DevPki, tmp_path: Path) -> None:
    cert = load_certificate(dev_pki.client("client").cert)
    path = tmp_path / "revoked.json"
    serial = format(cert.serial_number, "X")
    path.write_text(json.dumps({"version": 1, "revoked": [{"serial": f"0x{serial}"}]}))
    assert RevocationList.load(path).is_revoked(cert.public_bytes(Encoding.DER))


def test_lookup_by_fingerprint_alone_needs_no_parsing(dev_pki: DevPki, tmp_path: Path) -> None:
    cert = load_certificate(dev_pki.client("client").cert)
    path = tmp_path / "revoked.json"
    bare = fingerprint(cert).replace(":", "").lower()
    path.write_text(json.dumps({"version": 1, "revoked": [{"fingerprint_sha256": bare}]}))
    revoked = RevocationList.load(path)
    assert revoked.is_revoked(cert.public_bytes(Encoding.DER))
    assert not revoked.is_revoked(b"not DER at all")  # fingerprint-only: no parse attempted


def test_malformed_der_with_serial_entries_is_a_certificate_error(dev_pki: DevPki) -> None:
    revoked = RevocationList.load(dev_pki.revocation_list)
    with pytest.raises(CertificateError, match="not valid DER"):
        revoked.is_revoked(b"not DER at all")


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"version": 2, "revoked": []}',
        '{"version": 1, "revoked": {}}',
        '{"version": 1, "revoked": [{"subject_cn": "x"}]}',
        '{"version": 1, "revoked": [{"serial": "zz"}]}',
        '{"version": 1, "revoked": [{"fingerprint_sha256": "AB:CD"}]}',
        '{"version": 1, "revoked": [{"serial": 5}]}',
    ],
)
def test_damaged_file_is_refused_naming_it(tmp_path: Path, content: str) -> None:
    path = tmp_path / "revoked.json"
    path.write_text(content)
    with pytest.raises(CertificateError, match=f"{path}: not a valid revocation list"):
        RevocationList.load(path)


def test_watcher_reloads_when_the_file_changes(dev_pki: DevPki, tmp_path: Path) -> None:
    path = tmp_path / "revoked.json"
    clock = FakeClock()
    watcher = RevocationWatcher(path, clock=clock)
    client_der = der(dev_pki.client("client").cert)
    assert not watcher.current().is_revoked(client_der)

    revoked = RevocationList()
    revoked.add(load_certificate(dev_pki.client("client").cert))
    revoked.save(path)
    clock.t += 0.1  # within the interval: no stat, old list
    assert not watcher.current().is_revoked(client_der)
    clock.t += 0.5
    assert watcher.current().is_revoked(client_der)

    path.unlink()  # a removed file lifts every revocation
    clock.t += 0.5
    assert not watcher.current().is_revoked(client_der)


def test_watcher_does_not_reread_an_unchanged_file(
    dev_pki: DevPki, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    watcher = RevocationWatcher(dev_pki.revocation_list, clock=clock)
    first = watcher.current()
    loads: list[object] = []
    monkeypatch.setattr(RevocationList, "load", classmethod(lambda cls, p: loads.append(p)))
    clock.t += 5
    assert watcher.current() is first
    assert loads == []


def test_watcher_keeps_the_old_list_when_the_file_turns_bad(dev_pki: DevPki) -> None:
    clock = FakeClock()
    watcher = RevocationWatcher(dev_pki.revocation_list, clock=clock)
    mallory = der(dev_pki.client("mallory").cert)
    dev_pki.revocation_list.write_text("{ half written")
    clock.t += 1
    assert watcher.current().is_revoked(mallory)
    assert isinstance(watcher.last_error, CertificateError)


def test_watcher_refuses_a_bad_file_at_start(tmp_path: Path) -> None:
    path = tmp_path / "revoked.json"
    path.write_text("nope")
    with pytest.raises(CertificateError):
        RevocationWatcher(path)


def test_is_revoked_accepts_der_from_the_peer(dev_pki: DevPki) -> None:
    cert = x509.load_pem_x509_certificate(dev_pki.client("mallory").cert.read_bytes())
    assert RevocationList.load(dev_pki.revocation_list).is_revoked(cert.public_bytes(Encoding.DER))
