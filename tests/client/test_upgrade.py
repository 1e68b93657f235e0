"""Profiles and a server database made by the code from before accounts owned devices (commit
243af0d, golden data made by make_before_accounts.py) migrate on their next use: the database
to the latest schema, the accounts to authenticator logins, the keystores to the keystore key, the
devices to account keys, without losing sessions or the message waiting in a mailbox."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from securechat.crypto.account_password import Argon2Params, LoginParameters, derive_password_keys
from securechat.crypto.keystore import Keystore
from securechat.pki import DevPki
from securechat.storage.migrations import LATEST_VERSION
from tests.client.conftest import ServerProcess, User

pytestmark = pytest.mark.e2e

GOLDEN = Path(__file__).parent / "data" / "before_accounts"


@pytest.fixture
def old_world(pki: DevPki, tmp_path: Path) -> Iterator[tuple[ServerProcess, dict[str, User]]]:
    """The golden database under a real server process, and the golden profiles."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copyfile(GOLDEN / "server.db", data / "securechat.db")
    golden = json.loads((GOLDEN / "golden.json").read_text())
    with ServerProcess(pki.directory, data, env={"SECURECHAT_LOG_LEVEL": "INFO"}) as server:
        users = {}
        for name, password in golden["passwords"].items():
            home = tmp_path / f"home-{name}"
            profile = home / "profiles" / "default"
            shutil.copytree(GOLDEN / name, profile)
            for folder in (home, home / "profiles", profile):
                os.chmod(folder, 0o700)
            users[name] = User(name, home, server, pki, password)
        yield server, users


def _texts(output: str) -> list[str]:
    return [json.loads(line)["text"] for line in output.splitlines() if line.strip()]


def _number(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if line.startswith("  ")][:2]


def test_old_profiles_and_database_migrate_without_losing_anything(
    old_world: tuple[ServerProcess, dict[str, User]],
) -> None:
    server, users = old_world
    alice, bob = users["alice"], users["bob"]
    golden = json.loads((GOLDEN / "golden.json").read_text())
    database = server.data_dir / "securechat.db"

    bob.run("login", "bob")  # bob logs in again: a legacy password login, upgraded
    assert _texts(bob.run("inbox", "--json").stdout) == [golden["messages"]["pending"]]
    alice.run("send", "--to", "bob", "after the upgrade")  # alice just goes on (no login)
    assert _texts(bob.run("inbox", "--json").stdout) == ["after the upgrade"]
    bob.run("send", "--to", "alice", "and back")
    assert _texts(alice.run("inbox", "--json").stdout) == ["and back"]
    ours = _number(alice.run("keys", "safety-number", "bob").stdout)
    assert ours == _number(bob.run("keys", "safety-number", "alice").stdout)

    with sqlite3.connect(database) as db:
        version = db.execute("SELECT max(version) FROM schema_version").fetchone()[0]
        salts = dict(db.execute("SELECT name, login_salt FROM users"))
        keys = dict(db.execute("SELECT user_name, account_key FROM accounts"))
    db.close()
    assert version == LATEST_VERSION
    assert set(keys) == {"alice", "bob"}
    for name, user in users.items():
        salt = salts[name]
        assert salt is not None and len(salt) == 16
        # The keystore is sealed with the keystore key of the account's login parameters now.
        keystore = user.home / "profiles" / "default" / "keystore.bin"
        params = Argon2Params(iterations=1, lanes=1, memory_cost=1024)
        keys_now = derive_password_keys(user.password, LoginParameters(bytes(salt), params))
        opened, _ = Keystore.open_with_keys(keystore, keys_now)
        assert opened.format_version == 2
