"""The full-screen chat app: conversations, buffers, members, input and status, on the engine.

:class:`ChatApp` is the :class:`~securechat.client.chat_engine.View` of a
:class:`~securechat.client.chat_engine.ChatEngine`: the engine streams, stores and sends; the
app shows. Input lines are handled one at a time by a worker, never in a message handler, so
a command waiting on the server (or on a prompt) never freezes the screen.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Iterable
from typing import Any, ClassVar, TypeVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import ContentSwitcher, Input, ListView, Static

from securechat.client.account import Client
from securechat.client.alerts import alert_for
from securechat.client.chat_engine import ChatEngine
from securechat.client.config import ClientConfig
from securechat.client.display import describe, membership
from securechat.client.events import (
    ConnectionEvent,
    Event,
    IdentityEvent,
    MembershipEvent,
    NoticeEvent,
    PresenceEvent,
    Target,
)
from securechat.client.history import Entry
from securechat.client.key_change import blocked_hint
from securechat.client.relogin import Credential
from securechat.client.rpc.link import Backoff
from securechat.client.tui.buffer import ConversationBuffer
from securechat.client.tui.chat_input import ChatInput
from securechat.client.tui.members import MemberList
from securechat.client.tui.prompts import ConfirmPrompt, SearchResults, SecretPrompt
from securechat.client.tui.render import conversation_name, notice_text
from securechat.client.tui.sidebar import ConversationItem, ConversationList
from securechat.client.tui.status import StatusBar
from securechat.errors import IdentityChanged, SecureChatError

T = TypeVar("T")
SCROLLBACK = 300  # messages loaded from the history when a buffer opens
PURGE_EVERY_S = 3600.0


class ChatApp(App[None]):
    """One interactive session for a logged-in client with an unlocked keystore."""

    CSS_PATH = "chat.tcss"
    ENABLE_COMMAND_PALETTE = False
    TITLE = "securechat"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+n,alt+down", "neighbour(1)", "next", priority=True),
        Binding("ctrl+p,alt+up", "neighbour(-1)", "previous", priority=True),
        Binding("pageup", "scroll(-1)", "scroll up", priority=True),
        Binding("pagedown", "scroll(1)", "scroll down", priority=True),
        Binding("ctrl+d,ctrl+c", "leave", "quit", priority=True),
    ]

    def __init__(
        self,
        client: Client,
        config: ClientConfig,
        *,
        room: str | None = None,
        credential: Credential | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__()
        self.client = client
        self.config = config
        self.me = client.user
        self.start_room = room or config.ui.room
        self.engine = ChatEngine(client, config, self, credential=credential, backoff=backoff)
        self._current = Target.room(self.start_room)
        self.buffers: dict[str, ConversationBuffer] = {}
        self.unread: dict[str, int] = {}
        self.highlighted: set[str] = set()
        self.fatal: SecureChatError | None = None
        self.bells = 0
        self.terminal_title = ""
        self._lines: asyncio.Queue[str] = asyncio.Queue()
        self._down = False
        self._prepared = False
        self._tasks: set[asyncio.Task[object]] = set()

    # -- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            yield ConversationList(id="sidebar")
            with Vertical(id="center"):
                yield Static(id="topic")
                yield ContentSwitcher(id="buffers")
                yield ChatInput(self._names, id="input")
            yield MemberList(id="members")
        yield StatusBar(self.client.endpoint.server, self.me, id="status")

    @property
    def status(self) -> StatusBar:
        return self.query_one(StatusBar)

    @property
    def sidebar(self) -> ConversationList:
        return self.query_one(ConversationList)

    @property
    def input(self) -> ChatInput:
        return self.query_one(ChatInput)

    async def on_mount(self) -> None:
        self.theme = self.config.ui.theme
        await self.engine.open()
        store = self.engine.store
        self.unread = await store.run(lambda s: s.unread())
        for conversation in await store.run(lambda s: s.conversations()):
            self._buffer(conversation)
        self.switch(self._current)
        self.input.focus()
        self.run_worker(self._network(), name="network", exit_on_error=False)
        self.run_worker(self._read_lines(), name="input", exit_on_error=False)
        self.set_interval(0.5, self.status.tick)
        self.set_interval(PURGE_EVERY_S, self._purge)

    async def _network(self) -> None:
        await self._prepare()
        try:
            await self.engine.run()
        except SecureChatError as exc:
            self.fatal = exc
            self.status.set_connection(ConnectionEvent("offline", exc.message, exc.code))
            self.say(f"!! {exc.message}: the chat is offline (your history is still here); "
                     "/quit leaves", warning=True)  # fmt: skip

    async def _prepare(self) -> None:
        """Join the start room and learn rooms and people (again once online, if it failed)."""
        try:
            await self.engine.prepare(self.start_room)
        except SecureChatError as exc:
            self.say(f"! {exc.message}", warning=True)
            return
        self._prepared = True
        for room in sorted(self.engine.rooms):
            self._buffer(f"#{room}")
        self._refresh_members()

    async def on_unmount(self) -> None:
        self.engine.stop()
        await self.engine.close()

    # -- input -----------------------------------------------------------------------------

    def on_input_submitted(self, message: Input.Submitted) -> None:
        if message.input is not self.input:
            return
        line = message.value
        self.input.remember(line)
        self.input.value = ""
        self._lines.put_nowait(line)

    async def _read_lines(self) -> None:
        """Handle typed lines one by one (a prompt or a slow server never blocks the screen)."""
        while True:
            line = await self._lines.get()
            try:
                if not await self.engine.handle(line):
                    self.exit()
                    return
            except SecureChatError as exc:
                self.say(f"! {exc.message}", warning=True)

    def on_list_view_selected(self, message: ListView.Selected) -> None:
        if isinstance(message.item, ConversationItem):
            self.switch(Target.parse(message.item.conversation))
            self.input.focus()

    def action_neighbour(self, step: int) -> None:
        other = self.sidebar.neighbour(str(self._current), step)
        if other is not None:
            self.switch(Target.parse(other))

    def action_scroll(self, direction: int) -> None:
        buffer = self._buffer(str(self._current))
        buffer.scroll_page_down() if direction > 0 else buffer.scroll_page_up()

    def action_leave(self) -> None:
        self.exit()

    def _names(self) -> tuple[Iterable[str], Iterable[str]]:
        return self.engine.users, self.engine.rooms

    # -- the View: what the engine shows ---------------------------------------------------

    @property
    def current(self) -> Target:
        return self._current

    def switch(self, target: Target) -> None:
        conversation = str(target)
        self._current = target
        buffer = self._buffer(conversation)
        self.query_one(ContentSwitcher).current = buffer.id
        self.sidebar.select(conversation)
        self.unread.pop(conversation, None)
        self.highlighted.discard(conversation)
        self._mark_read(conversation)
        self.status.conversation = conversation_name(conversation)
        self.status.tick()
        self.query_one("#topic", Static).update(conversation_name(conversation))
        self.query_one(MemberList).set_class(
            target.kind != "room" or not self.config.ui.members, "hidden"
        )
        self._refresh_members()
        self._refresh_counts()

    def show_entry(self, entry: Entry, error: SecureChatError | None) -> None:
        buffer = self._buffer(entry.conversation)
        alert = alert_for(entry, self.me, self.config.notifications)
        new = buffer.add_entry(entry, alert=alert is not None)
        if error is not None:
            self._explain(entry, error)
        if not new or entry.outgoing:
            self._pending_count()
            return
        if alert is not None and alert.bell:
            self.ring()
        if entry.conversation == str(self._current):
            self._mark_read(entry.conversation)
            return
        self.unread[entry.conversation] = self.unread.get(entry.conversation, 0) + 1
        if alert is not None:
            self.highlighted.add(entry.conversation)
        self._refresh_counts()

    def show_event(self, event: Event) -> None:
        if isinstance(event, ConnectionEvent):
            self.status.set_connection(event)
            if self._worth_showing(event):
                self.say(describe(event), warning=event.state != "online")
            if event.state == "online" and not self._prepared:
                self._spawn(self._prepare())
            elif event.state == "online":
                self._refresh_members()
            return
        if isinstance(event, MembershipEvent):
            where = f"#{event.room}" if event.room else f"@{event.user}"
            self._note(where, f"* {membership(event)}")
            if event.room and str(self._current) == f"#{event.room}":
                self._refresh_members()
        elif isinstance(event, PresenceEvent):
            if f"@{event.user}" in self.buffers:
                self._note(f"@{event.user}", describe(event))
            if self._current.kind == "room":
                self._refresh_members()
        elif isinstance(event, IdentityEvent):
            conversation = f"@{event.user}"
            text = describe(event, self.me, "chat")
            self._buffer(conversation).add_notice(notice_text(text, "alert"), "alert")
            self.highlighted.add(conversation)
            if conversation != str(self._current):
                self.unread[conversation] = self.unread.get(conversation, 0) + 1
            self.ring()
            self._refresh_counts()
        elif isinstance(event, NoticeEvent):
            where = str(event.target) if event.target is not None else str(self._current)
            self._note(where, describe(event), "warning" if event.warning else "notice")
            if event.target is not None and event.target == self._current:
                self._refresh_members()  # a signed room's changes come as notices

    def say(self, text: str, *, target: Target | None = None, warning: bool = False) -> None:
        conversation = str(target) if target is not None else str(self._current)
        level = "warning" if warning else "notice"
        self._buffer(conversation).add_notice(notice_text(text, level), level)

    def show_search(self, query: str, entries: list[Entry]) -> None:
        self.push_screen(SearchResults(query, entries))

    async def ask_secret(self, prompt: str) -> str | None:
        answer: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self.push_screen(SecretPrompt(prompt), callback=lambda v: _settle(answer, v))
        try:
            return await answer
        finally:
            self.input.focus()

    async def confirm(self, question: str) -> bool:
        answer: asyncio.Future[bool | None] = asyncio.get_running_loop().create_future()
        self.push_screen(ConfirmPrompt(question), callback=lambda v: _settle(answer, v))
        try:
            return bool(await answer)
        finally:
            self.input.focus()

    # -- notifications ---------------------------------------------------------------------

    def ring(self) -> None:
        if self.config.notifications.bell:
            self.bells += 1
            self.bell()

    def _refresh_counts(self) -> None:
        for conversation, item in self.sidebar.items.items():
            item.show(self.unread.get(conversation, 0), conversation in self.highlighted)
        total = sum(self.unread.values())
        title = f"securechat ({total}) {self.me}" if total else f"securechat {self.me}"
        if self.config.notifications.title and title != self.terminal_title:
            self.terminal_title = title
            if not self.is_headless and self._driver is not None:
                self._driver.write(f"\x1b]2;{title}\x07")  # names are sanitised: no escapes

    def _pending_count(self) -> None:
        buffers = self.buffers.values()
        self.status.pending = sum(
            1 for b in buffers for line in b.lines.values() if line.entry.state == "pending"
        )
        self.status.tick()

    # -- helpers ---------------------------------------------------------------------------

    def _buffer(self, conversation: str) -> ConversationBuffer:
        buffer = self.buffers.get(conversation)
        if buffer is not None:
            return buffer
        buffer = ConversationBuffer(conversation, self.me, id=f"buffer-{len(self.buffers)}")
        buffer.display = False  # until switched to (ContentSwitcher shows one child)
        self.buffers[conversation] = buffer
        self.query_one(ContentSwitcher).mount(buffer)
        self.sidebar.ensure(conversation)
        self._spawn(self._load(buffer))
        self._refresh_counts()
        return buffer

    async def _load(self, buffer: ConversationBuffer) -> None:
        conversation = buffer.conversation
        entries = await self.engine.store.run(lambda s: s.recent(conversation, SCROLLBACK))
        buffer.add_older(entries)
        buffer.loaded = True
        self._pending_count()

    def _note(self, conversation: str, text: str, level: str = "notice") -> None:
        target = conversation if conversation in self.buffers else str(self._current)
        self._buffer(target).add_notice(notice_text(text, level), level)

    def _explain(self, entry: Entry, error: SecureChatError) -> None:
        if isinstance(error, IdentityChanged):
            hint = blocked_hint(error.user, error.verified, "chat")
            text = f"!! the message was held back: {hint}; then /retry sends it"
            self._buffer(entry.conversation).add_notice(notice_text(text, "alert"), "alert")
            self.ring()

    def _worth_showing(self, event: ConnectionEvent) -> bool:
        """Say when the connection is lost and when it is back, not every retry."""
        if event.state == "online":
            was_down, self._down = self._down, False
            return was_down
        if event.state == "reconnecting" and event.detail and not self._down:
            self._down = True
            return True
        return event.state == "offline" and bool(event.detail)

    def _mark_read(self, conversation: str) -> None:
        if self.engine.history is not None:
            self._spawn(self.engine.store.run(lambda s: s.mark_read(conversation)))

    def _refresh_members(self) -> None:
        target = self._current
        if target.kind != "room" or not self.config.ui.members:
            return

        async def fetch() -> None:
            with contextlib.suppress(SecureChatError):
                found = await self.engine.client.api.list_members(target.name)
                if self._current == target:
                    members = [(m.user, m.online) for m in found]
                    self.query_one(MemberList).show_members(target.name, members)

        self._spawn(fetch())

    async def _purge(self) -> None:
        await self.engine.store.run(lambda s: s.purge())

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _settle(future: asyncio.Future[T], value: T) -> None:
    if not future.done():
        future.set_result(value)
