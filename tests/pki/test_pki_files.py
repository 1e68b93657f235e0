"""Key files are 0600 from birth, certificates 0644, and nothing is overwritten unasked."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from securechat.errors import AlreadyExists
from securechat.pki import DevPki, init_pki, issue_client, make_dev_pki
from securechat.pki.keys import KEY_MODE, write_file


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("permissive_umask")
def test_keys_are_0600_certs_0644_and_new_dirs_0700(tmp_path: Path, now: datetime) -> None:
    directory = tmp_path / "fresh" / "certs"
    init_pki(directory, now=now)
    issue_client("bob", directory=directory, out_dir=tmp_path / "bob", now=now)
    for key in [directory / "ca.key", directory / "server.key", tmp_path / "bob" / "bob.key"]:
        assert mode(key) == 0o600, key
    for cert in [directory / "ca.crt", directory / "server.crt", tmp_path / "bob" / "bob.crt"]:
        assert mode(cert) == 0o644, cert
    assert mode(directory) == 0o700
    assert mode(tmp_path / "bob") == 0o700


def test_keys_are_unencrypted_pkcs8_pem(dev_pki: DevPki) -> None:
    assert dev_pki.server_key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")


def test_key_file_is_created_0600_not_chmodded_afterwards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[tuple[int, int]] = []
    real_open = os.open

    def spy(path: str | os.PathLike[str], flags: int, mode: int = 0o777) -> int:
        opened.append((flags, mode))
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", spy)
    write_file(tmp_path / "k.key", b"secret", mode=KEY_MODE)
    flags, created_mode = opened[0]
    assert flags & os.O_CREAT
    assert flags & os.O_EXCL
    assert created_mode == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["k.key"]  # no temp file left behind


def test_init_refuses_to_overwrite_and_changes_nothing(dev_pki: DevPki, now: datetime) -> None:
    before = {p: p.read_bytes() for p in dev_pki.directory.iterdir()}
    with pytest.raises(AlreadyExists, match=r"ca\.crt already exists: pass --force"):
        init_pki(dev_pki.directory, now=now)
    assert {p: p.read_bytes() for p in dev_pki.directory.iterdir()} == before


def test_init_with_force_replaces_the_ca(dev_pki: DevPki, now: datetime) -> None:
    old = dev_pki.ca_cert.read_bytes()
    init_pki(dev_pki.directory, now=now, force=True)
    assert dev_pki.ca_cert.read_bytes() != old
    assert mode(dev_pki.ca_key) == 0o600


def test_issue_refuses_to_overwrite_a_client(dev_pki: DevPki, now: datetime) -> None:
    with pytest.raises(AlreadyExists, match=r"client\.crt"):
        issue_client("client", directory=dev_pki.directory, now=now)
    issue_client("client", directory=dev_pki.directory, now=now, force=True)


def test_write_file_refuses_existing_file_even_without_precheck(tmp_path: Path) -> None:
    target = tmp_path / "x.crt"
    target.write_bytes(b"original")
    with pytest.raises(AlreadyExists, match=str(target)):
        write_file(target, b"new", mode=0o644)
    assert target.read_bytes() == b"original"
    assert [p.name for p in tmp_path.iterdir()] == ["x.crt"]


def test_dev_pki_paths_exist(tmp_path: Path, now: datetime) -> None:
    pki = make_dev_pki(tmp_path, now=now)
    assert pki.ca_cert.is_file()
    assert pki.server_key.is_file()
    assert set(pki.clients) == {"client"}
    assert pki.client("client").key.is_file()
    assert pki.foreign_ca_cert is None
    assert not pki.revocation_list.exists()
