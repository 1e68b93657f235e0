"""Login parameters: what a client needs before logging in, and upgrading legacy accounts.

A client derives its login secret from the password (crypto/account_password.py): Argon2id with
the account's salt and costs, then HKDF, gives the *authenticator* it sends and, independently,
the key of its keystore. The server stores the salt and costs with the account and serves them
before login; an unknown user gets a stable fake salt (an HMAC of the name under a server
secret) and the default costs, so the answer does not tell whether the account exists. Accounts
made without a salt are *legacy password accounts* (their secret is the password itself) until
a logged-in client upgrades them.
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass

from securechat.crypto.account_password import (
    DEFAULT_ARGON2,
    KEY_SIZE,
    LOGIN_SALT_SIZE,
    Argon2Params,
    fake_login_salt,
)
from securechat.domain import names
from securechat.domain.model import LoginRecord, Session
from securechat.errors import FailedPrecondition, InvalidArgument, KeystoreError
from securechat.services.passwords import HashTicket, PasswordHasher
from securechat.storage.port import Store

log = logging.getLogger("securechat.accounts")

AUTHENTICATOR_CHARS = 44
MAX_USERNAME_CHARS = 64  # as Login: longer names are malformed, not unknown


@dataclass(frozen=True, slots=True)
class LoginAnswer:
    """What GetLoginParameters returns."""

    login: LoginRecord
    legacy_password: bool


def default_record(salt: bytes, params: Argon2Params = DEFAULT_ARGON2) -> LoginRecord:
    return LoginRecord(salt, params.iterations, params.lanes, params.memory_cost)


def check_login_record(login: LoginRecord) -> None:
    """A client's salt and costs must be what the password split accepts (InvalidArgument)."""
    if len(login.salt) != LOGIN_SALT_SIZE:
        raise InvalidArgument(f"the login salt must be {LOGIN_SALT_SIZE} bytes")
    try:
        Argon2Params(login.iterations, login.lanes, login.memory_kib).check()
    except KeystoreError as exc:
        raise InvalidArgument(
            "the Argon2id parameters are out of range (1-64 iterations, 1-64 lanes, "
            "8 x lanes KiB to 4 GiB of memory)"
        ) from exc


def check_authenticator(text: str) -> bytes:
    """The authenticator text as the bytes bcrypt hashes (InvalidArgument if malformed)."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raw = b""
    if len(text) != AUTHENTICATOR_CHARS or len(raw) != KEY_SIZE:
        raise InvalidArgument(
            "with a login salt, the password field must be the 44-character authenticator "
            "(base64 of 32 bytes): `securechat auth-key USER` prints it"
        )
    return text.encode("ascii")


def check_new_secret(password: str, login: LoginRecord | None) -> bytes:
    """What a new account's bcrypt hash is made of: a legacy password or an authenticator."""
    if login is None:
        return names.check_password(password)
    check_login_record(login)
    return check_authenticator(password)


class Logins:
    """Serves login parameters and upgrades legacy password accounts."""

    def __init__(self, store: Store, hasher: PasswordHasher, fake_salt_secret: bytes) -> None:
        self.store = store
        self.hasher = hasher
        self.fake_salt_secret = fake_salt_secret
        fake_login_salt(fake_salt_secret, "probe")  # refuses a short secret at start

    async def parameters(self, username: str) -> LoginAnswer:
        """The account's salt and costs; a stable fake answer for an unknown user."""
        if not username or len(username) > MAX_USERNAME_CHARS:
            raise InvalidArgument("a username is required")
        user = await self.store.get_user(username)
        if user is not None and user.login is not None:
            return LoginAnswer(user.login, legacy_password=False)
        fake = default_record(fake_login_salt(self.fake_salt_secret, username))
        return LoginAnswer(fake, legacy_password=user is not None)

    async def upgrade(
        self, session: Session, authenticator: str, login: LoginRecord, source: str = "system"
    ) -> None:
        """From now on the caller's account logs in with ``authenticator`` (legacy only); the
        hash waits in the fair queue as the account's and ``source``'s."""
        check_login_record(login)
        secret = check_authenticator(authenticator)
        user = await self.store.get_user(session.user)
        if user is None or user.login is not None:
            raise FailedPrecondition(
                "this account already logs in with an authenticator: nothing to upgrade"
            )
        hashed = await self.hasher.hash(secret, HashTicket(session.user, source))
        if not await self.store.set_login(session.user, hashed, login):
            raise FailedPrecondition(
                "this account already logs in with an authenticator: nothing to upgrade"
            )
        log.info("login upgraded user=%s", session.user)
