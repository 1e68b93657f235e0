"""The full-screen chat in process (Textual's pilot) against the real test server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from securechat.client.events import Target
from securechat.client.history import HistoryStore
from securechat.client.tui.prompts import SearchResults, SecretPrompt
from tests.client.conftest import MakeDevice
from tests.client.live import Relay
from tests.client.tui_support import (
    SIZE,
    buffer_lines,
    chat_app,
    labels,
    running,
    screen_text,
    until,
)


async def test_buffers_switch_and_count_what_is_unread(
    make_device: MakeDevice, tmp_path: Path
) -> None:
    alice, bob = await make_device("alice"), await make_device("bob")
    chat = await bob.start()
    app = chat_app(alice, tmp_path)
    async with running(app) as pilot:
        await chat.send(Target.room("lobby"), "hello lobby")
        await chat.send(Target.user("alice"), "psst, private")
        await until(lambda: "@bob (1)" in labels(app))
        assert any("bob: hello lobby" in line for line in buffer_lines(app, "#lobby"))
        assert app.current == Target.room("lobby")
        assert app.bells == 1  # the private message rang, the room message did not
        assert app.terminal_title == "securechat (1) alice"

        await pilot.press("ctrl+n")
        assert app.current == Target.user("bob")
        assert "@bob" in labels(app) and "@bob (1)" not in labels(app)
        assert any("bob: psst, private" in line for line in buffer_lines(app, "@bob"))
        assert app.terminal_title == "securechat alice"
        await pilot.press("ctrl+p")
        assert app.current == Target.room("lobby")

        for key in "hi bob":
            await pilot.press("space" if key == " " else key)
        await pilot.press("ctrl+n", "enter")  # the half-typed line goes with us
        await until(lambda: "hi bob" in bob.watch.texts())
        assert bob.session is not None


async def type_line(pilot: object, text: str) -> None:
    """Type ``text`` into the focused widget and press Enter."""
    for char in text:
        await pilot.press("space" if char == " " else char)  # type: ignore[attr-defined]
    await pilot.press("enter")  # type: ignore[attr-defined]


async def test_scrollback_is_there_after_a_restart(make_device: MakeDevice, tmp_path: Path) -> None:
    alice, bob = await make_device("alice"), await make_device("bob")
    chat = await bob.start()
    first = chat_app(alice, tmp_path)
    async with running(first) as pilot:
        await chat.send(Target.room("lobby"), "said before the restart")
        await type_line(pilot, "answered before the restart")
        await until(lambda: "answered before the restart" in bob.watch.texts())
    await until(lambda: first.engine.history is not None and first.engine.history._closed)

    second = chat_app(alice, tmp_path)  # the same profile: a new process, in effect
    async with second.run_test(size=SIZE):
        await until(lambda: len(buffer_lines(second, "#lobby")) >= 2)
        lines = buffer_lines(second, "#lobby")
        assert any("bob: said before the restart" in line for line in lines)
        assert any("alice: answered before the restart" in line for line in lines)
        assert not any("sending" in line for line in lines)  # stored as sent
        await until(lambda: "said before the restart" in screen_text(second))


async def test_search_finds_messages_of_every_conversation(
    make_device: MakeDevice, tmp_path: Path
) -> None:
    alice, bob = await make_device("alice"), await make_device("bob")
    chat = await bob.start()
    app = chat_app(alice, tmp_path)
    async with running(app) as pilot:
        await chat.send(Target.room("lobby"), "the deploy failed again")
        await chat.send(Target.user("alice"), "deployment is fixed now")
        await chat.send(Target.room("lobby"), "lunch?")
        await until(lambda: "@bob (1)" in labels(app))
        await type_line(pilot, "/search deploy")
        await until(lambda: isinstance(app.screen, SearchResults))
        await until(lambda: "message(s) with" in screen_text(app))
        shown = screen_text(app)
        assert "2 message(s) with “deploy”" in shown
        assert "@bob [" in shown and "deployment is fixed now" in shown
        assert "#lobby [" in shown and "the deploy failed again" in shown
        assert "lunch?" not in shown.split("message(s) with")[1]
        await pilot.press("escape")
        await until(lambda: not isinstance(app.screen, SearchResults))
        assert app.focused is app.input


async def test_the_outbox_keeps_what_is_typed_during_an_outage(
    make_device: MakeDevice, relay: Relay, tmp_path: Path
) -> None:
    alice, bob = await make_device("alice", port=relay.port), await make_device("bob")
    await bob.start()
    app = chat_app(alice, tmp_path)
    async with running(app) as pilot:
        relay.hold()
        await until(lambda: app.status.state == "reconnecting")
        await type_line(pilot, "typed while the server was away")
        await type_line(pilot, "and a second one")
        await until(lambda: app.status.pending == 2)
        lines = buffer_lines(app, "#lobby")
        assert any("typed while the server was away (sending…)" in line for line in lines)
        await until(lambda: "2 waiting to be sent" in screen_text(app))
        assert bob.watch.texts() == []

        relay.release()
        await until(lambda: len(bob.watch.texts()) == 2)
        assert bob.watch.texts() == ["typed while the server was away", "and a second one"]
        await until(lambda: app.status.pending == 0)
        assert not any("sending" in line for line in buffer_lines(app, "#lobby"))
    await asyncio.sleep(0)
    assert bob.watch.texts() == ["typed while the server was away", "and a second one"]


async def test_a_room_password_prompt_never_masks_the_chat_nor_enters_its_history(
    make_device: MakeDevice, tmp_path: Path
) -> None:
    """The reported bug: after a room-password prompt everything typed showed as *****, and
    Up + Enter in a private conversation sent the room password to the other user."""
    alice, bob = await make_device("alice"), await make_device("bob")
    await bob.start()
    secret = "room-secret-42"
    await bob.api.create_room("vault", secret)
    app = chat_app(alice, tmp_path)
    async with running(app) as pilot:
        await type_line(pilot, "/join vault")
        await until(lambda: isinstance(app.screen, SecretPrompt))
        await type_line(pilot, secret)
        await until(lambda: app.current == Target.room("vault"))
        assert not app.input.password

        await type_line(pilot, "/switch @bob")
        for char in "visible":
            await pilot.press(char)
        assert app.input.value == "visible"
        await until(lambda: "visible" in screen_text(app))
        assert "*******" not in screen_text(app)
        app.input.value = ""
        await pilot.press("up")  # the last line typed: the /switch, never the password
        assert app.input.value == "/switch @bob"
        await pilot.press("up")
        assert app.input.value == "/join vault"
        await pilot.press("up")
        assert app.input.value == "/join vault"  # nothing older: the password is not there
        assert secret not in app.input.recalled
        app.input.value = ""
        await type_line(pilot, "hello bob")
        await until(lambda: "hello bob" in bob.watch.texts())
        assert secret not in bob.watch.texts()
        found = await app.engine.store.run(lambda s: s.search(secret))
        assert found == []
        assert secret not in screen_text(app)


async def test_the_ui_stays_responsive_when_the_server_dies(
    make_device: MakeDevice, relay: Relay, tmp_path: Path
) -> None:
    loop_errors: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _l, c: loop_errors.append(c))
    alice, bob = await make_device("alice", port=relay.port), await make_device("bob")
    await bob.start()
    app = chat_app(alice, tmp_path)
    async with running(app) as pilot:
        relay.hold()  # every connection dropped at once, and no server answers any more
        await until(lambda: app.status.state == "reconnecting")
        await type_line(pilot, "/help")
        await until(lambda: any("/search WORDS" in line for line in buffer_lines(app, "#lobby")))
        await type_line(pilot, "still typing")
        assert app.input.value == ""  # taken, not swallowed
        await until(lambda: app.status.pending == 1)
        line = app.status.line().plain
        assert "reconnecting" in line
        gone = ("lost the connection", "no server is answering", "probably restarting")
        assert any(reason in line for reason in gone)  # (which one depends on the moment)
        assert "certificate" not in line
        relay.release()
        await until(lambda: bob.watch.texts() == ["still typing"])
        await until(lambda: app.status.state == "online")
        assert any("- online" in line for line in buffer_lines(app, "#lobby"))
    assert loop_errors == []


async def test_a_history_that_cannot_be_written_does_not_end_the_chat(
    make_device: MakeDevice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlcipher3

    alice, bob = await make_device("alice"), await make_device("bob")
    chat = await bob.start()
    app = chat_app(alice, tmp_path)
    async with running(app):
        store = app.engine.store

        def full(_store: HistoryStore, *args: object) -> None:
            raise sqlcipher3.OperationalError("database or disk is full")

        monkeypatch.setattr(HistoryStore, "add_received", full)
        await chat.send(Target.room("lobby"), "arrives all the same")
        await until(lambda: any("arrives all the same" in line
                                for line in buffer_lines(app, "#lobby")))  # fmt: skip
        assert any("disk is full" in line for line in buffer_lines(app, "#lobby"))
        assert app.status.state == "online" and app.fatal is None
        assert store is app.engine.store
