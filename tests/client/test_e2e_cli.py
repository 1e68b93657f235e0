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
    # A signed room closes when its last member leaves (docs/e2e-wire-rooms.md): a second
    # member joins with the password and leaves again instead.
    gerda: User = make_user("gerda")
    gerda.run("register", "gerda")
    denied = _run_with(
        gerda, {"SECURECHAT_ROOM_PASSWORD": "wrong-pass-1"}, "rooms", "join", "vault"
    )
    assert denied.returncode == 68
    assert "frank created the room (protected by a password)" in denied.stderr  # verified
    joined = _run_with(gerda, env_room, "rooms", "join", "vault")
    assert joined.returncode == 0, joined.stderr
    assert "#vault: gerda joined" in joined.stderr
    assert "gerda  offline" in frank.run("rooms", "members", "vault").stdout
    sent = frank.run("send", "--room", "vault", "one ciphertext for the room")
    assert "#vault: gerda joined" in sent.stderr  # verified and shown before encrypting
    frank.run("send", "--room", "vault", "and another")
    inbox = gerda.run("inbox")
    assert "one ciphertext for the room" in inbox.stdout and "and another" in inbox.stdout
    assert "one ciphertext" not in gerda.run("inbox").stdout  # the room position was acked
    made = frank.run("rooms", "admin", "vault", "gerda")
    assert "gerda is an admin of vault" in made.stderr
    assert "no longer" in frank.run("rooms", "admin", "vault", "gerda", "--revoke").stderr
    refused = gerda.run("rooms", "remove", "vault", "frank", ok=False)  # not an admin
    assert refused.returncode != 0 and "not an admin" in refused.stderr
    assert "removed gerda" in frank.run("rooms", "remove", "vault", "gerda").stderr


def test_rooms_password_sets_changes_and_removes_a_room_password(make_user) -> None:  # type: ignore[no-untyped-def]
    nora: User = make_user("nora")
    nora.run("register", "nora")
    nora.run("rooms", "create", "den")
    pass_one = {"SECURECHAT_ROOM_PASSWORD": "den-secret-1"}
    made = _run_with(nora, pass_one, "rooms", "password", "den")
    assert made.returncode == 0, made.stderr
    assert "den has a new password" in made.stderr
    assert "den-secret-1" not in made.stderr + made.stdout
    assert "den  1 member(s)  [member, password]" in nora.run("rooms", "list").stdout

    otto: User = make_user("otto")
    otto.run("register", "otto")
    wrong = _run_with(otto, {"SECURECHAT_ROOM_PASSWORD": "not-it-1"}, "rooms", "join", "den")
    assert wrong.returncode == 68
    joined = _run_with(otto, pass_one, "rooms", "join", "den")
    assert joined.returncode == 0, joined.stderr
    refused = _run_with(otto, {"SECURECHAT_ROOM_PASSWORD": "ottos-own-1"}, "rooms", "password",
                        "den")  # fmt: skip
    assert refused.returncode != 0 and "only an admin of #den" in refused.stderr
    assert "den  2 member(s)  [member, password]" in nora.run("rooms", "list").stdout

    opened = nora.run("rooms", "password", "den", "--remove")
    assert "den is open now (no password)" in opened.stderr
    assert "den  2 member(s)  [member]" in nora.run("rooms", "list").stdout
    again = nora.run("rooms", "password", "den", "--remove", ok=False)
    assert again.returncode != 0 and "open already" in again.stderr
    # no password in the environment and no terminal: refused, nothing changed
    blind = nora.run("rooms", "password", "den", ok=False)
    assert blind.returncode != 0 and "SECURECHAT_ROOM_PASSWORD" in blind.stderr
    assert "den  2 member(s)  [member]" in nora.run("rooms", "list").stdout


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


def _number(output: str) -> list[str]:
    """The two lines of digits of a printed safety number."""
    return [line.strip() for line in output.splitlines() if line.startswith("  ")][:2]


def test_a_changed_account_key_blocks_until_accepted_on_the_new_number(make_user) -> None:  # type: ignore[no-untyped-def]
    gina, hank = make_user("gina"), make_user("hank")
    gina.run("register", "gina")
    hank.run("register", "hank")
    gina.run("send", "--to", "hank", "before")  # pins hank's account key
    old = _number(gina.run("keys", "safety-number", "hank").stdout)
    laptop = User("hank", hank.home.with_name("hank-laptop"), hank.server, hank.pki, hank.password)
    refused = laptop.run("login", "hank", ok=False)  # a new device must be linked ...
    assert refused.returncode == 70 and "devices link" in refused.stderr
    laptop.run("login", "hank", "--reset")  # ... or start over with a new account key

    blocked = gina.run("send", "--to", "hank", "after", ok=False)
    assert blocked.returncode == 73
    for words in ("account key of hank changed", "securechat keys verify hank",
                  "securechat keys trust hank", "securechat keys reject hank"):  # fmt: skip
        assert words in blocked.stderr
    shown = gina.run("keys", "safety-number", "hank").stdout
    assert "CHANGED" in shown and "NEW key" in shown and _number(shown) != old
    again = gina.run("send", "--to", "hank", "after", ok=False)  # still blocked: no decision yet
    assert again.returncode == 73

    trusted = gina.run("keys", "trust", "hank")
    assert _number(trusted.stdout) == _number(shown)  # the number accepted is the one shown
    assert "accepted the new key of hank" in trusted.stdout
    gina.run("send", "--to", "hank", "after")
    assert [m["text"] for m in _lines(laptop.run("inbox", "--json").stdout)] == ["after"]
    now = gina.run("keys", "safety-number", "hank").stdout
    assert _number(now) == _number(shown) and "(unverified)" in now
    assert _number(laptop.run("keys", "safety-number", "gina").stdout) == _number(shown)


def test_reject_keeps_the_old_key_and_its_working_session(make_user, server_process) -> None:  # type: ignore[no-untyped-def]
    from tests.support.lying import forged_account, identities_in_sqlite, swap_account_in_sqlite

    ivan, judy = make_user("ivan"), make_user("judy")
    ivan.run("register", "ivan")
    judy.run("register", "judy")
    ivan.run("send", "--to", "judy", "first")
    assert [m["text"] for m in _lines(judy.run("inbox", "--json").stdout)] == ["first"]
    verified = ivan.run("keys", "verify", "judy", "--yes")
    assert "judy is verified" in verified.stdout
    old = _number(verified.stdout)

    # The server swaps judy's account key for one of its own (her device stays).
    database = server_process.data_dir / "securechat.db"
    forged = forged_account("judy", identities_in_sqlite(database, "judy"))
    original = swap_account_in_sqlite(database, forged)
    try:
        blocked = ivan.run("send", "--to", "judy", "to the server?", ok=False)
        assert blocked.returncode == 73 and "keep the old verified key" in blocked.stderr
        shown = ivan.run("keys", "safety-number", "judy").stdout
        assert "CHANGED" in shown and _number(shown) != old

        rejected = ivan.run("keys", "reject", "judy")
        assert "kept the old key of judy" in rejected.stdout
        ivan.run("send", "--to", "judy", "still private")  # the old session works, unblocked
        ivan.run("send", "--to", "judy", "and again")  # the refused key, shown again, is only told
        texts = [m["text"] for m in _lines(judy.run("inbox", "--json").stdout)]
        assert texts == ["still private", "and again"]
        after = ivan.run("keys", "safety-number", "judy").stdout
        assert _number(after) == old and "(verified)" in after
        nothing = ivan.run("keys", "reject", "judy", ok=False)
        assert nothing.returncode == 64 and "nothing to reject" in nothing.stderr
    finally:
        swap_account_in_sqlite(database, original)  # the server is shared by this module


def test_devices_link_list_and_remove_from_the_command_line(make_user) -> None:  # type: ignore[no-untyped-def]
    import re
    import subprocess

    from tests.client.conftest import BIN

    kate = make_user("kate")
    kate.run("register", "kate")
    phone = User("kate", kate.home.with_name("kate-phone"), kate.server, kate.pki, kate.password)
    typo = phone.run("login", "kate", "--link", "0000-0000-0000-0000-0000-0000", ok=False)
    assert typo.returncode == 74 and "not valid" in typo.stderr  # refused before any call

    offer = subprocess.Popen(
        [str(BIN / "securechat"), "devices", "link"], env=kate.env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert offer.stderr is not None
        first = offer.stderr.readline()
        code = re.search(r"link code: (\S+)", first)
        assert code, first
        joined = phone.run("login", "kate", "--link", code.group(1))
        assert "(linked)" in joined.stderr
        _, err = offer.communicate(timeout=60)
        assert offer.returncode == 0 and "linked device 2" in err
    finally:
        if offer.poll() is None:
            offer.kill()
            offer.wait()

    listed = kate.run("devices", "list").stdout.splitlines()
    assert listed[0].startswith("account key ")
    assert [line.split(",")[0].split("  (")[0] for line in listed[1:]] == [
        "device 1  certified", "device 2  certified",
    ]  # fmt: skip
    assert listed[1].endswith("(this device)")
    phone.run("send", "--room", "lobby", "from my phone")
    [mine] = _lines(kate.run("inbox", "--json").stdout)
    assert (mine["sender"], mine["device"], mine["text"]) == ("kate", 2, "from my phone")
    assert mine["device_certified"] is True

    itself = kate.run("devices", "remove", "1", ok=False)
    assert itself.returncode == 64 and "cannot remove the device you are using" in itself.stderr
    removed = kate.run("devices", "remove", "2")
    assert "removed device 2" in removed.stderr
    assert [line.split(",")[0] for line in kate.run("devices", "list").stdout.splitlines()[1:]] == [
        "device 1  certified"
    ]
    gone = phone.run("inbox", "--json", ok=False)
    assert gone.returncode == 67 and "session" in gone.stderr  # its sessions were revoked


def test_zz_an_upgraded_lobby_is_joined_by_the_accounts_registered_after(make_user) -> None:  # type: ignore[no-untyped-def]
    """Last in this module: it makes the shared server's lobby a signed room."""
    pia: User = make_user("pia")
    pia.run("register", "pia")  # put in the legacy lobby by the server
    upgraded = pia.run("rooms", "upgrade", "lobby")
    assert "lobby is end-to-end verified now" in upgraded.stderr
    assert "pia made #lobby end-to-end verified" in upgraded.stderr
    again = pia.run("rooms", "upgrade", "lobby", ok=False)
    assert again.returncode != 0 and "verified already" in again.stderr

    quinn: User = make_user("quinn")
    registered = quinn.run("register", "quinn")  # the server no longer adds it: it joins itself
    assert "joined #lobby (a signed join" in registered.stderr
    assert "lobby  2 member(s)  [member]" in quinn.run("rooms", "list").stdout
    sent = pia.run("send", "--room", "lobby", "hello quinn, verified")
    assert "#lobby: quinn joined" in sent.stderr  # shown before anything was encrypted to it
    inbox = quinn.run("inbox").stdout
    assert "hello quinn, verified" in inbox
