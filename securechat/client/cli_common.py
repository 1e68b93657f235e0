"""Shared pieces of the subcommands: the options object, opening a client, running coroutines."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from securechat.client.account import Client, Options
    from securechat.client.events import Event

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one command's coroutine on a fresh event loop."""
    return asyncio.run(coro)


@contextlib.asynccontextmanager
async def opened(
    options: Options, *, keys: bool = False, login: bool = True
) -> AsyncIterator[Client]:
    """A connected client: logged in (``login``) and with its keystore unlocked (``keys``)."""
    from securechat.client import account

    client = account.connect(options, lock=keys)
    try:
        if login:
            await account.resume(client, options.secrets if keys else None)
        yield client
    finally:
        await client.close()


def echo(text: str = "") -> None:
    click.echo(text)


def note(text: str) -> None:
    """Progress and confirmations go to stderr so stdout stays parseable."""
    click.echo(text, err=True)


def note_event(event: Event) -> None:
    """A client event (a notice, a key change) as one line on stderr."""
    from securechat.client.display import describe

    note(describe(event))
