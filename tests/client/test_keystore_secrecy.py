"""What the server receives at Register and Login, and what it stores, cannot open a copy of the
client's keystore: the test records both and tries every way in it can think of."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

import pytest

from securechat.client import account
from securechat.client.account import Options
from securechat.client.passwords import SecretSource
from securechat.crypto import keystore as keystore_module
from securechat.crypto import labels
from securechat.crypto.account_password import LoginParameters, derive_password_keys
from securechat.crypto.keystore import Keystore
from securechat.errors import KeystoreError
from securechat.node import Node
from securechat.pki import DevPki

PASSWORD = "a password only alice knows"


def _opens(path: Path, key: bytes) -> bool:
    header, ciphertext = keystore_module._read(path)
    try:
        Keystore._decrypt(path, header, ciphertext, key)
    except KeystoreError:
        return False
    return True


async def test_what_the_server_receives_and_stores_cannot_open_the_keystore(
    server: Node, pki: DevPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECURECHAT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SECURECHAT_KDF_PROFILE", "test")
    received: list[str] = []
    for method in ("register", "login"):
        real = getattr(server.accounts, method)

        async def spy(
            username: str, secret: str, *args: object, _real=real, **kw: object
        ) -> object:  # type: ignore[no-untyped-def]
            received.append(secret)
            return await _real(username, secret, *args, **kw)

        monkeypatch.setattr(server.accounts, method, spy)
    paths = pki.client("client")
    options = Options(
        server=f"localhost:{server.port}", ca=str(pki.ca_cert), cert=str(paths.cert),
        key=str(paths.key), secrets=SecretSource(env={"SECURECHAT_PASSWORD": PASSWORD}), env={},
    )  # fmt: skip
    for step in (account.register, account.login):
        client = account.connect(options, lock=True)
        try:
            await step(client, "alice", PASSWORD)
        finally:
            await client.close()

    stored = await server.store.get_user("alice")
    assert stored is not None and stored.login is not None
    path = tmp_path / "home" / "profiles" / "default" / "keystore.bin"
    assert len(received) == 3 and PASSWORD not in received  # never the password itself

    # Everything the server holds: the secrets it received, the bcrypt hash, salt and costs.
    candidates = [*received, stored.password_hash.decode("ascii"), stored.login.salt.hex()]
    for secret in candidates:
        with pytest.raises(KeystoreError):
            Keystore.open(path, secret)  # as the password
        try:
            raw = base64.b64decode(secret, validate=True)
        except (binascii.Error, ValueError):
            raw = secret.encode()
        for key in (
            raw[:32].ljust(32, b"\0"),
            labels.hkdf(raw, None, labels.PASSWORD_KEYSTORE_KEY, 32),
            labels.hkdf(raw, None, labels.PASSWORD_AUTHENTICATOR, 32),
            labels.sha256(raw),
        ):
            assert not _opens(path, key)
    # The password (with the salt and costs) is the only way in.
    params = keystore_module.Argon2Params(
        stored.login.iterations, stored.login.lanes, stored.login.memory_kib
    )
    keys = derive_password_keys(PASSWORD, LoginParameters(stored.login.salt, params))
    assert _opens(path, keys.keystore_key)
    assert received[1] == keys.authenticator_text()  # what Login carried
