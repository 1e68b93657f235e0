"""Message subcommands: send, inbox, who, and the interactive chat."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TYPE_CHECKING

import click

from securechat.client.cli_common import echo, note, opened, run

if TYPE_CHECKING:
    from securechat.client.account import Client, Options
    from securechat.client.events import Event

FETCH_LIMIT = 500
POLL_S = 0.5


@click.command()
@click.option("--to", "to_user", metavar="USER", help="Send a private message to USER.")
@click.option("--room", metavar="ROOM", help="Send to ROOM (you must be a member).")
@click.argument("text", nargs=-1, required=True)
@click.pass_obj
def send(options: Options, to_user: str | None, room: str | None, text: tuple[str, ...]) -> None:
    """Send TEXT (end-to-end encrypted); TEXT "-" reads it from stdin."""
    from securechat.client.events import Target, check_room, check_user
    from securechat.client.messenger import Messenger
    from securechat.client.rpc.sender import Sender, UnaryOutlet

    if (to_user is None) == (room is None):
        raise click.UsageError("give exactly one of --to USER or --room ROOM")
    target = Target.user(check_user(to_user)) if to_user else Target.room(check_room(room or ""))
    body = sys.stdin.read() if text == ("-",) else " ".join(text)

    async def go() -> None:
        async with opened(options, keys=True) as client:
            assert client.vault is not None
            messenger = Messenger(client.api, client.vault)
            # The unary Send, not a Chat stream: a one-shot command should not replay this
            # device's mailbox or show it online to its contacts for a moment. The sending
            # logic (recipients, stale_devices, re-encryption) is the chat's own Sender.
            sender = Sender(UnaryOutlet(client.api), messenger.book, _note_event)
            future = await messenger.submit(sender, target, body.rstrip("\n"))
            sent = await future
            note(f"sent to {target} ({len(sent.devices)} device(s)), id {sent.client_message_id}")

    run(go())


def _note_event(event: Event) -> None:
    from securechat.client.display import describe

    note(describe(event))


async def _drain(client: Client, as_json: bool) -> int:
    """Fetch, decrypt, print, save, ack every waiting delivery; the number of deliveries.

    Pages are bounded in bytes by the server as well as by FETCH_LIMIT, so a short page is not
    the end: read until a page comes back empty."""
    from securechat.client.display import describe, message_json, undecryptable_json
    from securechat.client.events import MessageEvent, UndecryptableEvent
    from securechat.client.messenger import Messenger

    assert client.vault is not None
    vault = client.vault
    messenger = Messenger(client.api, vault)
    total = 0
    while True:
        deliveries = await client.api.fetch(vault.state.last_ack, FETCH_LIMIT)
        if not deliveries:
            return total
        for delivery in deliveries:
            for event in messenger.open(delivery):
                if as_json and isinstance(event, MessageEvent):
                    echo(message_json(event))
                elif as_json and isinstance(event, UndecryptableEvent):
                    echo(undecryptable_json(event))
                elif as_json:
                    note(describe(event))
                else:
                    echo(describe(event, client.user))
        highest = max(d.seq for d in deliveries)
        vault.state.last_ack = max(vault.state.last_ack, highest)
        vault.save()
        await client.api.ack(highest)
        total += len(deliveries)


@click.command()
@click.option("--wait", type=click.FloatRange(min=0), default=0, metavar="SECONDS",
              help="Wait up to SECONDS for a first message when none is waiting.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True,
              help="JSON lines: id, sender, conversation, text, sent_at.")  # fmt: skip
@click.pass_obj
def inbox(options: Options, wait: float, as_json: bool) -> None:
    """Print (decrypted) messages received since the last run, and acknowledge them."""

    async def go() -> None:
        async with opened(options, keys=True) as client:
            deadline = time.monotonic() + wait
            while True:
                if await _drain(client, as_json) or time.monotonic() >= deadline:
                    return
                await asyncio.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))

    run(go())


@click.command()
@click.pass_obj
def who(options: Options) -> None:
    """List who is online among the people you share a room or conversation with."""
    from securechat.client.display import clock, sanitize

    async def go() -> None:
        async with opened(options) as client:
            users = await client.api.list_online()
            for user in sorted(users, key=lambda u: u.user):
                echo(f"{sanitize(user.user)}  online since {clock(user.since_ms)}")
            if not users:
                note("nobody is online")

    run(go())


@click.command()
@click.option("--room", default="lobby", show_default=True, help="Room to start in.")
@click.pass_obj
def chat(options: Options, room: str) -> None:
    """Interactive chat in this terminal (type /help inside)."""
    from securechat.client.chat_ui import run_chat
    from securechat.client.events import check_room

    check_room(room)

    async def go() -> None:
        async with opened(options, keys=True) as client:
            await run_chat(client, room)

    run(go())


COMMANDS = (send, inbox, who, chat)
