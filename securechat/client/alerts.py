"""What deserves the user's attention: private messages, @mentions and keywords (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from securechat.client.config import NotificationsConfig
from securechat.client.history import Entry


@dataclass(frozen=True)
class Alert:
    """How to draw attention to one message: highlight it, and ring the bell."""

    highlight: bool
    bell: bool
    why: str  # "private" | "mention" | "keyword"


def mentions(text: str, word: str) -> bool:
    """Whether ``word`` (or ``@word``) occurs in ``text`` as a whole word, ignoring case."""
    pattern = rf"(?<![\w@]){re.escape('@' + word)}(?!\w)|(?<![\w@]){re.escape(word)}(?!\w)"
    return re.search(pattern, text, re.IGNORECASE) is not None


def alert_for(entry: Entry, me: str, config: NotificationsConfig) -> Alert | None:
    """The alert for a message that just arrived (None: nothing special)."""
    if entry.outgoing or entry.state != "received":
        return None
    why = ""
    if config.private and entry.target.kind == "user":
        why = "private"
    elif config.mentions and mentions(entry.body, me):
        why = "mention"
    elif any(mentions(entry.body, keyword) for keyword in config.keywords):
        why = "keyword"
    if not why:
        return None
    return Alert(highlight=True, bell=config.bell, why=why)
