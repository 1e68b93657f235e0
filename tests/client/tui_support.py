"""Helpers for the full-screen chat's pilot tests: a ChatApp on an in-process device."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from textual._context import visible_screen_stack  # private: what the display sets
from textual.pilot import Pilot

from securechat.client.account import Client
from securechat.client.config import ClientConfig
from securechat.client.profile import Profile, SessionToken
from securechat.client.relogin import Credential
from securechat.client.rpc import Endpoint
from securechat.client.tui.app import ChatApp
from securechat.client.tui.sidebar import ConversationItem
from tests.client.live import FAST, WAIT_S, Device

SIZE = (110, 30)


def client_for(device: Device, home: Path, server: str = "localhost:50051") -> Client:
    """A Client around an in-process device, its profile folder under ``home``."""
    address = device.vault.account.address
    profile = Profile.open(f"{device.user}-{address.device_id}", home=home)
    endpoint = Endpoint(server, Path("ca.crt"), Path("client.crt"), Path("client.key"))
    session = SessionToken(device.api.token, 2**62, device.user, address.device_id)
    return Client(profile, endpoint, device.api, session, device.vault)


def chat_app(
    device: Device, home: Path, config: ClientConfig | None = None, server: str = "localhost:50051"
) -> ChatApp:
    client = client_for(device, home, server)
    secret = device.vault.login_secret()  # as `securechat chat` does: never the password
    assert secret is not None
    return ChatApp(
        client, config or ClientConfig(), credential=Credential(device.user, secret), backoff=FAST
    )


async def until(check: Callable[[], bool], timeout: float = WAIT_S) -> None:
    """Wait (polling the running app's loop) until ``check()`` holds."""

    async def wait() -> None:
        while not check():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(wait(), timeout)


@contextlib.asynccontextmanager
async def running(app: ChatApp, size: tuple[int, int] = SIZE) -> AsyncIterator[Pilot[None]]:
    """The app running headless, once its stream is online."""
    async with app.run_test(size=size) as pilot:
        await until(lambda: app.status.state == "online")
        yield pilot


def screen_text(app: ChatApp) -> str:
    """The screen as plain text, line by line (what a terminal would show, without colour).

    Rendered as Textual's own display does it: with the screens under a modal one (the search
    results) as the context it draws them from. Without them, a modal screen re-rendered
    between two display updates drew an empty background, and the docs' screenshot of it
    failed at random on a slow machine."""
    visible_screen_stack.set(list(app._background_screens))  # Screen.render pops from it
    strips = app.screen._compositor.render_strips()
    return "\n".join(strip.text.rstrip() for strip in strips)


def labels(app: ChatApp) -> list[str]:
    """The sidebar's entries as shown (``#lobby``, ``@bob (2)``)."""
    return [str(item.label.render()) for item in app.sidebar.query(ConversationItem)]


def buffer_lines(app: ChatApp, conversation: str) -> list[str]:
    buffer = app.buffers.get(conversation)
    return [] if buffer is None else buffer.text_lines()
