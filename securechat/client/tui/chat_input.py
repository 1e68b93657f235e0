"""The chat input line: Up/Down recall what was typed (memory only), Tab completes."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import Input

from securechat.client import commands

HISTORY_LINES = 500
Names = Callable[[], tuple[Iterable[str], Iterable[str]]]
"""The users and rooms the chat knows, for completion."""


class ChatInput(Input):
    """Never in password mode: secrets are asked on a screen of their own (prompts.py)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "recall(-1)", "previous", show=False),
        Binding("down", "recall(1)", "next", show=False),
        Binding("tab", "complete", "complete", show=False),
    ]

    def __init__(self, names: Names, *, id: str) -> None:
        super().__init__(id=id, placeholder="type a message, or /help")
        self.names = names
        self.recalled: list[str] = []
        self._position = 0

    def remember(self, line: str) -> None:
        if line.strip() and (not self.recalled or self.recalled[-1] != line):
            self.recalled.append(line)
            del self.recalled[:-HISTORY_LINES]
        self._position = len(self.recalled)

    def action_recall(self, step: int) -> None:
        if not self.recalled:
            return
        self._position = max(0, min(len(self.recalled), self._position + step))
        self.value = self.recalled[self._position] if self._position < len(self.recalled) else ""
        self.cursor_position = len(self.value)

    def action_complete(self) -> None:
        before = self.value[: self.cursor_position]
        word = before.split(" ")[-1]
        options = sorted(candidates(before, word, *self.names()))
        if not options:
            return
        common = options[0] if len(options) == 1 else _common_prefix(options)
        if len(common) <= len(word):
            return
        completed = before[: len(before) - len(word)] + common
        if len(options) == 1:
            completed += " "
        self.value = completed + self.value[self.cursor_position :]
        self.cursor_position = len(completed)


def candidates(before: str, word: str, users: Iterable[str], rooms: Iterable[str]) -> list[str]:
    """Completions of ``word`` (the last word of ``before``): commands, @users, rooms."""
    words = before.split()
    if before.startswith("/") and len(words) <= 1 and not before.endswith(" "):
        names = [f"/{n}" for n in (*commands.COMMANDS, *commands.ALIASES)]
        return [n for n in names if n.startswith(word) and n != word]
    if word.startswith("@"):
        return [f"@{u}" for u in users if f"@{u}".startswith(word) and f"@{u}" != word]
    command = words[0].lstrip("/") if words and before.startswith("/") else ""
    command = commands.ALIASES.get(command, command)
    if command in ("w", "verify", "trust", "reject") and len(words) <= 2:
        return [u for u in users if u.startswith(word) and u != word]
    if command in ("join", "leave", "members", "switch") and len(words) <= 2:
        return [r for r in rooms if r.startswith(word) and r != word]
    return []


def _common_prefix(options: list[str]) -> str:
    first, last = min(options), max(options)
    size = 0
    while size < len(first) and first[size] == last[size]:
        size += 1
    return first[:size]
