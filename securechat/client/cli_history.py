"""History subcommands: `history` and `search` over the encrypted local history (no network)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from securechat.client.cli_common import echo, note, open_history, run, unlocked

if TYPE_CHECKING:
    from securechat.client.account import Options
    from securechat.client.history import Entry, HistoryStore

JSON_HELP = "JSON lines: id, conversation, sender, outgoing, text, at_ms, at, state[, error]."


def _conversation(text: str | None) -> str | None:
    """``#room``, ``@user`` or a bare room name, checked (None: every conversation)."""
    from securechat.client.events import Target, check_room, check_user

    if text is None:
        return None
    target = Target.parse(text)
    check_user(target.name) if target.kind == "user" else check_room(target.name)
    return str(target)


def _print(entries: list[Entry], as_json: bool) -> None:
    from securechat.client.display import name, sanitize, stamp
    from securechat.client.tui.render import when

    for entry in entries:
        if as_json:
            echo(json.dumps({**entry.as_json(), "at": stamp(entry.at_ms)}, ensure_ascii=False))
            continue
        state = "" if entry.state in ("sent", "received") else f" [{entry.state}]"
        where = entry.conversation[:1] + name(entry.conversation[1:])
        text = sanitize(entry.body, limit=None)
        if entry.state == "undecryptable":
            text = "(could not be decrypted)"
        echo(f"{when(entry.at_ms)} {where} {name(entry.sender)}: {text}{state}")


def _query(options: Options, ask: object) -> list[Entry]:
    async def go() -> list[Entry]:
        with unlocked(options) as vault:
            history = await open_history(vault)
            try:
                return await history.run(ask)  # type: ignore[arg-type]
            finally:
                await history.close()

    return run(go())


@click.command()
@click.argument("conversation", required=False, metavar="[#ROOM|@USER]")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True,
              help="How many of the latest messages.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_obj
def history(options: Options, conversation: str | None, limit: int, as_json: bool) -> None:
    """Print the latest messages of the local history (of one conversation), oldest first.

    The history is encrypted on this device and never sent to the server."""
    where = _conversation(conversation)

    def ask(store: HistoryStore) -> list[Entry]:
        return store.recent(where, limit)

    entries = _query(options, ask)
    _print(entries, as_json)
    if not entries:
        note("no messages in the local history" + (f" of {where}" if where else ""))


@click.command()
@click.argument("words", nargs=-1, required=True)
@click.option("--in", "conversation", metavar="#ROOM|@USER", help="Search one conversation.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True,
              help="At most this many, newest first.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_obj
def search(
    options: Options, words: tuple[str, ...], conversation: str | None, limit: int, as_json: bool
) -> None:
    """Search the local history for messages containing every one of WORDS (newest first)."""
    from securechat.client.history import fts_query

    query = " ".join(words)
    fts_query(query)  # refuse a query of no words before unlocking anything
    where = _conversation(conversation)

    def ask(store: HistoryStore) -> list[Entry]:
        return store.search(query, where, limit)

    entries = _query(options, ask)
    _print(entries, as_json)
    if not entries:
        note(f"nothing found for {query!r}")


COMMANDS = (history, search)
