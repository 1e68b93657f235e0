"""The member list of the current room, with who is online."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from securechat.client.display import name


class MemberList(Static):
    """Members of one room (hidden in private conversations)."""

    def show_members(self, room: str, members: list[tuple[str, bool]]) -> None:
        text = Text(f"#{name(room)}\n", style="bold")
        online = sum(1 for _, up in members if up)
        text.append(f"{len(members)} members, {online} online\n\n", style="dim")
        for user, up in sorted(members, key=lambda m: (not m[1], m[0])):
            text.append("● " if up else "○ ", style="green" if up else "dim")
            text.append(name(user) + "\n")
        self.update(text)
