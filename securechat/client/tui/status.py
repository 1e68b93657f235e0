"""The status bar: server, user, conversation, connection state and the reconnect countdown."""

from __future__ import annotations

import asyncio

from rich.text import Text
from textual.widgets import Static

from securechat.client.display import sanitize
from securechat.client.events import ConnectionEvent

STATE_STYLES = {"online": "bold green", "reconnecting": "bold yellow", "offline": "bold red"}


class StatusBar(Static):
    """One line at the bottom; :meth:`tick` refreshes the countdown."""

    def __init__(self, server: str, user: str, *, id: str) -> None:
        super().__init__(id=id)
        self.server = server
        self.user = user
        self.conversation = ""
        self.state = "connecting"
        self.detail = ""
        self.retry_at = 0.0
        self.pending = 0

    def set_connection(self, event: ConnectionEvent) -> None:
        self.state = event.state
        if event.state == "online":
            self.detail, self.retry_at = "", 0.0
        elif event.detail:
            self.detail = event.detail
        if event.retry_in_s:
            self.retry_at = asyncio.get_running_loop().time() + event.retry_in_s
        self.tick()

    def tick(self) -> None:
        self.update(self.line())

    def countdown(self) -> str:
        if self.state != "reconnecting" or not self.retry_at:
            return ""
        left = self.retry_at - asyncio.get_running_loop().time()
        return f" in {left:.0f}s" if left > 0.5 else " now"

    def line(self) -> Text:
        text = Text(f" {sanitize(self.server, limit=80)} │ {self.user} │ {self.conversation} │ ")
        text.append(self.state + self.countdown(), style=STATE_STYLES.get(self.state, "bold"))
        if self.pending:
            text.append(f" │ {self.pending} waiting to be sent")
        if self.detail and self.state != "online":
            text.append(f" │ {sanitize(self.detail, limit=90)}", style="italic")
        text.append(" │ /help")
        return text
