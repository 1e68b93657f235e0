"""The chat input language: commands, whispers and plain text."""

from __future__ import annotations

import pytest

from securechat.client.commands import Command, help_lines, parse
from securechat.errors import InvalidArgument


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("hello there", Command("say", text="hello there")),
        ("//etc/passwd is a path", Command("say", text="/etc/passwd is a path")),
        ("/w bob hi there", Command("w", ("bob",), "hi there")),
        ("/whisper bob hi", Command("w", ("bob",), "hi")),
        ("@bob  hi", Command("w", ("bob",), "hi")),
        ("/JOIN dev", Command("join", ("dev",))),
        ("/create dev --password", Command("create", ("dev", "--password"))),
        ("/leave", Command("leave")),
        ("/switch @bob", Command("switch", ("@bob",))),
        ("/q", Command("quit")),
        ("/reject bob", Command("reject", ("bob",))),
        ("/trust bob", Command("trust", ("bob",))),
        ("/devices", Command("devices")),
        ("/devices link", Command("devices", ("link",))),
        ("/devices remove 3", Command("devices", ("remove", "3"))),
        ("/password", Command("password")),
        ("/password --remove", Command("password", ("--remove",))),
        ("/upgrade", Command("upgrade")),
    ],
)
def test_parse(line: str, command: Command) -> None:
    assert parse(line) == command


def test_blank_line_is_nothing() -> None:
    assert parse("   ") is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/frobnicate", "unknown command /frobnicate"),
        ("/join", "usage: /join ROOM"),
        ("/w bob", "usage: /w USER TEXT"),
        ("@bob", "usage: /w USER TEXT"),
        ("/create dev --pw", "usage: /create ROOM [--password]"),
        ("/who extra", "usage: /who"),
        ("/reject", "usage: /reject USER"),
        ("/devices remove", "usage: /devices [link | remove N]"),
        ("/devices remove me", "usage: /devices [link | remove N]"),
        ("/devices unlink", "usage: /devices [link | remove N]"),
        ("/password hunter2", "usage: /password [--remove]"),
        ("/password --remove now", "usage: /password [--remove]"),
        ("/upgrade lobby", "usage: /upgrade"),
    ],
)
def test_bad_input_says_what_to_do(line: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse(line)


def test_help_lists_every_command() -> None:
    text = "\n".join(help_lines())
    for name in ("/help", "/join", "/create", "/leave", "/rooms", "/members", "/who", "/w",
                 "/switch", "/verify", "/trust", "/reject", "/devices", "/password", "/upgrade",
                 "/quit"):  # fmt: skip
        assert name in text
