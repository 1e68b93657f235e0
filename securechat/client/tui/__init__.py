"""The full-screen terminal chat (Textual): a buffer per conversation, history, outbox, alerts.

- ``app``: :class:`ChatApp`, the screen of a :class:`~securechat.client.chat_engine.ChatEngine`
- ``buffer``: one conversation's scrollback; ``sidebar``: conversations and unread counts;
  ``members``: the member list; ``status``: the status bar and reconnect countdown
- ``chat_input``: the input line (recall, completion); ``prompts``: secret prompt, yes/no,
  search results; ``render``: how every line looks (all server text sanitised)
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from securechat.errors import ConfigError, InvalidArgument

if TYPE_CHECKING:
    from securechat.client.account import Client
    from securechat.client.config import ClientConfig
    from securechat.client.relogin import Credential


async def run_tui(
    client: Client, config: ClientConfig, room: str | None, credential: Credential | None
) -> None:
    """Run the chat until /quit or Ctrl+D (needs a terminal); raise what ended it fatally."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise InvalidArgument(
            "`securechat chat` needs a terminal: in scripts use `send` and `inbox`"
        )
    from securechat.client.tui.app import ChatApp

    app = ChatApp(client, config, room=room, credential=credential)
    if config.ui.theme not in app.available_themes:
        known = ", ".join(sorted(app.available_themes))
        raise ConfigError("ui.theme", f"unknown theme {config.ui.theme!r} (known: {known})")
    await app.run_async()
    if app.fatal is not None:
        raise app.fatal
