"""The list of conversations (rooms, then private ones) with their unread counts."""

from __future__ import annotations

from textual.widgets import Label, ListItem, ListView

from securechat.client.tui.render import label_text


def order(conversation: str) -> tuple[int, str]:
    """Rooms first, then private conversations, each by name."""
    return (0 if conversation.startswith("#") else 1, conversation)


class ConversationItem(ListItem):
    def __init__(self, conversation: str) -> None:
        self.conversation = conversation
        self.label = Label(label_text(conversation, 0, False))
        super().__init__(self.label, classes="conversation")

    def show(self, unread: int, highlighted: bool) -> None:
        self.label.update(label_text(self.conversation, unread, highlighted))
        self.set_class(bool(unread), "unread")
        self.set_class(highlighted and bool(unread), "highlighted")


class ConversationList(ListView):
    """Click or Enter (when focused) switches; Ctrl+N / Ctrl+P work from anywhere."""

    def __init__(self, *, id: str) -> None:
        super().__init__(id=id)
        self.items: dict[str, ConversationItem] = {}

    def ensure(self, conversation: str) -> ConversationItem:
        item = self.items.get(conversation)
        if item is not None:
            return item
        item = ConversationItem(conversation)
        self.items[conversation] = item
        names = sorted(self.items, key=order)
        position = names.index(conversation)
        after = [self.items[n] for n in names[position + 1 :] if self.items[n].parent is not None]
        if after:
            self.mount(item, before=after[0])
        else:
            self.append(item)
        return item

    def select(self, conversation: str) -> None:
        for index, item in enumerate(self.children):
            if isinstance(item, ConversationItem) and item.conversation == conversation:
                self.index = index
                return

    def neighbour(self, conversation: str, step: int) -> str | None:
        names = [c.conversation for c in self.children if isinstance(c, ConversationItem)]
        if conversation not in names or len(names) < 2:
            return None
        return names[(names.index(conversation) + step) % len(names)]
