"""`securechat chat` in a real terminal (tmux): two users, typing survives incoming messages."""

from __future__ import annotations

import pytest

from tests.client.tmux import Tmux, wait_exit

pytestmark = pytest.mark.e2e


def _input_line(screen: str) -> str:
    lines = [line for line in screen.splitlines() if line.startswith("#lobby>")]
    return lines[-1] if lines else ""


def test_two_users_chat_while_typing(make_user, tmux: Tmux) -> None:  # type: ignore[no-untyped-def]
    alice, bob = make_user("alice"), make_user("bob")
    alice.run("register", "alice")
    bob.run("register", "bob")
    alice_exit = tmux.start_chat(alice)
    bob_exit = tmux.start_chat(bob)
    tmux.wait_for("alice", lambda s: "| online |" in s)
    tmux.wait_for("bob", lambda s: "| online |" in s)

    tmux.keys("bob", "hello wor")  # bob is in the middle of typing
    tmux.wait_for("bob", lambda s: _input_line(s) == "#lobby> hello wor")
    tmux.keys("alice", "ping from alice", "Enter")
    screen = tmux.wait_for("bob", lambda s: "alice: ping from alice" in s)
    assert _input_line(screen) == "#lobby> hello wor"  # the half-typed line is intact
    lines = screen.splitlines()
    message_row = next(i for i, line in enumerate(lines) if "alice: ping from alice" in line)
    assert message_row < lines.index("#lobby> hello wor")  # printed above the input line

    tmux.keys("bob", "ld", "Enter")
    tmux.wait_for("alice", lambda s: "bob: hello world" in s)

    tmux.keys("alice", "/who", "Enter")
    tmux.wait_for("alice", lambda s: "online: alice, bob" in s)

    tmux.keys("alice", "/quit", "Enter")
    assert wait_exit(alice_exit) == "0"
    tmux.keys("bob", "C-d")
    assert wait_exit(bob_exit) == "0"
