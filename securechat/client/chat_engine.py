"""Everything the interactive chat does without a screen: session, history, outbox, commands.

A :class:`ChatEngine` puts together the chat session (the stream, sends, re-login on an
expired session), the encrypted history (every message stored before it is acknowledged) and
the outbox (typed text kept and sent in order), and runs input lines: plain text and whispers
go to the outbox, ``/commands`` to the handler registered for them in
:mod:`securechat.client.chat_commands` (looked up by name, so new commands plug in there).
What there is to show goes to a :class:`View` (the full-screen app, or a test's recorder).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Coroutine
from typing import Any, Protocol

import sqlcipher3

from securechat.client import commands
from securechat.client.account import Client
from securechat.client.config import ClientConfig
from securechat.client.events import (
    ConnectionEvent,
    Event,
    MembershipEvent,
    MessageEvent,
    PresenceEvent,
    Target,
    UndecryptableEvent,
    check_room,
    check_user,
)
from securechat.client.history import Entry, History, HistoryStore
from securechat.client.outbox import Outbox
from securechat.client.passwords import ROOM_PASSWORD_ENV
from securechat.client.relogin import Credential, Renewal
from securechat.client.rpc.link import Backoff
from securechat.client.session import ChatSession
from securechat.errors import InvalidArgument, PermissionDenied, SecureChatError
from securechat_proto.v1 import rooms_pb2

HISTORY_FILE = "history.db"


class View(Protocol):
    """What the engine shows through; implemented by the full-screen app."""

    @property
    def current(self) -> Target: ...

    def show_entry(self, entry: Entry, error: SecureChatError | None) -> None:
        """A message stored or changed (received, typed, sent, failed)."""

    def show_event(self, event: Event) -> None:
        """A notice, presence, membership, identity or connection event."""

    def say(self, text: str, *, target: Target | None = None, warning: bool = False) -> None:
        """A line of command output (in ``target``'s buffer, default the current one)."""

    def switch(self, target: Target) -> None:
        """Make ``target`` the current conversation."""

    def show_search(self, query: str, entries: list[Entry]) -> None: ...

    async def ask_secret(self, prompt: str) -> str | None:
        """Ask for a secret: never echoed, never in the input history (None: cancelled)."""

    async def confirm(self, question: str) -> bool: ...


class ChatEngine:
    """One logged-in client with an unlocked keystore, chatting."""

    def __init__(
        self,
        client: Client,
        config: ClientConfig,
        view: View,
        *,
        credential: Credential | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        assert client.vault is not None
        self.client = client
        self.config = config
        self.view = view
        self.me = client.user
        self.users: set[str] = set()
        self.rooms: set[str] = set()
        self.history: History | None = None
        self.session = ChatSession(
            client.api,
            client.vault,
            self._on_event,
            backoff=backoff,
            record=self._record,
            renew=Renewal(client, credential, view.ask_secret, self._on_event),
        )
        self._outbox: Outbox | None = None
        self._background: set[asyncio.Task[None]] = set()

    @property
    def outbox(self) -> Outbox:
        if self._outbox is None:
            raise InvalidArgument("the chat is not open yet")
        return self._outbox

    @property
    def store(self) -> History:
        if self.history is None:
            raise InvalidArgument("the chat is not open yet")
        return self.history

    # -- life ------------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the history (and with it the outbox); no network yet."""
        vault = self.client.vault
        assert vault is not None
        self.history = await History.open(
            self.client.profile.directory / HISTORY_FILE,
            vault.history_key(),
            retention_days=self.config.history.retention_days,
        )
        self._outbox = Outbox(self.history, self.session, self.view.show_entry)

    async def prepare(self, room: str) -> None:
        """Learn rooms and people; join ``room`` when this user is not in it yet."""
        api = self.client.api
        listed = {r.name: r for r in await api.list_rooms()}
        self.rooms.update(name for name, info in listed.items() if info.member)
        info = listed.get(room)
        if info is None or not info.member:
            await self.join(room)
        else:
            await self.open_room(room, info)
        self.users.update(m.user for m in await api.list_members(room))
        self.users.update(u.user for u in await api.list_online())
        self.users.discard(self.me)

    async def run(self) -> None:
        """Stream, send and keep the history until :meth:`stop`; raise only fatal errors."""
        outbox = asyncio.get_running_loop().create_task(self.outbox.run(), name="outbox")
        try:
            await self.session.run()
        finally:
            outbox.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await outbox

    def stop(self) -> None:
        self.session.stop()
        for task in self._background:
            task.cancel()

    def background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run a command's long wait (a device link) beside the chat, cancelled at the end."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        if self.history is not None:
            await self.history.close()

    # -- input -----------------------------------------------------------------------------

    async def handle(self, line: str) -> bool:
        """Run one input line; False means quit. Errors are the caller's to show."""
        command = commands.parse(line)
        if command is None:
            return True
        if command.name == "quit":
            return False
        if command.name == "say":
            await self.send(self.view.current, command.text)
        elif command.name == "w":
            await self.send(Target.user(check_user(command.args[0])), command.text)
        else:
            from securechat.client.chat_commands import HANDLERS

            handler = HANDLERS.get(command.name)
            if handler is None:
                raise InvalidArgument(f"/{command.name} is not available in this chat")
            await handler(self, command)
        return True

    async def send(self, target: Target, text: str) -> Entry:
        """Keep ``text`` in the outbox (on disk) and send it as soon as the stream is up."""
        if target.kind == "user" and target.name == self.me:
            raise InvalidArgument("that is you: send a private message to someone else")
        return await self.outbox.add(target, text)

    # -- helpers for command handlers ------------------------------------------------------

    def current_room(self) -> str:
        current = self.view.current
        if current.kind != "room":
            raise InvalidArgument("you are in a private conversation: name a room")
        return current.name

    async def room_password(self, room: str) -> str:
        """SECURECHAT_ROOM_PASSWORD, else the secret prompt (never the chat input)."""
        value = os.environ.get(ROOM_PASSWORD_ENV)
        if value is not None:
            return value
        typed = await self.view.ask_secret(f"password for #{room}")
        if typed is None:
            raise InvalidArgument(f"no password given: not joined to #{room}")
        return typed

    async def new_room_password(self, room: str) -> str:
        """A new room password: SECURECHAT_ROOM_PASSWORD, else asked twice (hidden)."""
        value = os.environ.get(ROOM_PASSWORD_ENV)
        if value is not None:
            return value
        typed = await self.view.ask_secret(f"new password for #{room}")
        if not typed:
            raise InvalidArgument(f"no password given: #{room} is unchanged")
        if await self.view.ask_secret(f"repeat the new password for #{room}") != typed:
            raise InvalidArgument(f"the two passwords differ: #{room} is unchanged")
        return typed

    async def open_room(self, room: str, info: rooms_pb2.RoomInfo | None = None) -> None:
        """A room of the user's is opened: an open room from before signed rosters is made
        end-to-end verified (client/room_upgrade.py); a failure is told, the chat goes on."""
        try:
            await self.session.messenger.upgrades.open(room, info)
        except SecureChatError as exc:
            self.view.say(f"! #{room} could not be upgraded: {exc.message}",
                          target=Target.room(room), warning=True)  # fmt: skip

    async def join(self, room: str) -> None:
        room = check_room(room)
        api = self.client.api
        signed = await self.session.messenger.actions.join(room, lambda: self.room_password(room))
        if signed is not None:
            self.rooms.add(room)
            self.view.say(f"joined #{signed.name} ({signed.member_count} member(s))",
                          target=Target.room(room))  # fmt: skip
            return
        try:
            joined = await api.join_room(room, "")
        except PermissionDenied:
            # A join without the password of a protected room is refused, and such a room is
            # hidden from non-members unless its creator listed it: ask for the password.
            joined = await api.join_room(room, await self.room_password(room))
        self.rooms.add(room)
        self.view.say(f"joined #{joined.name} ({joined.member_count} member(s))",
                      target=Target.room(room))  # fmt: skip
        await self.open_room(room)  # a room from before signed rosters: upgraded when open

    # -- what arrives ----------------------------------------------------------------------

    async def _record(self, events: object) -> None:
        """Store a batch's messages (before it is acknowledged) and show the new ones."""
        history = self.history
        if history is None:
            return
        me = self.me

        def store(s: HistoryStore) -> list[Entry]:
            added: list[Entry | None] = []
            for event in events:  # type: ignore[attr-defined]
                if isinstance(event, MessageEvent):
                    added.append(s.add_received(event, me))
                elif isinstance(event, UndecryptableEvent):
                    added.append(s.add_undecryptable(event))
            return [entry for entry in added if entry is not None]

        try:
            stored = await history.run(store)
        except (sqlcipher3.Error, OSError) as exc:  # a full disk must not end the chat
            self.view.say(f"! could not store messages in the history: {exc}", warning=True)
            self._show_unstored(events)
            return
        for entry in stored:
            if entry.sender != me:
                self.users.add(entry.sender)
            self.view.show_entry(entry, None)

    def _show_unstored(self, events: object) -> None:
        """Show a batch that could not be stored, as entries of its own."""
        for event in events:  # type: ignore[attr-defined]
            if isinstance(event, MessageEvent):
                mine = event.sender == self.me
                entry = Entry(
                    0, event.message_id, str(event.target), event.sender, mine, event.text,
                    event.sent_at_ms, "sent" if mine else "received",
                )  # fmt: skip
                self.view.show_entry(entry, None)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, MessageEvent | UndecryptableEvent):
            return  # shown from the history once stored (see _record)
        if isinstance(event, ConnectionEvent) and event.state == "online":
            if self._outbox is not None:
                self._outbox.kick()
        elif isinstance(event, PresenceEvent | MembershipEvent) and event.user != self.me:
            self.users.add(event.user)
        self.view.show_event(event)
