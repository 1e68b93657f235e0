"""`securechat chat` in a real terminal (tmux): two users, real server processes.

Typing survives incoming messages; a message typed while the server is down arrives once after
it returns; after both clients restart their history is on screen again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.client.conftest import User
from tests.client.tmux import Tmux, wait_exit
from tests.support.process import ServerProcess

pytestmark = pytest.mark.e2e


ONLINE = "│ online │"


def _input_line(screen: str) -> str:
    """What the input box shows (the line between its borders)."""
    lines = screen.splitlines()
    for index, line in enumerate(lines[1:], 1):
        if "▔▔▔▔" in lines[index - 1] and "▎" in line:
            return line.split("▊", 1)[-1].rstrip().rstrip("▎").strip()
    return ""


def test_two_users_chat_while_typing(make_user, tmux: Tmux) -> None:  # type: ignore[no-untyped-def]
    alice, bob = make_user("alice"), make_user("bob")
    alice.run("register", "alice")
    bob.run("register", "bob")
    alice_exit = tmux.start_chat(alice)
    bob_exit = tmux.start_chat(bob)
    tmux.wait_for("alice-0", lambda s: ONLINE in s)
    tmux.wait_for("bob-0", lambda s: ONLINE in s)

    tmux.keys("bob-0", "hello wor")  # bob is in the middle of typing
    tmux.wait_for("bob-0", lambda s: _input_line(s) == "hello wor")
    tmux.keys("alice-0", "ping from alice", "Enter")
    # Wait for the settled screen (message shown and the half-typed line intact) in one
    # condition: a capture may fall mid-redraw. A lost half-typed line never settles.
    screen = tmux.wait_for(
        "bob-0", lambda s: "alice: ping from alice" in s and _input_line(s) == "hello wor"
    )
    lines = screen.splitlines()
    message_row = next(i for i, line in enumerate(lines) if "alice: ping from alice" in line)
    input_row = next(i for i, line in enumerate(lines) if "hello wor" in line)
    assert message_row < input_row  # in the buffer above the input line

    tmux.keys("bob-0", "ld", "Enter")
    tmux.wait_for("alice-0", lambda s: "bob: hello world" in s)

    tmux.keys("alice-0", "/who", "Enter")
    tmux.wait_for("alice-0", lambda s: "online: alice, bob" in s)

    tmux.keys("alice-0", "/quit", "Enter")
    assert wait_exit(alice_exit) == "0"
    tmux.keys("bob-0", "C-d")
    assert wait_exit(bob_exit) == "0"


def test_history_after_restarts_and_a_message_typed_during_an_outage(
    pki, tmp_path: Path, tmux: Tmux
) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    server = ServerProcess(pki.directory, data)
    try:
        where = server  # the clients keep this address across the restart
        alice = User("alice", tmp_path / "home-alice", where, pki, "alice-pass-1", "alice")
        bob = User("bob", tmp_path / "home-bob", where, pki, "bob-pass-22", "bob")
        alice.run("register", "alice")
        bob.run("register", "bob")
        tmux.start_chat(alice)
        bob_exit = tmux.start_chat(bob)
        tmux.wait_for("alice-0", lambda s: ONLINE in s)
        tmux.wait_for("bob-0", lambda s: ONLINE in s)
        tmux.keys("alice-0", "before outage", "Enter")
        tmux.wait_for("bob-0", lambda s: "alice: before outage" in s)

        server.kill()  # SIGKILL: no goodbye to anyone
        tmux.wait_for("alice-0", lambda s: "reconnecting" in s)
        tmux.wait_for("bob-0", lambda s: "reconnecting" in s)
        tmux.keys("alice-0", "typed offline", "Enter")
        screen = tmux.wait_for("alice-0", lambda s: "(sending…)" in s)
        assert "certificate" not in screen

        server = ServerProcess(pki.directory, data, port=where.port)  # back, same address
        screen = tmux.wait_for("bob-0", lambda s: "alice: typed offline" in s)
        tmux.wait_for("alice-0", lambda s: ONLINE in s and "(sending…)" not in s)
        tmux.keys("bob-0", "C-d")
        assert wait_exit(bob_exit) == "0"
        tmux.kill_session("alice-0")

        # Both clients start again: the conversation is on screen from the local history.
        for user in (alice, bob):
            tmux.start_chat(user, run=1)
        for name in ("alice-1", "bob-1"):
            screen = tmux.wait_for(name, lambda s: "typed offline" in s
                                   and "before outage" in s)  # fmt: skip
            assert screen.count("typed offline") == 1
        tmux.keys("bob-1", "C-d")
        tmux.keys("alice-1", "C-d")
        wait_exit(tmp_path / "bob-1.exit")
        wait_exit(tmp_path / "alice-1.exit")
        found = [json.loads(line) for line in bob.run("history", "--json").stdout.splitlines()]
        texts = [item["text"] for item in found]
        assert texts.count("typed offline") == 1  # stored once, shown once
    finally:
        if server.proc.poll() is None:
            server.terminate()
