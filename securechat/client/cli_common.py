"""Shared pieces of the subcommands: the options object, opening a client, running coroutines."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import click

from securechat.errors import FailedPrecondition

if TYPE_CHECKING:
    from securechat.client.account import Client, Options
    from securechat.client.config import ClientConfig
    from securechat.client.events import Event
    from securechat.client.history import History
    from securechat.client.vault import Vault

T = TypeVar("T")
CONFIG_KEY = "securechat.client.config"


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


def client_config() -> ClientConfig:
    """The configuration the global options loaded (defaults outside a command)."""
    from securechat.client.config import ClientConfig

    context = click.get_current_context(silent=True)
    found = context.meta.get(CONFIG_KEY) if context is not None else None
    return found if found is not None else ClientConfig()


@contextlib.contextmanager
def unlocked(options: Options) -> Iterator[Vault]:
    """The profile's keystore, unlocked, without any connection (the profile is locked)."""
    from securechat.client.profile import Profile
    from securechat.client.vault import Vault

    profile = Profile.open(options.profile)
    profile.lock()
    try:
        if not profile.has_keystore():
            raise FailedPrecondition(
                f"profile {profile.name!r} has no keys: run `securechat login USER` first"
            )
        yield Vault.open(profile.keystore_path, options.secrets.account_password())
    finally:
        profile.unlock()


async def open_history(vault: Vault) -> History:
    """The profile's encrypted message history (see client/history.py), beside the keystore."""
    from securechat.client.chat_engine import HISTORY_FILE
    from securechat.client.history import History

    path = vault.keystore.path.parent / HISTORY_FILE
    retention = client_config().history.retention_days
    return await History.open(path, vault.history_key(), retention_days=retention)


def echo(text: str = "") -> None:
    click.echo(text)


def name(text: str) -> str:
    """A user or room name from the server, neutralised for the terminal."""
    from securechat.client.display import name as safe_name

    return safe_name(text)


def note(text: str) -> None:
    """Progress and confirmations go to stderr so stdout stays parseable."""
    click.echo(text, err=True)


def note_event(event: Event) -> None:
    """A client event (a notice, a key change) as one line on stderr."""
    from securechat.client.display import describe

    note(describe(event))
