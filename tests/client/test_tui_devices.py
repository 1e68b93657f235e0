"""Devices and key changes in the full-screen chat: told in the conversation they concern, with
the chat's own commands to resolve them (issue 16 on issue 14's notices)."""

from __future__ import annotations

from pathlib import Path

from securechat.client.events import IdentityEvent, Target
from tests.client.conftest import MakeDevice
from tests.client.test_tui import type_line
from tests.client.tui_support import buffer_lines, chat_app, running, until


def _has(lines: list[str], text: str) -> bool:
    return any(text in line for line in lines)


async def test_a_contact_s_new_device_is_told_in_the_conversation_with_them(
    make_device: MakeDevice, tmp_path: Path
) -> None:
    alice, bob = await make_device("alice"), await make_device("bob")
    chat = await bob.start()
    app = chat_app(alice, tmp_path)
    async with running(app):
        await chat.send(Target.user("alice"), "hi from my phone")
        await until(lambda: _has(buffer_lines(app, "@bob"), "bob: hi from my phone"))
        await make_device("bob", register=False, link_from=bob)
        await until(lambda: _has(buffer_lines(app, "@bob"), "bob added a device"))
        assert not _has(buffer_lines(app, "#lobby"), "added a device")


async def test_devices_and_key_changes_name_the_chat_s_commands(
    make_device: MakeDevice, tmp_path: Path
) -> None:
    alice = await make_device("alice")
    app = chat_app(alice, tmp_path)
    async with running(app) as pilot:
        await type_line(pilot, "/devices")
        await until(lambda: _has(buffer_lines(app, "#lobby"), "(this device)"))
        assert _has(buffer_lines(app, "#lobby"), "account key ")

        app.show_event(IdentityEvent("carol", False, 0))
        shown = buffer_lines(app, "@carol")
        assert _has(shown, "/verify carol") and _has(shown, "/reject carol")
        assert not _has(shown, "securechat keys")
