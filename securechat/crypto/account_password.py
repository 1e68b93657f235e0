"""The account password split: one Argon2id run, two independent keys, the server gets one.

::

    master        = Argon2id(password UTF-8, salt, iterations, lanes, memory KiB, length 32)
    authenticator = HKDF-SHA256(master, salt = none, info = PASSWORD_AUTHENTICATOR, L = 32)
    keystore_key  = HKDF-SHA256(master, salt = none, info = PASSWORD_KEYSTORE_KEY, L = 32)

The salt (16 random bytes, made by the client at registration) and the Argon2id parameters are
per account: the server stores them and returns them before login, so any device derives the
same authenticator; for an unknown user it returns :func:`fake_login_salt` (an HMAC of the name
under a server secret: stable, so a probe cannot tell unknown users from real ones). The client
sends :meth:`PasswordKeys.authenticator_text` (base64 of the 32 bytes: 44 ASCII characters, under
bcrypt's 72-byte limit) where it used to send the password, and the server bcrypt-checks that.
The keystore key never leaves the device. HKDF with distinct labels makes the two keys
independent: knowing the authenticator (or its bcrypt hash, or the salt) does not help derive
the keystore key; only guessing the password, at one Argon2id run per guess, does.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from securechat.crypto import labels
from securechat.crypto.encoding import Writer
from securechat.errors import InvalidArgument, KeystoreError

LOGIN_SALT_SIZE = 16
KEY_SIZE = 32
MAX_MEMORY_KIB = 4 * 1024 * 1024
MAX_ITERATIONS = 64
MAX_LANES = 64


@dataclass(frozen=True)
class Argon2Params:
    """Argon2id cost parameters; the defaults take about 0.5–1.5 s on a laptop."""

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


def argon2id(secret: str, salt: bytes, params: Argon2Params) -> bytes:
    """Argon2id of ``secret`` (UTF-8) into 32 bytes; refuses absurd parameters first."""
    params.check()
    try:
        kdf = Argon2id(
            salt=salt,
            length=KEY_SIZE,
            iterations=params.iterations,
            lanes=params.lanes,
            memory_cost=params.memory_cost,
        )
        return kdf.derive(secret.encode("utf-8"))
    except ValueError as exc:
        raise KeystoreError("keystore Argon2id parameters are invalid") from exc


@dataclass(frozen=True)
class LoginParameters:
    """What the server returns before login: the account's salt and Argon2id parameters."""

    salt: bytes
    params: Argon2Params

    def check(self) -> None:
        if len(self.salt) != LOGIN_SALT_SIZE:
            raise InvalidArgument(f"a login salt is {LOGIN_SALT_SIZE} bytes")
        self.params.check()


@dataclass(frozen=True)
class PasswordKeys:
    """The two keys derived from the account password (and what they were derived with)."""

    salt: bytes
    params: Argon2Params
    authenticator: bytes
    keystore_key: bytes

    def authenticator_text(self) -> str:
        """What the client sends in place of the password: base64 (44 ASCII characters)."""
        return base64.b64encode(self.authenticator).decode("ascii")

    def __repr__(self) -> str:
        return f"PasswordKeys(params={self.params!r}, <secret>)"


def derive_password_keys(password: str, login: LoginParameters) -> PasswordKeys:
    """Run Argon2id once and split the result (KeystoreError on absurd parameters)."""
    login.check()
    master = argon2id(password, login.salt, login.params)
    return PasswordKeys(
        login.salt,
        login.params,
        labels.hkdf(master, None, labels.PASSWORD_AUTHENTICATOR, KEY_SIZE),
        labels.hkdf(master, None, labels.PASSWORD_KEYSTORE_KEY, KEY_SIZE),
    )


def new_login_parameters(params: Argon2Params = DEFAULT_ARGON2) -> LoginParameters:
    """A fresh random salt for a new account (the client makes it at registration)."""
    return LoginParameters(os.urandom(LOGIN_SALT_SIZE), params)


def fake_login_salt(server_secret: bytes, user: str) -> bytes:
    """The stable salt a server returns for an unknown ``user`` (no user enumeration).

    ``HMAC-SHA256(server_secret, Writer(FAKE_LOGIN_SALT) | text user)[:16]``.
    """
    if len(server_secret) < KEY_SIZE:
        raise InvalidArgument(f"the fake-salt secret must be at least {KEY_SIZE} bytes")
    message = Writer(labels.FAKE_LOGIN_SALT).text(user).to_bytes()
    return labels.hmac_sha256(server_secret, message)[:LOGIN_SALT_SIZE]
