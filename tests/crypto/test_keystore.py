"""The keystore: round trip, atomic 0600 writes, clear failures, golden v1 file, rollback."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from securechat.crypto.keystore import DEFAULT_ARGON2, Argon2Params, Keystore
from securechat.errors import KeystoreError

from ._support import DATA, load_json

TINY = Argon2Params(iterations=1, lanes=1, memory_cost=8)
GOLDEN_PASSPHRASE = "correct horse battery staple"
GOLDEN_STATE = b"securechat keystore format v1 golden state \x00\x01\x02\xff"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "keystore.bin"
    Keystore.create(path, "pass phrase", b"state one", params=TINY)
    return path


def test_round_trip_and_file_mode(store: Path) -> None:
    keystore, state = Keystore.open(store, "pass phrase")
    assert state == b"state one"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    keystore.save(b"state two")
    assert Keystore.open(store, "pass phrase")[1] == b"state two"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert [p.name for p in store.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_header_records_the_argon2_parameters(store: Path) -> None:
    data = store.read_bytes()
    assert data[:4] == b"SCKS"
    assert data[4:6] == b"\x00\x01"
    params = data[32:44]  # magic 4, version 2, generation 8, kdf 1, salt length 1, salt 16
    assert params == (1).to_bytes(4, "big") * 2 + (8).to_bytes(4, "big")


def test_default_parameters_are_the_expensive_ones() -> None:
    assert DEFAULT_ARGON2.memory_cost >= 64 * 1024
    assert DEFAULT_ARGON2.iterations >= 2


def _unchanged_after_failure(path: Path, passphrase: str, message: str) -> None:
    before = path.read_bytes()
    with pytest.raises(KeystoreError, match=message):
        Keystore.open(path, passphrase)
    assert path.read_bytes() == before


def test_wrong_passphrase(store: Path) -> None:
    _unchanged_after_failure(store, "wrong", "wrong passphrase")


@pytest.mark.parametrize("length", [0, 3, 10, 40, 52, 60])
def test_truncated_file(store: Path, length: int) -> None:
    store.write_bytes(store.read_bytes()[:length])
    _unchanged_after_failure(store, "pass phrase", "truncated|not a securechat keystore")


def test_newer_format_version(store: Path) -> None:
    data = store.read_bytes()
    store.write_bytes(data[:4] + b"\x00\x02" + data[6:])
    _unchanged_after_failure(store, "pass phrase", "newer than this securechat")


@pytest.mark.parametrize("offset", [7, 14, 16, 25, 40, 50, 60])
def test_any_header_change_fails(store: Path, offset: int) -> None:
    data = bytearray(store.read_bytes())
    data[offset] ^= 0x01
    store.write_bytes(bytes(data))
    with pytest.raises(KeystoreError):
        Keystore.open(store, "pass phrase")


def test_absurd_parameters_are_refused_before_deriving(store: Path) -> None:
    data = bytearray(store.read_bytes())
    data[40:44] = (1 << 31).to_bytes(4, "big")  # memory cost 2 TiB
    store.write_bytes(bytes(data))
    _unchanged_after_failure(store, "pass phrase", "out of range")


def test_missing_file_and_existing_file(tmp_path: Path, store: Path) -> None:
    with pytest.raises(KeystoreError, match="no keystore"):
        Keystore.open(tmp_path / "absent", "x")
    with pytest.raises(KeystoreError, match="already exists"):
        Keystore.create(store, "x", b"", params=TINY)


def test_golden_version_1_file_still_loads(tmp_path: Path) -> None:
    copy = tmp_path / "keystore_v1.bin"
    shutil.copyfile(DATA / "keystore_v1.bin", copy)
    keystore, state = Keystore.open(copy, GOLDEN_PASSPHRASE)
    assert state == GOLDEN_STATE
    assert not keystore.rolled_back


def test_rollback_is_detected(store: Path) -> None:
    keystore, _ = Keystore.open(store, "pass phrase")
    old_copy = store.read_bytes()
    keystore.save(b"newer state")
    store.write_bytes(old_copy)
    reopened, state = Keystore.open(store, "pass phrase")
    assert state == b"state one"
    assert reopened.rolled_back
    reopened.save(b"after rollback")
    assert not Keystore.open(store, "pass phrase")[0].rolled_back


def test_change_passphrase(store: Path) -> None:
    keystore, state = Keystore.open(store, "pass phrase")
    keystore.change_passphrase("new phrase", state, params=TINY)
    with pytest.raises(KeystoreError):
        Keystore.open(store, "pass phrase")
    assert Keystore.open(store, "new phrase")[1] == state


def test_vectors_file_is_present() -> None:
    assert load_json("libsignal_fingerprint.json")["iterations"] == 5200
