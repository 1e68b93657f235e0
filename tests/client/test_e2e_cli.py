"""The scriptable commands as subprocesses against a real server process (end to end)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.client.conftest import User

pytestmark = pytest.mark.e2e


def _lines(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_offline_user_gets_private_and_room_messages_decrypted_once(make_user) -> None:  # type: ignore[no-untyped-def]
    alice, bob = make_user("alice"), make_user("bob")
    alice.run("register", "alice")
    bob.run("register", "bob")  # bob is now offline: no client of his runs

    alice.run("send", "--to", "bob", "hello bob, this is private")
    alice.run("send", "--room", "lobby", "hello lobby")

    first = _lines(bob.run("inbox", "--json").stdout)
    assert [(m["sender"], m["conversation"], m["text"]) for m in first] == [
        ("alice", "@alice", "hello bob, this is private"),
        ("alice", "#lobby", "hello lobby"),
    ]
    assert all(m["id"] and str(m["sent_at"]).endswith("Z") for m in first)
    assert bob.run("inbox", "--json").stdout == ""

    # The server stored ciphertext only.
    db = next(alice.server.data_dir.rglob("*.db"))
    dump = "\n".join(sqlite3.connect(db).iterdump()).encode()
    assert b"hello lobby" not in dump and b"private" not in dump


def test_replies_flow_back_and_safety_numbers_match(make_user: object) -> None:
    alice, bob = make_user("carol"), make_user("dave")  # type: ignore[operator]
    alice.run("register", "carol")
    bob.run("register", "dave")
    alice.run("send", "--to", "dave", "first")
    assert _lines(bob.run("inbox", "--json").stdout)[0]["text"] == "first"
    bob.run("send", "--to", "carol", "reply")
    assert _lines(alice.run("inbox", "--json").stdout)[0]["text"] == "reply"
    ours = alice.run("keys", "safety-number", "dave").stdout.splitlines()[1:]
    theirs = bob.run("keys", "safety-number", "carol").stdout.splitlines()[1:]
    assert ours == theirs and len("".join(ours).split()) == 12


def test_errors_are_one_line_with_documented_exit_codes(make_user) -> None:  # type: ignore[no-untyped-def]
    erin: User = make_user("erin")
    erin.run("register", "erin")
    wrong = User("erin", erin.home.with_name("elsewhere"), erin.server, erin.pki, "wrong-pass")
    failed = wrong.run("login", "erin", ok=False)
    assert failed.returncode == 67
    assert failed.stderr.strip().count("\n") == 0 and "wrong username or password" in failed.stderr
    missing = erin.run("rooms", "members", "no-such-room", ok=False)
    assert missing.returncode == 66
    again = erin.run("register", "erin", ok=False)
    assert again.returncode == 70 and "--profile" in again.stderr


def test_rooms_commands_and_room_password_from_the_environment(make_user) -> None:  # type: ignore[no-untyped-def]
    frank: User = make_user("frank")
    frank.run("register", "frank")
    env_room = {"SECURECHAT_ROOM_PASSWORD": "room-secret-1"}
    result = _run_with(frank, env_room, "rooms", "create", "vault", "--password")
    assert result.returncode == 0, result.stderr
    listing = frank.run("rooms", "list").stdout
    assert "vault  1 member(s)  [member, password]" in listing
    frank.run("rooms", "leave", "vault")
    denied = _run_with(
        frank, {"SECURECHAT_ROOM_PASSWORD": "wrong-pass-1"}, "rooms", "join", "vault"
    )
    assert denied.returncode == 68
    assert _run_with(frank, env_room, "rooms", "join", "vault").returncode == 0
    assert frank.run("rooms", "members", "vault").stdout.startswith("frank  offline")


def _run_with(user: User, extra: dict[str, str], *args: str):  # type: ignore[no-untyped-def]
    import subprocess

    from tests.client.conftest import BIN

    return subprocess.run(
        [str(BIN / "securechat"), *args],
        env={**user.env(), **extra},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_new_identity_is_never_used_silently(make_user) -> None:  # type: ignore[no-untyped-def]
    gina, hank = make_user("gina"), make_user("hank")
    gina.run("register", "gina")
    hank.run("register", "hank")
    gina.run("send", "--to", "hank", "before")  # pins hank's identity
    other = User("hank", hank.home.with_name("hank-laptop"), hank.server, hank.pki, hank.password)
    other.run("login", "hank")  # a second device: a new identity key
    blocked = gina.run("send", "--to", "hank", "after", ok=False)
    assert blocked.returncode == 73
    assert "identity key of hank changed" in blocked.stderr
    assert "keys trust hank" in blocked.stderr
    assert other.run("inbox", "--json").stdout == ""  # nothing was encrypted to the new key
