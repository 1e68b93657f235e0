"""A private tmux server for tests that need a real terminal (the chat, interactive prompts)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.client.conftest import User

BIN = Path(sys.executable).parent

WAIT_S = 30.0


class Tmux:
    """A private tmux server (own socket, no user config) holding one window per user."""

    def __init__(self, directory: Path) -> None:
        self.socket = f"sc-{uuid.uuid4().hex[:8]}"
        self.directory = directory

    def cmd(self, *args: str) -> str:
        result = subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True, text=True, check=True, timeout=10,
        )  # fmt: skip
        return result.stdout

    def start_chat(self, user: User, run: int = 0) -> Path:
        """`securechat chat` in a window named ``USER-RUN``; its exit code goes to the file
        returned."""
        exit_file = self.directory / f"{user.name}-{run}.exit"
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in user.env().items())
        shell = f"env {env} {BIN / 'securechat'} chat; echo $? > {exit_file}; sleep 60"
        name = f"{user.name}-{run}"
        self.cmd("new-session", "-d", "-s", name, "-x", "110", "-y", "30", shell)
        return exit_file

    def start_shell(self, user: User, name: str) -> None:
        """A plain shell with ``user``'s environment, for typing `securechat ...` commands."""
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in user.env().items())
        path = shlex.quote(f"{BIN}:/usr/bin:/bin")
        shell = f"env -i {env} PATH={path} TERM=xterm PS1='$ ' bash --norc --noprofile"
        self.cmd("new-session", "-d", "-s", name, "-x", "150", "-y", "40", shell)

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

    def kill_session(self, name: str) -> None:
        self.cmd("kill-session", "-t", name)

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)


def wait_exit(exit_file: Path) -> str:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if exit_file.exists() and exit_file.read_text().strip():
            return exit_file.read_text().strip()
        time.sleep(0.1)
    raise AssertionError("the chat did not exit")


def shell_result(tmux: Tmux, target: str, marker: str) -> int:
    """The exit code a command printed as ``MARKER=N`` (type ``...; echo MARKER=$?``)."""
    pattern = re.compile(rf"^{marker}=(\d+)$", re.M)
    screen = tmux.wait_for(target, lambda s: pattern.search(s) is not None)
    match = pattern.search(screen)
    assert match is not None
    return int(match.group(1))
