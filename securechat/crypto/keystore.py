"""The local keystore: account state encrypted under a password-derived key, written atomically.

File format (integers big-endian)::

    magic "SCKS" | u16 format version | u64 generation
    | u8 kdf | u8 salt length | salt | u32 iterations | u32 lanes | u32 memory KiB
    | nonce (12) | AES-256-GCM-SIV ciphertext of the state

* Version 2 (kdf 2, written by this code): the key is the *keystore key* of the account
  password split (:mod:`securechat.crypto.account_password`): Argon2id over the password with
  the header's salt and parameters, then HKDF with the ``PASSWORD_KEYSTORE_KEY`` label. The
  salt is the account's login salt, so one Argon2id run at login yields both the authenticator
  the server checks and this key; the header records salt and parameters so the keystore opens
  offline too. Nothing the server receives or stores opens it without guessing the password.
* Version 1 (kdf 1, read and migrated): the key was Argon2id(passphrase) directly, and the
  passphrase was the login password the server received. :meth:`Keystore.open` still opens it,
  keeps saving it as version 1, and :meth:`Keystore.rekey` / :func:`migrate_keystore` rewrite it
  as version 2 under the account's password keys.

The associated data is ``KEYSTORE_FILE || header``, so no header field can be changed without
the open failing. Every save writes a temporary file in the same directory with mode 0600,
fsyncs it, renames it over the old file and fsyncs the directory.

Rollback: each save increments ``generation`` and records it in a sidecar file
``<name>.generation``. The keystore is *rolled back* if it is older than the sidecar, or if the
sidecar is missing or unreadable for a keystore that is not brand new (generation above 1: a
new keystore is created at generation 1 and could lose its sidecar only in a crash). Then
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

from securechat.atomicfile import write_atomically
from securechat.crypto import labels
from securechat.crypto.account_password import (
    DEFAULT_ARGON2 as DEFAULT_ARGON2,
)
from securechat.crypto.account_password import (
    LOGIN_SALT_SIZE,
    LoginParameters,
    PasswordKeys,
    argon2id,
    derive_password_keys,
)
from securechat.crypto.account_password import (
    Argon2Params as Argon2Params,
)
from securechat.crypto.encoding import Reader, Writer
from securechat.errors import InvalidArgument, KeystoreError

MAGIC = b"SCKS"
FORMAT_VERSION = 2
LEGACY_FORMAT_VERSION = 1
KDF_FOR_VERSION = {1: 1, 2: 2}  # 1 = Argon2id(passphrase); 2 = Argon2id + HKDF keystore key
SALT_SIZE = LOGIN_SALT_SIZE
NONCE_SIZE = 12
BRAND_NEW_GENERATION = 1


def derive_key(passphrase: str, salt: bytes, params: Argon2Params) -> bytes:
    """The version-1 key: Argon2id of the passphrase (kept to open and migrate old files)."""
    return argon2id(passphrase, salt, params)


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
            .u8(KDF_FOR_VERSION[self.version])
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
        if version not in KDF_FOR_VERSION:
            raise KeystoreError(f"unknown keystore format version {version}")
        generation = reader.u64()
        if reader.u8() != KDF_FOR_VERSION[version]:
            raise KeystoreError("unknown keystore key-derivation function")
        salt = reader.fixed(reader.u8())
        if version == FORMAT_VERSION and len(salt) != SALT_SIZE:
            raise KeystoreError("the keystore file is truncated or damaged")
        params = Argon2Params(reader.u32(), reader.u32(), reader.u32())
        header = _Header(version, generation, salt, params, reader.fixed(NONCE_SIZE))
    except InvalidArgument as exc:
        raise KeystoreError("the keystore file is truncated or damaged") from exc
    ciphertext = reader.rest()
    if len(ciphertext) < 16:
        raise KeystoreError("the keystore file is truncated or damaged")
    return header, ciphertext


def _read(path: Path) -> tuple[_Header, bytes]:
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise KeystoreError(f"no keystore at {path}: create an account first") from exc
    except OSError as exc:
        raise KeystoreError(f"cannot read the keystore {path}: {exc.strerror}") from exc
    return _parse(data)


def _associated_data(header: _Header) -> bytes:
    return labels.KEYSTORE_FILE + header.to_bytes()


class Keystore:
    """An open keystore: keeps the derived key so saves do not pay for Argon2id again."""

    def __init__(
        self,
        path: Path,
        key: bytes,
        salt: bytes,
        params: Argon2Params,
        generation: int,
        version: int = FORMAT_VERSION,
    ) -> None:
        self.path = path
        self._key = key
        self._salt = salt
        self._params = params
        self.generation = generation
        self.format_version = version
        self.rolled_back = False
        # The login authenticator derived with the keystore key (format 2 only): what logs this
        # device in again without the password; kept in memory only, never written.
        self.authenticator: bytes | None = None

    @property
    def sidecar(self) -> Path:
        return self.path.with_name(self.path.name + ".generation")

    @property
    def needs_migration(self) -> bool:
        """A version-1 file: its key came from the password the server received."""
        return self.format_version < FORMAT_VERSION

    @property
    def login(self) -> LoginParameters:
        """The salt and Argon2id parameters the header records."""
        return LoginParameters(self._salt, self._params)

    @classmethod
    def create(
        cls,
        path: Path,
        passphrase: str,
        state: bytes,
        *,
        params: Argon2Params = DEFAULT_ARGON2,
    ) -> Keystore:
        """Create a version-2 keystore under a fresh salt; refuses to overwrite a file."""
        keys = derive_password_keys(passphrase, LoginParameters(os.urandom(SALT_SIZE), params))
        return cls.create_with_keys(path, keys, state)

    @classmethod
    def create_with_keys(cls, path: Path, keys: PasswordKeys, state: bytes) -> Keystore:
        """Create a version-2 keystore under the account's password keys (one Argon2id run)."""
        if path.exists():
            raise KeystoreError(f"{path} already exists: open it, or move it away first")
        keystore = cls(path, keys.keystore_key, keys.salt, keys.params, 0)
        keystore.authenticator = keys.authenticator
        keystore.save(state)
        return keystore

    @classmethod
    def open(cls, path: Path, passphrase: str) -> tuple[Keystore, bytes]:
        """Decrypt the keystore at ``path``: ``(keystore, state)``; never modifies the file."""
        header, ciphertext = _read(path)
        if header.version == LEGACY_FORMAT_VERSION:
            return cls._decrypt(
                path, header, ciphertext, derive_key(passphrase, header.salt, header.params)
            )
        keys = derive_password_keys(passphrase, LoginParameters(header.salt, header.params))
        keystore, state = cls._decrypt(path, header, ciphertext, keys.keystore_key)
        keystore.authenticator = keys.authenticator
        return keystore, state

    @classmethod
    def open_with_keys(cls, path: Path, keys: PasswordKeys) -> tuple[Keystore, bytes]:
        """Decrypt a version-2 keystore with keys already derived at login (no Argon2id)."""
        header, ciphertext = _read(path)
        if header.version != FORMAT_VERSION or (header.salt, header.params) != (
            keys.salt,
            keys.params,
        ):
            raise KeystoreError(
                "the keystore was sealed with other password parameters: open it with the password"
            )
        keystore, state = cls._decrypt(path, header, ciphertext, keys.keystore_key)
        keystore.authenticator = keys.authenticator
        return keystore, state

    @classmethod
    def _decrypt(
        cls, path: Path, header: _Header, ciphertext: bytes, key: bytes
    ) -> tuple[Keystore, bytes]:
        try:
            state = AESGCMSIV(key).decrypt(header.nonce, ciphertext, _associated_data(header))
        except InvalidTag as exc:
            raise KeystoreError(
                "wrong passphrase, or the keystore file is damaged: try the passphrase again"
            ) from exc
        keystore = cls(path, key, header.salt, header.params, header.generation, header.version)
        recorded = keystore._recorded_generation()
        if recorded is None:
            keystore.rolled_back = header.generation > BRAND_NEW_GENERATION
        else:
            keystore.rolled_back = header.generation < recorded
        return keystore, state

    def _recorded_generation(self) -> int | None:
        """The sidecar's generation, or None if it is missing or unreadable."""
        try:
            return int(self.sidecar.read_text(encoding="ascii").strip())
        except (FileNotFoundError, ValueError, UnicodeDecodeError):
            return None

    def save(self, state: bytes) -> None:
        """Encrypt ``state`` under a fresh nonce and replace the file atomically."""
        generation = max(self.generation, self._recorded_generation() or 0) + 1
        header = _Header(
            self.format_version, generation, self._salt, self._params, os.urandom(NONCE_SIZE)
        )
        ciphertext = AESGCMSIV(self._key).encrypt(header.nonce, state, _associated_data(header))
        write_atomically(self.path, header.to_bytes() + ciphertext)
        write_atomically(self.sidecar, f"{generation}\n".encode("ascii"))
        self.generation = generation

    def rekey(self, keys: PasswordKeys, state: bytes) -> None:
        """Rewrite as version 2 under ``keys`` (migration from v1, or a password change)."""
        self._key, self._salt, self._params = keys.keystore_key, keys.salt, keys.params
        self.authenticator = keys.authenticator
        self.format_version = FORMAT_VERSION
        self.save(state)

    def change_passphrase(
        self, passphrase: str, state: bytes, *, params: Argon2Params | None = None
    ) -> None:
        """Rewrite as version 2 under a new passphrase and a fresh salt."""
        login = LoginParameters(os.urandom(SALT_SIZE), params or self._params)
        self.rekey(derive_password_keys(passphrase, login), state)


def migrate_keystore(path: Path, passphrase: str, keys: PasswordKeys) -> tuple[Keystore, bytes]:
    """Open a keystore with its old passphrase and rewrite it as version 2 under ``keys``.

    The client calls this at the first login after the upgrade, with the password keys derived
    from the account's login salt; the state, its generation and the sidecar carry over.
    """
    keystore, state = Keystore.open(path, passphrase)
    keystore.rekey(keys, state)
    return keystore, state
