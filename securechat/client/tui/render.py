"""How messages, notices and conversation names look: Rich Text, every server string sanitised.

Nothing from a peer or the server is ever parsed as markup: text is appended to ``Text``
objects as plain strings, after :func:`~securechat.client.display.sanitize` removed escape
sequences and made control characters visible. A message keeps its line breaks, each further
line marked as part of it (``│``), so one message can never pose as several.
"""

from __future__ import annotations

import time
from datetime import date, datetime

from rich.text import Text

from securechat.client.display import name, sanitize, sanitize_lines
from securechat.client.history import Entry

COLLAPSE_AT = 4000  # longer messages are shown cut, with a visible way to expand them
STATE_MARKS = {"pending": " (sending…)", "failed": " (not sent)"}


def when(ms: int, today: date | None = None) -> str:
    """HH:MM for today, YYYY-MM-DD HH:MM for any other day (local time)."""
    moment = datetime.fromtimestamp(ms / 1000)
    if moment.date() == (today or date.today()):
        return moment.strftime("%H:%M")
    return moment.strftime("%Y-%m-%d %H:%M")


def conversation_name(conversation: str) -> str:
    """``#room`` or ``@user`` with the name made safe."""
    return conversation[:1] + name(conversation[1:])


def entry_text(entry: Entry, *, expanded: bool = False, today: date | None = None) -> Text:
    """One message: time (with the date when not today), sender, text, delivery state."""
    text = Text()
    text.append(f"[{when(entry.at_ms, today)}] ", style="dim")
    if entry.state == "undecryptable":
        text.append(f"! a message from {name(entry.sender)} could not be decrypted", "bold red")
        return text
    text.append(name(entry.sender), style="bold")
    text.append(": ")
    body = entry.body
    cut = ""
    if len(body) > COLLAPSE_AT and not expanded:
        cut = f" … ({len(body) - COLLAPSE_AT} more characters: click to show all)"
        body = body[:COLLAPSE_AT]
    for index, line in enumerate(sanitize_lines(body)):
        if index:
            text.append("\n  │ ", style="dim")
        text.append(line)
    if cut:
        text.append(cut, style="italic dim")
    mark = STATE_MARKS.get(entry.state)
    if mark:
        text.append(mark, style="italic dim")
    if entry.state == "failed" and entry.error:
        text.append(f"\n  ✗ {sanitize(entry.error, limit=None)} (/retry sends it again)", "red")
    return text


def notice_text(line: str, level: str = "notice") -> Text:
    """A line of client output or a notice (``level``: notice, warning or alert)."""
    style = {"notice": "dim", "warning": "yellow", "alert": "bold red"}.get(level, "")
    return Text(sanitize(line, limit=None), style=style)


def label_text(conversation: str, unread: int, highlighted: bool) -> Text:
    """A sidebar entry: the conversation and its unread count."""
    text = Text(conversation_name(conversation))
    if unread:
        text.append(f" ({unread})", style="bold red" if highlighted else "bold")
    return text


def now_ms() -> int:
    return int(time.time() * 1000)
