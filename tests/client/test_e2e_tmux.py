"""`securechat chat` in a real terminal (tmux): two users, typing survives incoming messages."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.client.conftest import BIN, User
from tests.support.process import clean_env

pytestmark = pytest.mark.e2e
WAIT_S = 30.0


class Tmux:
    """A private tmux server (own socket, no user config) holding one window per user."""

    def __init__(self, directory: Path) -> None:
        self.socket = f"sc-{uuid.uuid4().hex[:8]}"
        self.directory = directory

    def cmd(self, *args: str) -> str:
        # The tmux server (started by the first command) passes this environment to its panes.
        result = subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            env=clean_env(self.directory / "tmux-home"),
            capture_output=True, text=True, check=True, timeout=10,
        )  # fmt: skip
        return result.stdout

    def start_chat(self, user: User) -> Path:
        exit_file = self.directory / f"{user.name}.exit"
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in user.env().items())
        shell = f"env {env} {BIN / 'securechat'} chat; echo $? > {exit_file}; sleep 60"
        self.cmd("new-session", "-d", "-s", user.name, "-x", "110", "-y", "30", shell)
        return exit_file

    def keys(self, target: str, *keys: str) -> None:
        self.cmd("send-keys", "-t", target, *keys)

    def screen(self, target: str) -> str:
        return self.cmd("capture-pane", "-p", "-t", target)

    def wait_for(self, target: str, check: Callable[[str], bool]) -> str:
        deadline = time.monotonic() + WAIT_S
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen(target)
            if check(screen):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"timed out; the {target} screen was:\n{screen}")

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed: the interactive chat test needs a real terminal")
    session = Tmux(tmp_path)
    yield session
    session.kill()


def _input_line(screen: str) -> str:
    lines = [line for line in screen.splitlines() if line.startswith("#lobby>")]
    return lines[-1] if lines else ""


def _wait_exit(exit_file: Path) -> str:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if exit_file.exists() and exit_file.read_text().strip():
            return exit_file.read_text().strip()
        time.sleep(0.1)
    raise AssertionError("the chat did not exit")


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
    # prompt_toolkit prints a message in steps (erase the prompt, write the line, draw the prompt
    # again): a capture can fall between them, so wait for the settled screen. A lost half-typed
    # line never settles and times out.
    screen = tmux.wait_for(
        "bob",
        lambda s: "alice: ping from alice" in s and _input_line(s) == "#lobby> hello wor",
    )
    lines = screen.splitlines()
    message_row = next(i for i, line in enumerate(lines) if "alice: ping from alice" in line)
    assert message_row < lines.index("#lobby> hello wor")  # printed above the input line

    tmux.keys("bob", "ld", "Enter")
    tmux.wait_for("alice", lambda s: "bob: hello world" in s)

    tmux.keys("alice", "/who", "Enter")
    tmux.wait_for("alice", lambda s: "online: alice, bob" in s)

    tmux.keys("alice", "/quit", "Enter")
    assert _wait_exit(alice_exit) == "0"
    tmux.keys("bob", "C-d")
    assert _wait_exit(bob_exit) == "0"
