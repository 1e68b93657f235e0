"""The account password split: two independent keys, only one of which the server sees."""

from __future__ import annotations

import base64

import pytest

from securechat.crypto.account_password import (
    LoginParameters,
    derive_password_keys,
    fake_login_salt,
    new_login_parameters,
)
from securechat.crypto.keystore import Argon2Params
from securechat.errors import InvalidArgument, KeystoreError

TINY = Argon2Params(iterations=1, lanes=1, memory_cost=8)
LOGIN = LoginParameters(bytes(range(16)), TINY)


def test_the_two_keys_are_distinct_and_deterministic() -> None:
    keys = derive_password_keys("correct horse", LOGIN)
    assert keys == derive_password_keys("correct horse", LOGIN)
    assert len(keys.authenticator) == len(keys.keystore_key) == 32
    assert keys.authenticator != keys.keystore_key
    assert derive_password_keys("correct horsf", LOGIN).authenticator != keys.authenticator
    other_salt = LoginParameters(bytes(16), TINY)
    assert derive_password_keys("correct horse", other_salt).keystore_key != keys.keystore_key


def test_the_authenticator_fits_bcrypt() -> None:
    text = derive_password_keys("pw", LOGIN).authenticator_text()
    assert len(text.encode("ascii")) == 44 <= 72
    assert base64.b64decode(text) == derive_password_keys("pw", LOGIN).authenticator


def test_keys_are_not_in_the_repr() -> None:
    keys = derive_password_keys("pw", LOGIN)
    assert keys.keystore_key.hex() not in repr(keys)
    assert keys.authenticator.hex() not in repr(keys)


@pytest.mark.parametrize("salt", [b"", bytes(15), bytes(17)])
def test_bad_salts_are_refused(salt: bytes) -> None:
    with pytest.raises(InvalidArgument):
        derive_password_keys("pw", LoginParameters(salt, TINY))


def test_absurd_parameters_are_refused_before_deriving() -> None:
    with pytest.raises(KeystoreError, match="out of range"):
        derive_password_keys("pw", LoginParameters(bytes(16), Argon2Params(1, 1, 1 << 31)))


def test_new_accounts_get_random_salts() -> None:
    assert new_login_parameters(TINY).salt != new_login_parameters(TINY).salt


def test_fake_salts_are_stable_per_user_and_secret() -> None:
    secret = bytes(32)
    assert fake_login_salt(secret, "nobody") == fake_login_salt(secret, "nobody")
    assert len(fake_login_salt(secret, "nobody")) == 16
    assert fake_login_salt(secret, "nobody") != fake_login_salt(secret, "nobodx")
    assert fake_login_salt(secret, "nobody") != fake_login_salt(b"\x01" * 32, "nobody")
    with pytest.raises(InvalidArgument):
        fake_login_salt(b"short", "nobody")
