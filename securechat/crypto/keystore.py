"""The local keystore: account state encrypted under a passphrase, written atomically.

File format version 1 (integers big-endian)::

    magic "SCKS" | u16 format version | u64 generation
    | u8 kdf (1 = Argon2id) | u8 salt length | salt | u32 iterations | u32 lanes | u32 memory KiB
    | nonce (12) | AES-256-GCM-SIV ciphertext of the state

The key is Argon2id(passphrase, salt, parameters from the header); the header (with the
``KEYSTORE_FILE`` label in front) is the associated data, so no header field can be changed
without the open failing. Every save writes a temporary file in the same directory with mode
0600, fsyncs it, renames it over the old file and fsyncs the directory.

Rollback: each save increments ``generation`` and records it in a sidecar file
``<name>.generation``. If the keystore opened is older than the sidecar says,
:attr:`Keystore.rolled_back` is true and the caller must archive every session
(:meth:`CryptoAccount.archive_sessions`) so that no ratchet state is reused. A restore of both
files together is not detected (see docs/threat-model.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from securechat.atomicfile import write_atomically
from securechat.crypto import labels
from securechat.crypto.encoding import Reader, Writer
from securechat.errors import InvalidArgument, KeystoreError

MAGIC = b"SCKS"
FORMAT_VERSION = 1
KDF_ARGON2ID = 1
SALT_SIZE = 16
NONCE_SIZE = 12
MAX_MEMORY_KIB = 4 * 1024 * 1024
MAX_ITERATIONS = 64
MAX_LANES = 64


@dataclass(frozen=True)
class Argon2Params:
    """Argon2id cost parameters; the defaults take about 0.5–1 s on a laptop."""

    iterations: int = 3
    lanes: int = 4
    memory_cost: int = 256 * 1024  # KiB

    def check(self) -> None:
        if not (
            1 <= self.iterations <= MAX_ITERATIONS
            and 1 <= self.lanes <= MAX_LANES
            and 8 * self.lanes <= self.memory_cost <= MAX_MEMORY_KIB
        ):
            raise KeystoreError("keystore Argon2id parameters are out of range")


DEFAULT_ARGON2 = Argon2Params()


def derive_key(passphrase: str, salt: bytes, params: Argon2Params) -> bytes:
    params.check()
    try:
        kdf = Argon2id(
            salt=salt,
            length=32,
            iterations=params.iterations,
            lanes=params.lanes,
            memory_cost=params.memory_cost,
        )
        return kdf.derive(passphrase.encode("utf-8"))
    except ValueError as exc:
        raise KeystoreError("keystore Argon2id parameters are invalid") from exc


@dataclass(frozen=True)
class _Header:
    version: int
    generation: int
    salt: bytes
    params: Argon2Params
    nonce: bytes

    def to_bytes(self) -> bytes:
        return (
            Writer()
            .raw(MAGIC)
            .u16(self.version)
            .u64(self.generation)
            .u8(KDF_ARGON2ID)
            .u8(len(self.salt))
            .raw(self.salt)
            .u32(self.params.iterations)
            .u32(self.params.lanes)
            .u32(self.params.memory_cost)
            .fixed(self.nonce, NONCE_SIZE)
            .to_bytes()
        )


def _parse(data: bytes) -> tuple[_Header, bytes]:
    reader = Reader(data)
    try:
        if reader.fixed(4) != MAGIC:
            raise KeystoreError("this file is not a securechat keystore")
        version = reader.u16()
        if version > FORMAT_VERSION:
            raise KeystoreError(
                f"keystore format version {version} is newer than this securechat "
                f"understands ({FORMAT_VERSION}): upgrade securechat"
            )
        if version != 1:
            raise KeystoreError(f"unknown keystore format version {version}")
        generation = reader.u64()
        if reader.u8() != KDF_ARGON2ID:
            raise KeystoreError("unknown keystore key-derivation function")
        salt = reader.fixed(reader.u8())
        params = Argon2Params(reader.u32(), reader.u32(), reader.u32())
        header = _Header(version, generation, salt, params, reader.fixed(NONCE_SIZE))
    except InvalidArgument as exc:
        raise KeystoreError("the keystore file is truncated or damaged") from exc
    ciphertext = reader.rest()
    if len(ciphertext) < 16:
        raise KeystoreError("the keystore file is truncated or damaged")
    return header, ciphertext


def _associated_data(header: _Header) -> bytes:
    return labels.KEYSTORE_FILE + header.to_bytes()


class Keystore:
    """An open keystore: keeps the derived key so saves do not pay for Argon2id again."""

    def __init__(
        self, path: Path, key: bytes, salt: bytes, params: Argon2Params, generation: int
    ) -> None:
        self.path = path
        self._key = key
        self._salt = salt
        self._params = params
        self.generation = generation
        self.rolled_back = False

    @property
    def sidecar(self) -> Path:
        return self.path.with_name(self.path.name + ".generation")

    @classmethod
    def create(
        cls,
        path: Path,
        passphrase: str,
        state: bytes,
        *,
        params: Argon2Params = DEFAULT_ARGON2,
    ) -> Keystore:
        """Create a new keystore; refuses to overwrite an existing file."""
        if path.exists():
            raise KeystoreError(f"{path} already exists: open it, or move it away first")
        salt = os.urandom(SALT_SIZE)
        keystore = cls(path, derive_key(passphrase, salt, params), salt, params, 0)
        keystore.save(state)
        return keystore

    @classmethod
    def open(cls, path: Path, passphrase: str) -> tuple[Keystore, bytes]:
        """Decrypt the keystore at ``path``: ``(keystore, state)``; never modifies the file."""
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise KeystoreError(f"no keystore at {path}: create an account first") from exc
        except OSError as exc:
            raise KeystoreError(f"cannot read the keystore {path}: {exc.strerror}") from exc
        header, ciphertext = _parse(data)
        key = derive_key(passphrase, header.salt, header.params)
        try:
            state = AESGCMSIV(key).decrypt(header.nonce, ciphertext, _associated_data(header))
        except InvalidTag as exc:
            raise KeystoreError(
                "wrong passphrase, or the keystore file is damaged: try the passphrase again"
            ) from exc
        keystore = cls(path, key, header.salt, header.params, header.generation)
        keystore.rolled_back = header.generation < keystore._recorded_generation()
        return keystore, state

    def _recorded_generation(self) -> int:
        try:
            return int(self.sidecar.read_text(encoding="ascii").strip())
        except (FileNotFoundError, ValueError):
            return 0

    def save(self, state: bytes) -> None:
        """Encrypt ``state`` under a fresh nonce and replace the file atomically."""
        generation = max(self.generation, self._recorded_generation()) + 1
        header = _Header(
            FORMAT_VERSION, generation, self._salt, self._params, os.urandom(NONCE_SIZE)
        )
        ciphertext = AESGCMSIV(self._key).encrypt(header.nonce, state, _associated_data(header))
        write_atomically(self.path, header.to_bytes() + ciphertext)
        write_atomically(self.sidecar, f"{generation}\n".encode("ascii"))
        self.generation = generation

    def change_passphrase(
        self, passphrase: str, state: bytes, *, params: Argon2Params | None = None
    ) -> None:
        self._params = params or self._params
        self._salt = os.urandom(SALT_SIZE)
        self._key = derive_key(passphrase, self._salt, self._params)
        self.save(state)
