"""One conversation's buffer: its messages and notices, with its own scrollback."""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from securechat.client.history import Entry
from securechat.client.tui.render import COLLAPSE_AT, entry_text

MAX_LINES = 2000  # lines kept on screen per buffer; older ones stay in the history


class MessageLine(Static):
    """One message; click a long one to show it whole."""

    def __init__(self, entry: Entry, *, mine: bool, alert: bool) -> None:
        self.entry = entry
        self.expanded = False
        classes = " ".join(c for c, on in (("own", mine), ("alert", alert)) if on)
        super().__init__(entry_text(entry), classes=f"message {classes} {entry.state}")

    def set_entry(self, entry: Entry) -> None:
        self.remove_class(self.entry.state)
        self.entry = entry
        self.add_class(entry.state)
        self.update(entry_text(entry, expanded=self.expanded))

    def on_click(self) -> None:
        if len(self.entry.body) > COLLAPSE_AT:
            self.expanded = not self.expanded
            self.update(entry_text(self.entry, expanded=self.expanded))


class NoticeLine(Static):
    """A notice or a line of command output."""


class ConversationBuffer(VerticalScroll):
    """The lines of one conversation; scrolls with keys (when focused) and the mouse."""

    can_focus = True

    def __init__(self, conversation: str, me: str, *, id: str) -> None:
        super().__init__(id=id, classes="buffer")
        self.conversation = conversation
        self.me = me
        self.lines: dict[str, MessageLine] = {}
        self.loaded = False

    def on_mount(self) -> None:
        self.anchor()  # follow new lines while at the bottom

    def add_entry(self, entry: Entry, *, alert: bool = False) -> bool:
        """Show ``entry`` (or update its line); True when it is new here."""
        line = self.lines.get(entry.message_id)
        if line is not None:
            line.set_entry(entry)
            return False
        line = MessageLine(entry, mine=entry.outgoing, alert=alert)
        self.lines[entry.message_id] = line
        self.mount(line)
        self._trim()
        return True

    def add_older(self, entries: list[Entry]) -> None:
        """Scrollback from the history, above what is shown (skipping what already is)."""
        older = [e for e in entries if e.message_id not in self.lines]
        lines = [MessageLine(e, mine=e.outgoing, alert=False) for e in older]
        for entry, line in zip(older, lines, strict=True):
            self.lines[entry.message_id] = line
        if lines:
            first = self.children[0] if self.children else None
            self.mount_all(lines, before=first) if first is not None else self.mount_all(lines)

    def add_notice(self, text: Text, level: str = "notice") -> None:
        self.mount(NoticeLine(text, classes=f"notice {level}"))
        self._trim()

    def text_lines(self) -> list[str]:
        """What the buffer holds, as plain text (for tests and the screenshot)."""
        return [str(child.render()) for child in self.children if isinstance(child, Static)]

    def _trim(self) -> None:
        extra = len(self.children) - MAX_LINES
        for child in list(self.children[: max(0, extra)]):
            if isinstance(child, MessageLine):
                self.lines.pop(child.entry.message_id, None)
            child.remove()
