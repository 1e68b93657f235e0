"""After a real conversation through the real server, no plaintext is anywhere the server wrote."""

from __future__ import annotations

import json
import secrets

import pytest

pytestmark = pytest.mark.e2e

# The strictest case: the server logs everything it logs at all.
SERVER_ENV = {"SECURECHAT_LOG_LEVEL": "DEBUG"}


def test_server_never_sees_plaintext(make_user, server_process) -> None:  # type: ignore[no-untyped-def]
    alice, bob = make_user("alice"), make_user("bob")
    alice.run("register", "alice")
    bob.run("register", "bob")
    texts = {
        name: f"{name} {secrets.token_hex(6)}" for name in ("dm-a", "dm-b", "room-a", "room-b")
    }

    alice.run("send", "--to", "bob", texts["dm-a"])
    alice.run("send", "--room", "lobby", texts["room-a"])
    received = [json.loads(line)["text"] for line in bob.run("inbox", "--json").stdout.splitlines()]
    assert received == [texts["dm-a"], texts["room-a"]]
    bob.run("send", "--to", "alice", texts["dm-b"])
    bob.run("send", "--room", "lobby", texts["room-b"])
    received = [
        json.loads(line)["text"] for line in alice.run("inbox", "--json").stdout.splitlines()
    ]
    assert received == [texts["dm-b"], texts["room-b"]]

    written = [p for p in server_process.data_dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in written)
    blobs = {str(p): p.read_bytes() for p in written}
    blobs["server log"] = server_process.log_path.read_bytes()
    assert b"DEBUG" in blobs["server log"] or b"rpc " in blobs["server log"]  # it did log
    for text in texts.values():
        needle = text.encode()
        for where, blob in blobs.items():
            assert needle not in blob, f"plaintext {text!r} found in {where}"
            assert needle.hex().encode() not in blob, f"hex plaintext found in {where}"
