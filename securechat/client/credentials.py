"""From the account password to what the client sends: never the password itself.

One Argon2id run with the account's salt and costs, split by HKDF (crypto/account_password.py),
gives the *authenticator* (sent at login, checked by the server with bcrypt) and the keystore
key (never sent). The salt and costs come from the server before login; the client refuses costs
below its own floor (the defaults, or the cheap test profile when SECURECHAT_KDF_PROFILE=test):
a server serving weak costs would otherwise receive an authenticator it could brute-force
cheaply. Legacy password accounts (made before this scheme, or by grpcurl with a plain password)
still log in with the password once; the client then upgrades them.
"""

from __future__ import annotations

import asyncio

from securechat.client.rpc.api import Api, ServerLogin
from securechat.client.vault import argon2_params
from securechat.crypto.account_password import (
    Argon2Params,
    LoginParameters,
    PasswordKeys,
    derive_password_keys,
    new_login_parameters,
)
from securechat.errors import FailedPrecondition


def check_floor(login: LoginParameters, floor: Argon2Params) -> None:
    """Refuse login costs weaker than ``floor`` (FailedPrecondition: nothing was sent)."""
    params = login.params
    if params.iterations < floor.iterations or params.memory_cost < floor.memory_cost:
        raise FailedPrecondition(
            f"the server asks for weak password hashing ({params.iterations} iterations, "
            f"{params.memory_cost} KiB, below this client's {floor.iterations} and "
            f"{floor.memory_cost} KiB): nothing was sent; the server may be trying to make your "
            "password easy to guess"
        )


async def derive(password: str, login: LoginParameters) -> PasswordKeys:
    """The password split, off the event loop (Argon2id takes about a second)."""
    return await asyncio.to_thread(derive_password_keys, password, login)


async def fetch_login(api: Api, user: str, floor: Argon2Params | None = None) -> ServerLogin:
    """The server's login parameters for ``user``, checked against the floor."""
    answer = await api.login_parameters(user)
    if not answer.legacy_password:
        check_floor(answer.login, floor or argon2_params())
    return answer


async def new_keys(password: str, params: Argon2Params | None = None) -> PasswordKeys:
    """Keys under a fresh salt (a new account, or upgrading a legacy one)."""
    return await derive(password, new_login_parameters(params or argon2_params()))


async def login_secret(api: Api, user: str, password: str) -> str:
    """What to send as the login secret: the authenticator, or a legacy account's password."""
    answer = await fetch_login(api, user)
    if answer.legacy_password:
        return password
    return (await derive(password, answer.login)).authenticator_text()
