"""Strings from the server or a peer never drive the terminal, in the chat or the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from securechat.client.cli import dispatch
from securechat.client.display import describe, membership
from securechat.client.events import (
    ConnectionEvent,
    IdentityEvent,
    MembershipEvent,
    NoticeEvent,
    PresenceEvent,
    Target,
)
from securechat.errors import Unavailable
from tests.client.conftest import MakeDevice
from tests.client.tui_support import buffer_lines, chat_app, running, screen_text, until

TITLE = "\x1b]0;pwned\x07"
CLEAR = "\x1b[2J\x1b[H"
CLIPBOARD = "\x1b]52;c;ZXZpbA==\x07"
MARKUP = "[bold red]loud[/bold red] [@click=app.quit]click me[/]"
CONTROL = set(range(0x00, 0x20)) | set(range(0x7F, 0xA0))


def assert_inert(text: str) -> None:
    assert not any(ord(ch) in CONTROL for ch in text.replace("\n", "")), repr(text)


async def test_hostile_peer_and_server_strings_are_shown_inert(
    make_device: MakeDevice, tmp_path: Path
) -> None:
    alice, bob = await make_device("alice"), await make_device("bob")
    chat = await bob.start()
    app = chat_app(alice, tmp_path)
    async with running(app):
        await chat.send(Target.room("lobby"), f"{CLEAR}{TITLE}{MARKUP}\u202eevil")
        # What a malicious server could send: names, notices, error text, connection details.
        app.show_event(MembershipEvent(f"dev{TITLE}", f"eve{CLEAR}", "joined", 0))
        app.show_event(PresenceEvent(f"mallory{CLIPBOARD}", True, 0))
        app.show_event(NoticeEvent(f"server: {CLIPBOARD}{MARKUP}", warning=True))
        app.show_event(IdentityEvent(f"trudy{TITLE}", False, 0))
        app.show_event(ConnectionEvent("reconnecting", f"gone {CLEAR}{MARKUP}", "unavailable"))
        app.say(f"! {CLIPBOARD}error text from the server")
        await until(lambda: any("bob: " in line for line in buffer_lines(app, "#lobby")))
        await until(lambda: "@click=app.quit" in screen_text(app))
        shown = screen_text(app)
        assert_inert(shown)
        for conversation in app.buffers:
            for line in buffer_lines(app, conversation):
                assert_inert(line)
        assert MARKUP in "\n".join(buffer_lines(app, "#lobby"))  # markup shown, not obeyed
        assert "\\u202eevil" in "\n".join(buffer_lines(app, "#lobby"))
        assert_inert(app.status.line().plain)
        assert app.is_running


def test_describe_neutralises_every_server_field() -> None:
    lines = [
        describe(MembershipEvent(f"dev{TITLE}", f"eve{CLEAR}", "device_added", 0)),
        describe(IdentityEvent(f"trudy{TITLE}", True, 0)),
        describe(ConnectionEvent("offline", f"bye{CLIPBOARD}", "kicked")),
        describe(PresenceEvent(f"mallory{CLIPBOARD}", False, 0)),
        describe(NoticeEvent(f"x{CLEAR}")),
    ]
    for line in lines:
        assert_inert(line)


def test_a_change_without_a_room_names_none() -> None:
    """`* carol added a device in #` came from an empty room name."""
    assert membership(MembershipEvent("", "carol", "device_added", 0)) == "carol added a device"
    assert membership(MembershipEvent("dev", "carol", "device_added", 0)) == (
        "carol added a device in #dev"
    )
    assert membership(MembershipEvent("dev", "carol", "joined", 0)) == "carol joined #dev"


def test_error_text_from_the_server_is_neutralised_by_the_cli(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from securechat.client import account

    monkeypatch.setenv("SECURECHAT_HOME", str(tmp_path))

    def refuse(*args: object, **kwargs: object) -> None:
        raise Unavailable(f"server said {TITLE}{CLEAR}{CLIPBOARD}go away")

    monkeypatch.setattr(account, "connect", refuse)
    assert dispatch(["who"]) == 69
    err = capsys.readouterr().err
    assert "go away" in err
    assert_inert(err)
