"""The interactive chat: prompt_toolkit input line, messages printed above it, a status bar.

Incoming events are printed with ``print_formatted_text`` under ``patch_stdout``, so they
appear above the input line and never disturb what is being typed. Sends go through one worker
task that writes them on the Chat stream in order without waiting for each answer, so a slow
server never freezes typing. History stays in memory (never on disk: it holds plaintext).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sys
from collections.abc import Iterable

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.patch_stdout import patch_stdout
from prompt_toolkit.shortcuts import print_formatted_text
from prompt_toolkit.styles import Style

from securechat.client import commands
from securechat.client.account import Client
from securechat.client.devices_view import devices_command
from securechat.client.display import describe
from securechat.client.events import (
    ConnectionEvent,
    Event,
    IdentityEvent,
    MembershipEvent,
    MessageEvent,
    NoticeEvent,
    PresenceEvent,
    Target,
    UndecryptableEvent,
    check_room,
    check_user,
)
from securechat.client.key_change import blocked_hint, decide
from securechat.client.passwords import ROOM_PASSWORD_ENV
from securechat.client.rpc.sender import Receipt
from securechat.client.session import ChatSession
from securechat.errors import IdentityChanged, InvalidArgument, SecureChatError

STYLE = Style.from_dict(
    {
        "message": "",
        "own": "ansigreen",
        "private": "ansimagenta",
        "notice": "ansibrightblack",
        "warning": "ansiyellow bold",
        "alert": "ansired bold",
        "bottom-toolbar": "reverse",
    }
)


def _style_of(event: Event, me: str) -> str:
    if isinstance(event, MessageEvent):
        if event.sender == me:
            return "class:own"
        return "class:private" if event.target.kind == "user" else "class:message"
    if isinstance(event, IdentityEvent | UndecryptableEvent):
        return "class:alert"
    if isinstance(event, NoticeEvent) and event.warning:
        return "class:warning"
    return "class:notice"


class ChatCompleter(Completer):
    """Completes /commands, @users and room names from what the chat has seen."""

    def __init__(self, ui: ChatUI) -> None:
        self.ui = ui

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        before = document.text_before_cursor
        word = document.get_word_before_cursor(WORD=True)
        words = before.split()
        if before.startswith("/") and len(words) <= 1 and not before.endswith(" "):
            names = [*commands.COMMANDS, *commands.ALIASES]
            yield from self._match(word, [f"/{n}" for n in names])
            return
        if word.startswith("@"):
            yield from self._match(word, [f"@{u}" for u in sorted(self.ui.users)])
            return
        command = words[0].lstrip("/") if words and before.startswith("/") else ""
        command = commands.ALIASES.get(command, command)
        if command in ("w", "verify", "trust", "reject") and len(words) <= 2:
            yield from self._match(word, sorted(self.ui.users))
        elif command in ("join", "leave", "members", "switch") and len(words) <= 2:
            yield from self._match(word, sorted(self.ui.rooms))

    @staticmethod
    def _match(word: str, candidates: Iterable[str]) -> Iterable[Completion]:
        for candidate in candidates:
            if candidate.startswith(word) and candidate != word:
                yield Completion(candidate, start_position=-len(word))


class ChatUI:
    """One interactive session for a logged-in client with an unlocked keystore."""

    def __init__(self, client: Client, room: str) -> None:
        assert client.vault is not None
        self.client = client
        self.me = client.user
        self.current = Target.room(room)
        self.users: set[str] = set()
        self.rooms: set[str] = {room}
        self.chat = ChatSession(client.api, client.vault, self.on_event)
        self.prompt: PromptSession[str] = PromptSession(
            history=InMemoryHistory(),
            completer=ChatCompleter(self),
            bottom_toolbar=self.toolbar,
            complete_while_typing=True,
            erase_when_done=True,
            style=STYLE,
        )
        self._outgoing: asyncio.Queue[tuple[Target, str]] = asyncio.Queue()
        self._background: set[asyncio.Task[None]] = set()
        self._down = False

    # -- output ----------------------------------------------------------------------------

    def show(self, text: str, style: str = "class:notice") -> None:
        print_formatted_text(FormattedText([(style, text)]), style=STYLE)

    def on_event(self, event: Event) -> None:
        if isinstance(event, MessageEvent | UndecryptableEvent):
            self.users.add(event.sender)
        elif isinstance(event, PresenceEvent | MembershipEvent):
            self.users.add(event.user)
        if isinstance(event, ConnectionEvent) and not self._worth_showing(event):
            self._refresh()
            return
        self.show(describe(event, self.me, "chat"), _style_of(event, self.me))
        self._refresh()

    def _worth_showing(self, event: ConnectionEvent) -> bool:
        """Say when the connection is lost and when it is back, not every retry."""
        if event.state == "online":
            was_down, self._down = self._down, False
            return was_down or bool(event.detail)
        if event.state == "reconnecting" and event.detail and not self._down:
            self._down = True
            return True
        return event.state == "offline" and bool(event.detail)

    def _refresh(self) -> None:
        app = self.prompt.app
        if app.is_running:
            app.invalidate()

    def toolbar(self) -> FormattedText:
        text = (
            f" {self.client.endpoint.server} | {self.me} | {self.current} | "
            f"{self.chat.state} | /help "
        )
        return FormattedText([("class:bottom-toolbar", text)])

    # -- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        await self._prepare()
        runner = asyncio.create_task(self.chat.run())
        runner.add_done_callback(self._on_session_end)
        sender = asyncio.create_task(self._send_worker())
        try:
            with patch_stdout(raw=True):
                self.show(f"securechat: {self.me} in {self.current}; type /help for commands")
                await self._input_loop(runner)
        finally:
            self.chat.stop()
            sender.cancel()
            for task in self._background:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            await asyncio.wait_for(asyncio.shield(runner), 5)
        if runner.done() and not runner.cancelled() and runner.exception() is not None:
            raise runner.exception()  # type: ignore[misc]

    async def _input_loop(self, runner: asyncio.Task[None]) -> None:
        while not runner.done():
            try:
                line = await self.prompt.prompt_async(self._prompt_text)
            except (EOFError, KeyboardInterrupt):
                return
            if line is None or runner.done():
                return
            try:
                if not await self.handle(line):
                    return
            except SecureChatError as exc:
                self.show(f"! {exc.message}", "class:warning")

    def _prompt_text(self) -> str:
        return f"{self.current}> "

    def _on_session_end(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None and self.prompt.app.is_running:
            self.prompt.app.exit(result="")

    async def _prepare(self) -> None:
        api = self.client.api
        listed = {r.name: r for r in await api.list_rooms()}
        self.rooms.update(listed)
        room = listed.get(self.current.name)
        if room is None or not room.member:
            await self._join(self.current.name, protected=room is not None and room.protected)
        self.users.update(m.user for m in await api.list_members(self.current.name))
        self.users.update(u.user for u in await api.list_online())
        self.users.discard(self.me)

    async def _send_worker(self) -> None:
        """Encrypt and write each typed message in order, without waiting for the server's
        answer to the previous one (sends are pipelined on the stream)."""
        while True:
            target, text = await self._outgoing.get()
            try:
                answer = await self.chat.submit(target, text)
            except SecureChatError as exc:
                self.show(f"! not sent to {target}: {_reason(exc)}", "class:warning")
                continue
            answer.add_done_callback(functools.partial(self._answered, target, text))

    def _answered(self, target: Target, text: str, answer: asyncio.Future[Receipt]) -> None:
        if answer.cancelled():
            return
        error = answer.exception()
        if isinstance(error, SecureChatError):
            self.show(f"! not sent to {target}: {_reason(error)}", "class:warning")
        elif error is not None:
            self.show(f"! not sent to {target}: {error!r}", "class:warning")
        else:
            receipt = answer.result()
            self.on_event(
                MessageEvent(receipt.client_message_id, self.me, 0, target, text, _now_ms())
            )

    # -- commands --------------------------------------------------------------------------

    async def handle(self, line: str) -> bool:
        """Run one input line; False means quit."""
        command = commands.parse(line)
        if command is None:
            return True
        name, args = command.name, command.args
        api = self.client.api
        if name == "quit":
            return False
        if name == "say":
            self._outgoing.put_nowait((self.current, command.text))
        elif name == "w":
            self._outgoing.put_nowait((Target.user(check_user(args[0])), command.text))
        elif name == "help":
            for text in commands.help_lines():
                self.show(text)
        elif name == "join":
            await self._join(check_room(args[0]))
            self.current = Target.room(args[0])
        elif name == "create":
            password = await self._room_password(args[0]) if len(args) == 2 else ""
            await api.create_room(check_room(args[0]), password)
            self.rooms.add(args[0])
            self.current = Target.room(args[0])
            self.show(f"- created #{args[0]}")
        elif name == "leave":
            await self._leave(args[0] if args else "")
        elif name == "rooms":
            for room in await api.list_rooms():
                self.rooms.add(room.name)
                mark = "*" if room.member else " "
                lock = " (password)" if room.protected else ""
                self.show(f"{mark} #{room.name}  {room.member_count} member(s){lock}")
        elif name == "members":
            name = args[0] if args else self._current_room()
            for member in await api.list_members(check_room(name)):
                self.users.add(member.user)
                self.show(f"  {member.user}  {'online' if member.online else 'offline'}")
        elif name == "who":
            users = await api.list_online()
            self.users.update(u.user for u in users)
            names = sorted(u.user for u in users)
            self.show("online: " + (", ".join(names) if names else "nobody"))
        elif name == "switch":
            target = Target.parse(args[0])
            check_user(target.name) if target.kind == "user" else check_room(target.name)
            self.current = target
            self.show(f"- now talking in {target}")
        elif name in ("verify", "trust", "reject"):
            accounts = self.chat.messenger.accounts
            await decide(accounts, name, check_user(args[0]), self.show, self._confirm, "chat")
        elif name == "devices":
            self._devices(args)
        self._refresh()
        return True

    def _current_room(self) -> str:
        if self.current.kind != "room":
            raise InvalidArgument("you are in a private conversation: name a room")
        return self.current.name

    async def _room_password(self, room: str) -> str:
        value = os.environ.get(ROOM_PASSWORD_ENV)
        if value is not None:
            return value
        return await self.prompt.prompt_async(f"password for #{room}: ", is_password=True)

    async def _join(self, room: str, protected: bool = False) -> None:
        try:
            joined = await self.client.api.join_room(room, "")
        except SecureChatError:
            if not protected:
                listed = {r.name: r for r in await self.client.api.list_rooms()}
                if room not in listed or not listed[room].protected:
                    raise
            joined = await self.client.api.join_room(room, await self._room_password(room))
        self.rooms.add(room)
        self.show(f"- joined #{joined.name} ({joined.member_count} member(s))")

    async def _leave(self, room: str) -> None:
        room = check_room(room or self._current_room())
        await self.client.api.leave_room(room)
        self.show(f"- left #{room}")
        if self.current == Target.room(room):
            self.current = Target.room("lobby")

    async def _confirm(self, question: str) -> bool:
        answer = await self.prompt.prompt_async(f"{question} [y/N] ")
        return answer.strip().lower() in ("y", "yes")

    def _devices(self, args: tuple[str, ...]) -> None:
        """/devices runs beside the chat (linking waits for the other device)."""

        async def run() -> None:
            try:
                await devices_command(self.client.api, self.chat.messenger.accounts, args,
                                      self.show)  # fmt: skip
            except SecureChatError as exc:
                self.show(f"! {exc.message}", "class:warning")
            self._refresh()

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _reason(error: SecureChatError) -> str:
    """Why a send failed, in the chat's words (a key change names the chat's commands)."""
    if isinstance(error, IdentityChanged):
        return blocked_hint(error.user, error.verified, "chat")
    return error.message


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


async def run_chat(client: Client, room: str) -> None:
    """Run the interactive chat until /quit, Ctrl+C or Ctrl+D (needs a terminal)."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise InvalidArgument(
            "`securechat chat` needs a terminal: in scripts use `send` and `inbox`"
        )
    await ChatUI(client, room).run()
