"""Login parameters, authenticator logins and the upgrade of legacy password accounts, over the
real server; and what the server stores cannot open a keystore."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from securechat.client.bundles import add_prekeys_request, publish_request
from securechat.crypto.account import CryptoAccount
from securechat.crypto.account_password import (
    Argon2Params,
    LoginParameters,
    derive_password_keys,
    new_login_parameters,
)
from securechat.domain.model import DeviceRef
from securechat.node import Node
from securechat.pki import DevPki
from securechat_proto.v1 import auth_pb2, keys_pb2
from tests.conftest import ApiFactory, server_config
from tests.support.accounts import now
from tests.support.net import PASSWORD, Api, secure_channel
from tests.transport.test_accounts import fails

Code = grpc.StatusCode
CHEAP = Argon2Params(iterations=1, lanes=1, memory_cost=1024)


def proto_params(params: Argon2Params) -> auth_pb2.Argon2Parameters:
    return auth_pb2.Argon2Parameters(
        iterations=params.iterations, lanes=params.lanes, memory_kib=params.memory_cost
    )


async def parameters(api: Api, user: str) -> auth_pb2.GetLoginParametersResponse:
    reply: auth_pb2.GetLoginParametersResponse = await api.auth.GetLoginParameters(
        auth_pb2.GetLoginParametersRequest(username=user)
    )
    return reply


async def register_with_salt(api: Api, user: str, login: LoginParameters, secret: str) -> None:
    await api.auth.Register(
        auth_pb2.RegisterRequest(
            username=user, password=secret, login_salt=login.salt,
            argon2=proto_params(login.params),
        )
    )  # fmt: skip


async def test_unknown_users_get_a_stable_fake_salt_and_the_defaults(connect: ApiFactory) -> None:
    api = await connect()
    first, again = await parameters(api, "nobody"), await parameters(api, "nobody")
    other = await parameters(api, "someone")
    assert first == again and len(first.login_salt) == 16
    assert other.login_salt != first.login_salt
    assert (first.argon2.iterations, first.argon2.lanes, first.argon2.memory_kib) == (3, 4, 262144)
    assert not first.legacy_password
    # A registered account looks the same from outside: its own salt, the same shape.
    login = new_login_parameters(CHEAP)
    keys = derive_password_keys(PASSWORD, login)
    await register_with_salt(api, "alice", login, keys.authenticator_text())
    real = await parameters(api, "alice")
    assert real.login_salt == login.salt and not real.legacy_password
    assert real.argon2 == proto_params(CHEAP)


async def test_an_authenticator_account_logs_in_with_the_authenticator_only(
    connect: ApiFactory, server: Node
) -> None:
    api = await connect()
    login = new_login_parameters(CHEAP)
    keys = derive_password_keys(PASSWORD, login)
    await register_with_salt(api, "alice", login, keys.authenticator_text())
    await api.login("alice", keys.authenticator_text(), keys=False)
    await fails(api.auth.Login(auth_pb2.LoginRequest(username="alice", password=PASSWORD)),
                Code.UNAUTHENTICATED)  # fmt: skip
    user = await server.store.get_user("alice")
    assert user is not None and user.login is not None and user.login.salt == login.salt


@pytest.mark.parametrize(
    ("salt", "iterations", "secret", "words"),
    [
        (b"short", 1, "A" * 43 + "=", "16 bytes"),
        (b"s" * 16, 0, "A" * 43 + "=", "out of range"),
        (b"s" * 16, 1, "not an authenticator", "authenticator"),
        (b"s" * 16, 1, "A" * 44, "authenticator"),
    ],
)
async def test_bad_registrations_with_a_salt_are_refused(
    connect: ApiFactory, server: Node, salt: bytes, iterations: int, secret: str, words: str
) -> None:
    api = await connect()
    request = auth_pb2.RegisterRequest(
        username="alice", password=secret, login_salt=salt,
        argon2=auth_pb2.Argon2Parameters(iterations=iterations, lanes=1, memory_kib=1024),
    )  # fmt: skip
    error = await fails(api.auth.Register(request), Code.INVALID_ARGUMENT)
    assert words in (error.details() or "")
    assert await server.store.get_user("alice") is None


async def test_a_legacy_account_upgrades_once(connect: ApiFactory) -> None:
    api = await connect("alice")  # a plain password: a legacy password account
    assert (await parameters(api, "alice")).legacy_password
    login = new_login_parameters(CHEAP)
    keys = derive_password_keys(PASSWORD, login)
    upgrade = auth_pb2.UpgradeLoginRequest(
        authenticator=keys.authenticator_text(), login_salt=login.salt,
        argon2=proto_params(CHEAP),
    )  # fmt: skip
    await api.auth.UpgradeLogin(upgrade, metadata=api.md)
    reply = await parameters(api, "alice")
    assert not reply.legacy_password and reply.login_salt == login.salt
    await fails(api.auth.UpgradeLogin(upgrade, metadata=api.md), Code.FAILED_PRECONDITION)
    await fails(api.auth.Login(auth_pb2.LoginRequest(username="alice", password=PASSWORD)),
                Code.UNAUTHENTICATED)  # fmt: skip
    await api.login("alice", keys.authenticator_text(), device_id=1)
    await fails(api.auth.UpgradeLogin(auth_pb2.UpgradeLoginRequest(), metadata=api.md),
                Code.INVALID_ARGUMENT)  # fmt: skip
    await fails(api.auth.UpgradeLogin(upgrade), Code.UNAUTHENTICATED)  # needs a session


async def test_the_last_resort_prekey_rotates_through_add_prekeys(
    connect: ApiFactory, server: Node
) -> None:
    api = await connect("alice", register=True)
    await api.login("alice", keys=False)
    crypto = CryptoAccount.create("alice", api.device_id, now=now(), one_time_count=0,
                                  kem_one_time_count=0)  # fmt: skip
    await api.keys.PublishBundle(publish_request(crypto.upload_bundle()), metadata=api.md)
    signed, last_resort = crypto.rotate_prekeys(now=now() + 10)
    request = add_prekeys_request([], [], signed, last_resort)
    await api.keys.AddPreKeys(request, metadata=api.md)
    claimed = await server.store.claim_bundle(DeviceRef("alice", api.device_id))
    assert claimed is not None
    assert claimed.kem_prekey.key_id == last_resort.key_id and claimed.kem_prekey.last_resort
    assert claimed.signed_prekey.key_id == signed.key_id
    bad = keys_pb2.AddPreKeysRequest()
    bad.last_resort_kem_prekey.CopyFrom(request.last_resort_kem_prekey)
    bad.last_resort_kem_prekey.last_resort = False
    await fails(api.keys.AddPreKeys(bad, metadata=api.md), Code.INVALID_ARGUMENT)


async def test_the_fake_salt_secret_is_kept_so_answers_survive_a_restart(
    pki: DevPki, tmp_path: Path
) -> None:
    answers = []
    for _ in range(2):
        node = Node(server_config(pki, tmp_path / "data"))
        await node.start()
        api = Api(secure_channel(pki, node.port))
        try:
            answers.append((await parameters(api, "nobody")).login_salt)
        finally:
            await api.channel.close()
            await node.stop(grace=0.2)
    secret = tmp_path / "data" / "login-salt.secret"
    assert answers[0] == answers[1]
    assert secret.stat().st_mode & 0o777 == 0o600 and len(secret.read_bytes()) >= 32
    configured = Node(server_config(pki, tmp_path / "other", **{
        "accounts.fake_salt_secret": "s" * 32,
    }))  # fmt: skip
    await configured.start()
    api = Api(secure_channel(pki, configured.port))
    try:
        assert (await parameters(api, "nobody")).login_salt != answers[0]
        assert not (tmp_path / "other" / "login-salt.secret").exists()
    finally:
        await api.channel.close()
        await configured.stop(grace=0.2)
