"""Screens over the chat: the secret prompt, a yes/no question and search results.

The secret prompt is a screen of its own with its own masked input: the chat input line is
never switched to password mode and never sees the secret, so nothing after a prompt is
masked and the secret never enters the input history (the Up key).
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from securechat.client.history import Entry
from securechat.client.tui.render import conversation_name, entry_text


class SecretPrompt(ModalScreen[str | None]):
    """Asks for one secret (masked); Enter gives it, Escape cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "cancel")]

    def __init__(self, prompt: str) -> None:
        super().__init__(classes="dialog")
        self.prompt = prompt

    def compose(self) -> ComposeResult:
        with Vertical(classes="box"):
            yield Label(Text(self.prompt))
            yield Input(password=True, id="secret", placeholder="hidden; Escape cancels")

    def on_input_submitted(self, message: Input.Submitted) -> None:
        message.stop()  # never reaches the chat
        self.dismiss(message.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmPrompt(ModalScreen[bool]):
    """A yes/no question: y answers yes; n, Enter or Escape answer no."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "yes"),
        Binding("n", "answer(False)", "no"),
        Binding("enter", "answer(False)", "no"),
        Binding("escape", "answer(False)", "no"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__(classes="dialog")
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="box"):
            yield Label(Text(f"{self.question} [y/N]"))

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class SearchResults(ModalScreen[None]):
    """What /search found, newest first; Escape or q closes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "close"),
        Binding("q", "close", "close"),
    ]

    def __init__(self, query: str, entries: list[Entry]) -> None:
        super().__init__(classes="dialog")
        self.search_query = query
        self.entries = entries

    def compose(self) -> ComposeResult:
        with Vertical(classes="box results"):
            found = len(self.entries)
            yield Label(Text(f"{found} message(s) with “{self.search_query}” (Escape closes)"))
            with VerticalScroll(id="results"):
                for entry in self.entries:
                    line = Text(conversation_name(entry.conversation) + " ", style="bold")
                    line.append_text(entry_text(entry))
                    yield Static(line, classes="result")

    def action_close(self) -> None:
        self.dismiss(None)
