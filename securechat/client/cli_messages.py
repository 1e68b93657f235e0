"""Message subcommands: send, inbox, who, and the interactive chat."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import TYPE_CHECKING

import click

from securechat.client.cli_common import echo, note, note_event, opened, run

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from securechat.client.account import Client, Options
    from securechat.client.events import Target
    from securechat.client.history import History
    from securechat.client.messenger import Messenger
    from securechat.client.rpc.sender import Receipt, Sender
    from securechat.errors import SecureChatError

FETCH_LIMIT = 500
STDIN_HELP = "Send every line of stdin as one message (one unlock for all of them)."
BATCH_HELP = 'Read JSON lines {"to": USER | "room": ROOM, "text": TEXT} from stdin.'
RESULT_HELP = "One JSON result per message: line, conversation, id, ok, error, code."
POLL_S = 0.5


@click.command()
@click.option("--to", "to_user", metavar="USER", help="Send a private message to USER.")
@click.option("--room", metavar="ROOM", help="Send to ROOM (you must be a member).")
@click.option("--stdin", "lines", is_flag=True, help=STDIN_HELP)
@click.option("--batch", is_flag=True, help=BATCH_HELP)
@click.option("--json", "as_json", is_flag=True, help=RESULT_HELP)
@click.argument("text", nargs=-1)
@click.pass_obj
def send(
    options: Options,
    to_user: str | None,
    room: str | None,
    lines: bool,
    batch: bool,
    as_json: bool,
    text: tuple[str, ...],
) -> None:
    """Send TEXT (end-to-end encrypted); TEXT "-" reads it from stdin.

    --stdin and --batch keep one connection and one unlocked keystore for every message, in
    order, so scripts pay the password derivation once. The exit code is that of the first
    failure (the others are still sent)."""
    from securechat.client.events import Target, check_room, check_user

    if batch and (to_user or room or lines or text):
        raise click.UsageError("--batch takes its targets from stdin: no --to/--room/--stdin/TEXT")
    if not batch and (to_user is None) == (room is None):
        raise click.UsageError("give exactly one of --to USER or --room ROOM")
    if lines and text:
        raise click.UsageError("--stdin reads the messages from stdin: give no TEXT")
    if not (batch or lines or text):
        raise click.UsageError("give TEXT, or --stdin, or --batch")
    fixed = None
    if not batch:
        fixed = Target.user(check_user(to_user)) if to_user else Target.room(check_room(room or ""))
    if batch or lines:
        code = run(_send_stream(options, fixed, as_json))
        if code:
            raise click.exceptions.Exit(code)
        return
    assert fixed is not None
    body = sys.stdin.read() if text == ("-",) else " ".join(text)
    run(_send_stream(options, fixed, as_json, only=body.rstrip("\n")))


async def _send_stream(
    options: Options, fixed: Target | None, as_json: bool, *, only: str | None = None
) -> int:
    """Send ``only``, or each message read from stdin, in order; the first failure's code."""
    from securechat.client.cli_common import open_history
    from securechat.client.messenger import Messenger
    from securechat.client.rpc.sender import Sender, UnaryOutlet
    from securechat.errors import SecureChatError

    first_failure = 0
    async with opened(options, keys=True) as client:
        assert client.vault is not None
        messenger = Messenger(client.api, client.vault, note_event)
        # The unary Send, not a Chat stream: a script should not replay this device's mailbox
        # or show it online to its contacts. The sending logic is the chat's own Sender.
        sender = Sender(UnaryOutlet(client.api), messenger.book, note_event)
        history = await open_history(client.vault)
        try:
            async for number, target, body in _messages(fixed, only):
                try:
                    sent = await _send_one(history, messenger, sender, target, body)
                except SecureChatError as exc:
                    if only is not None:
                        raise
                    first_failure = first_failure or exc.exit_code
                    _report(as_json, number, str(target), error=exc)
                    continue
                _report(as_json, number, str(target), sent_id=sent.client_message_id,
                        devices=len(sent.devices))  # fmt: skip
        finally:
            await history.close()
    return first_failure


async def _send_one(
    history: History, messenger: Messenger, sender: Sender, target: Target, body: str
) -> Receipt:
    """Keep ``body`` in the history, send it, and record how that went."""
    from securechat.errors import SecureChatError

    me = messenger.me.user
    entry = await history.run(lambda s: s.add_outgoing(target, me, body))
    try:
        future = await messenger.submit(sender, target, body, message_id=entry.message_id)
        sent = await future
    except SecureChatError as exc:
        reason = exc.message
        await history.run(lambda s: s.mark_failed(entry.message_id, reason))
        raise
    await history.run(lambda s: s.mark_sent(entry.message_id, sent.server_time_ms))
    return sent


async def _messages(
    fixed: Target | None, only: str | None
) -> AsyncIterator[tuple[int, Target, str]]:
    """(line number, target, text) for ``only`` or for each line of stdin, read as it comes."""
    from securechat.client.events import Target, check_room, check_user
    from securechat.errors import InvalidArgument

    if only is not None:
        assert fixed is not None
        yield 1, fixed, only
        return
    number = 0
    while line := await asyncio.to_thread(sys.stdin.readline):
        number += 1
        line = line.rstrip("\r\n")
        if fixed is not None:
            if line.strip():
                yield number, fixed, line
            continue
        try:
            item = json.loads(line)
            if not isinstance(item, dict) or ("to" in item) == ("room" in item):
                raise ValueError("exactly one of to or room")
            text = item.get("text")
            if not isinstance(text, str):
                raise ValueError("text must be a string")
            target = (
                Target.user(check_user(str(item["to"]))) if "to" in item
                else Target.room(check_room(str(item["room"])))
            )  # fmt: skip
        except (ValueError, InvalidArgument) as exc:
            raise InvalidArgument(
                f'--batch line {number}: expected {{"to" or "room", "text"}} ({exc})'
            ) from None
        yield number, target, text


def _report(
    as_json: bool,
    number: int,
    conversation: str,
    *,
    sent_id: str = "",
    devices: int = 0,
    error: SecureChatError | None = None,
) -> None:
    if as_json:
        result: dict[str, object] = {"line": number, "conversation": conversation}
        if error is None:
            result.update(ok=True, id=sent_id, devices=devices)
        else:
            result.update(ok=False, error=error.message, code=error.exit_code)
        echo(json.dumps(result, ensure_ascii=False))
    elif error is None:
        note(f"sent to {conversation} ({devices} device(s)), id {sent_id}")
    else:
        from securechat.client.display import sanitize

        note(f"line {number}: not sent to {conversation}: {sanitize(error.message, limit=None)}")


async def _drain(client: Client, as_json: bool) -> int:
    """Fetch, decrypt, store, print, save, ack every waiting delivery; how many there were.

    Pages are bounded in bytes by the server as well as by FETCH_LIMIT, so a short page is not
    the end: read until a page comes back empty."""
    from securechat.client.cli_common import open_history
    from securechat.client.messenger import Messenger

    assert client.vault is not None
    vault = client.vault
    messenger = Messenger(client.api, vault, note_event)
    history = await open_history(vault)
    try:
        return await _drain_into(client, messenger, history, as_json)
    finally:
        await history.close()


async def _drain_into(client: Client, messenger: Messenger, history: History, as_json: bool) -> int:
    from securechat.client.display import describe, message_json, undecryptable_json
    from securechat.client.events import MessageEvent, UndecryptableEvent

    assert client.vault is not None
    vault = client.vault
    me = client.user
    total = 0
    while True:
        deliveries = await client.api.fetch(vault.state.last_ack, FETCH_LIMIT)
        if not deliveries:
            return total
        for delivery in deliveries:
            events = await messenger.open(delivery)
            await history.run(lambda s, found=events: s.record(found, me))  # type: ignore[misc]
            for event in events:
                if as_json and isinstance(event, MessageEvent):
                    echo(message_json(event))
                elif as_json and isinstance(event, UndecryptableEvent):
                    echo(undecryptable_json(event))
                elif as_json:
                    note(describe(event))
                else:
                    echo(describe(event, client.user))
        state = vault.state
        before = (state.last_ack, dict(state.room_acks))
        state.last_ack = max(state.last_ack, *(d.seq for d in deliveries))
        vault.save()  # room positions (state.room_acks) with it
        await client.api.ack(state.last_ack, state.room_acks)
        total += len(deliveries)
        if (state.last_ack, state.room_acks) == before:
            return total  # nothing moved: what is left waits for its room key


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
    from securechat.client.display import clock, name

    async def go() -> None:
        async with opened(options) as client:
            users = await client.api.list_online()
            for user in sorted(users, key=lambda u: u.user):
                echo(f"{name(user.user)}  online since {clock(user.since_ms)}")
            if not users:
                note("nobody is online")

    run(go())


@click.command()
@click.option("--room", help="Room to start in [default: the config's ui.room, or lobby].")
@click.pass_obj
def chat(options: Options, room: str | None) -> None:
    """Full-screen interactive chat in this terminal (type /help inside)."""
    from securechat.client.cli_common import client_config
    from securechat.client.events import check_room
    from securechat.client.relogin import Credential
    from securechat.client.tui import run_tui

    if room is not None:
        check_room(room)
    config = client_config()

    async def go() -> None:
        async with opened(options, keys=True) as client:
            # The login secret derived when the keystore was unlocked, held in memory only, to
            # log in again when the session expires (relogin.py); never the password.
            assert client.vault is not None
            secret = client.vault.login_secret()
            credential = Credential(client.user, secret) if secret else None
            await run_tui(client, config, room, credential)

    run(go())


COMMANDS = (send, inbox, who, chat)
