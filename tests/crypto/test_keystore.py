"""The keystore: round trip, atomic 0600 writes, clear failures, golden v1 file, rollback."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from securechat.crypto.account_password import LoginParameters, PasswordKeys, derive_password_keys
from securechat.crypto.keystore import (
    DEFAULT_ARGON2,
    Argon2Params,
    Keystore,
    _parse,
    migrate_keystore,
)
from securechat.crypto.labels import hkdf, sha256
from securechat.errors import KeystoreError

from ._support import DATA, load_json

TINY = Argon2Params(iterations=1, lanes=1, memory_cost=8)
GOLDEN_PASSPHRASE = "correct horse battery staple"
GOLDEN_STATE = b"securechat keystore format v1 golden state \x00\x01\x02\xff"
GOLDEN_V2_PASSWORD = "correct horse battery staple, format 2"
GOLDEN_V2_STATE = b"securechat keystore format v2 golden state \x00\x01\x02\xff"
GOLDEN_V2_LOGIN = LoginParameters(bytes(range(16)), TINY)


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
    assert data[4:6] == b"\x00\x02"  # format version 2
    assert data[14] == 2  # kdf 2: Argon2id, then the keystore key of the password split
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
    store.write_bytes(data[:4] + b"\x00\x03" + data[6:])
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


def test_golden_version_2_file_still_loads(tmp_path: Path) -> None:
    copy = tmp_path / "keystore_v2.bin"
    shutil.copyfile(DATA / "keystore_v2.bin", copy)
    keystore, state = Keystore.open(copy, GOLDEN_V2_PASSWORD)
    assert state == GOLDEN_V2_STATE
    assert keystore.format_version == 2
    assert not keystore.needs_migration
    assert keystore.login == GOLDEN_V2_LOGIN
    keys = derive_password_keys(GOLDEN_V2_PASSWORD, GOLDEN_V2_LOGIN)
    assert Keystore.open_with_keys(copy, keys)[1] == GOLDEN_V2_STATE


def test_version_1_keeps_its_format_until_migrated(tmp_path: Path) -> None:
    copy = tmp_path / "keystore_v1.bin"
    shutil.copyfile(DATA / "keystore_v1.bin", copy)
    keystore, state = Keystore.open(copy, GOLDEN_PASSPHRASE)
    assert keystore.needs_migration
    keystore.save(state + b" more")
    assert copy.read_bytes()[4:6] == b"\x00\x01"
    assert Keystore.open(copy, GOLDEN_PASSPHRASE)[1] == state + b" more"


def test_version_1_migrates_to_version_2_under_the_password_keys(tmp_path: Path) -> None:
    copy = tmp_path / "keystore_v1.bin"
    shutil.copyfile(DATA / "keystore_v1.bin", copy)
    login = LoginParameters(bytes(16), TINY)  # the account salt the server now stores
    keys = derive_password_keys(GOLDEN_PASSPHRASE, login)
    keystore, state = migrate_keystore(copy, GOLDEN_PASSPHRASE, keys)
    assert state == GOLDEN_STATE
    assert copy.read_bytes()[4:6] == b"\x00\x02"
    reopened, again = Keystore.open_with_keys(copy, keys)
    assert again == GOLDEN_STATE
    assert not reopened.rolled_back
    assert reopened.generation == keystore.generation
    assert Keystore.open(copy, GOLDEN_PASSPHRASE)[1] == GOLDEN_STATE  # offline: from the header


def test_nothing_the_server_receives_or_stores_opens_the_keystore(tmp_path: Path) -> None:
    """The server knows the salt, the parameters, the authenticator and its bcrypt hash."""
    import bcrypt

    path = tmp_path / "keystore.bin"
    login = LoginParameters(bytes(range(16)), TINY)
    keys = derive_password_keys("the account password", login)
    Keystore.create_with_keys(path, keys, b"secret state")
    sent = keys.authenticator_text()
    stored = bcrypt.hashpw(sent.encode("ascii"), bcrypt.gensalt(rounds=4))
    assert bcrypt.checkpw(sent.encode("ascii"), stored)  # what the server checks at login
    for guess in (sent, stored.decode("ascii"), keys.authenticator.hex()):
        with pytest.raises(KeystoreError):
            Keystore.open(path, guess)
    candidate_keys = [
        keys.authenticator,
        sha256(keys.authenticator),
        sha256(stored),
        hkdf(keys.authenticator, None, b"securechat/v1/password-keystore-key", 32),
        stored[-32:],
    ]
    for candidate in candidate_keys:
        forged = PasswordKeys(login.salt, login.params, keys.authenticator, candidate)
        with pytest.raises(KeystoreError, match="wrong passphrase"):
            Keystore.open_with_keys(path, forged)
    assert Keystore.open(path, "the account password")[1] == b"secret state"


def test_open_with_keys_refuses_other_parameters(tmp_path: Path) -> None:
    path = tmp_path / "keystore.bin"
    keys = derive_password_keys("pw", LoginParameters(bytes(16), TINY))
    Keystore.create_with_keys(path, keys, b"state")
    other = derive_password_keys("pw", LoginParameters(b"\x01" * 16, TINY))
    with pytest.raises(KeystoreError, match="other password parameters"):
        Keystore.open_with_keys(path, other)


def _cheap(data: bytes) -> bool:
    """Whether opening costs little: a flipped bit may ask for gigabytes of Argon2id memory,
    which the header's AD binding refuses just the same, only slowly."""
    try:
        header, _ = _parse(data)
        header.params.check()
    except KeystoreError:
        return True
    return header.params.memory_cost * header.params.iterations <= 64 * 1024


def test_every_flipped_bit_of_a_version_2_file_fails(tmp_path: Path) -> None:
    path = tmp_path / "keystore.bin"
    keys = derive_password_keys("pw", LoginParameters(bytes(16), TINY))
    Keystore.create_with_keys(path, keys, b"state")
    original = path.read_bytes()
    tried = 0
    for bit in range(len(original) * 8):
        flipped = bytearray(original)
        flipped[bit // 8] ^= 1 << (bit % 8)
        if not _cheap(bytes(flipped)):
            continue
        path.write_bytes(bytes(flipped))
        with pytest.raises(KeystoreError):
            Keystore.open(path, "pw")
        tried += 1
    assert tried > len(original) * 8 - 40


def test_a_missing_sidecar_is_a_rollback_unless_the_keystore_is_new(store: Path) -> None:
    sidecar = store.with_name(store.name + ".generation")
    sidecar.unlink()
    fresh, _ = Keystore.open(store, "pass phrase")
    assert fresh.generation == 1
    assert not fresh.rolled_back  # brand new: a crash may have lost the sidecar
    fresh.save(b"state two")
    sidecar.unlink()
    assert Keystore.open(store, "pass phrase")[0].rolled_back


def test_an_unreadable_sidecar_is_a_rollback(store: Path) -> None:
    keystore, _ = Keystore.open(store, "pass phrase")
    keystore.save(b"state two")
    store.with_name(store.name + ".generation").write_bytes(b"\xff not a number")
    assert Keystore.open(store, "pass phrase")[0].rolled_back


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
