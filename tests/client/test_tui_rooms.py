"""Signed rooms in the full-screen chat: the /commands sign, every change is shown in the room's
buffer with who made it, and /members lists the verified member list."""

from __future__ import annotations

from pathlib import Path

import pytest

from securechat.client.events import Target
from securechat.client.passwords import ROOM_PASSWORD_ENV
from securechat.client.tui.prompts import SecretPrompt
from tests.client.conftest import MakeDevice, Reset
from tests.client.test_tui import type_line
from tests.client.tui_support import buffer_lines, chat_app, running, until


async def _open() -> str:
    raise AssertionError("an open room asks for no password")


async def test_room_commands_sign_and_every_change_is_shown(
    make_device: MakeDevice, tmp_path: Path
) -> None:
    alice, bob = await make_device("alice"), await make_device("bob")
    chat = await bob.start()
    app = chat_app(alice, tmp_path)
    async with running(app) as pilot:
        await type_line(pilot, "/create ops")
        await until(
            lambda: any("alice created the room" in line for line in buffer_lines(app, "#ops"))
        )
        await chat.messenger.actions.join("ops", _open)
        await until(lambda: any("#ops: bob joined" in line for line in buffer_lines(app, "#ops")))
        await type_line(pilot, "/admin bob")
        await until(
            lambda: any("alice made bob an admin" in line for line in buffer_lines(app, "#ops"))
        )
        await type_line(pilot, "/members")
        await until(lambda: any("bob  online  admin" in line for line in buffer_lines(app, "#ops")))
        await chat.send(Target.room("ops"), "signed hello")
        await until(lambda: any("bob: signed hello" in line for line in buffer_lines(app, "#ops")))
        await type_line(pilot, "hello bob")
        await bob.watch.until(lambda: "hello bob" in bob.watch.texts())
        await type_line(pilot, "/unadmin bob")
        await until(
            lambda: any("removed bob as an admin" in line for line in buffer_lines(app, "#ops"))
        )
        await type_line(pilot, "/remove bob")
        await bob.watch.until(lambda: "#ops: alice removed bob" in bob.watch.notices())
        await type_line(pilot, "/leave")
        await until(lambda: any("alice left" in line for line in buffer_lines(app, "#ops")))


async def test_a_member_whose_key_is_not_accepted_is_shown_stale(
    make_device: MakeDevice, reset_device: Reset, tmp_path: Path
) -> None:
    """bob resets his account key and his new device rejoins #ops: alice, who has not accepted
    the new key, is told in the room once, and /members marks him."""
    alice, bob = await make_device("alice"), await make_device("bob")
    app = chat_app(alice, tmp_path)
    async with running(app) as pilot:
        await type_line(pilot, "/create ops")
        await until(
            lambda: any("alice created the room" in line for line in buffer_lines(app, "#ops"))
        )
        await bob.messenger().actions.join("ops", _open)
        await until(lambda: any("#ops: bob joined" in line for line in buffer_lines(app, "#ops")))
        new_bob = await reset_device("bob")
        await new_bob.messenger().actions.join("ops", _open)  # the rekeyed rejoin
        await until(
            lambda: any(
                "bob rejoined with a new account key" in line for line in buffer_lines(app, "#ops")
            )
        )
        await until(
            lambda: any(
                "bob's account key changed since bob joined" in line
                for line in buffer_lines(app, "#ops")
            )
        )
        await type_line(pilot, "/members")
        await until(
            lambda: any(
                "bob  " in line and "stale: account key changed" in line
                for line in buffer_lines(app, "#ops")
            )
        )


async def test_the_chat_upgrades_the_lobby_and_asks_a_new_password_twice(
    make_device: MakeDevice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ROOM_PASSWORD_ENV, raising=False)
    alice, bob = await make_device("alice"), await make_device("bob")
    await bob.start()  # in the legacy lobby, remembered at registration
    app = chat_app(alice, tmp_path)
    async with running(app) as pilot:
        lobby = lambda: buffer_lines(app, "#lobby")  # noqa: E731
        await until(lambda: any("alice made #lobby end-to-end verified" in x for x in lobby()))
        await until(lambda: any("#lobby: bob joined" in line for line in lobby()))

        await type_line(pilot, "/password")
        await until(lambda: isinstance(app.screen, SecretPrompt))
        await type_line(pilot, "lobby-pass-1")
        await until(lambda: isinstance(app.screen, SecretPrompt))  # asked again
        await type_line(pilot, "lobby-pass-1")
        await until(lambda: any("alice set a new room password" in line for line in lobby()))
        await bob.watch.until(
            lambda: "#lobby: alice set a new room password" in bob.watch.notices()
        )
        assert not any("lobby-pass-1" in line for line in lobby())
