"""What each chat ``/command`` does, independent of any screen (see chat_engine.py).

Handlers are registered by command name in :data:`HANDLERS`; the engine looks them up there,
so a command added to :mod:`securechat.client.commands` works in the chat once a handler for
it is registered (``@handles("name")``). A handler gets the engine (client, session, history,
view) and the parsed command; it shows its output through ``engine.view`` and raises a
SecureChatError for the user to read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from securechat.client import commands
from securechat.client.commands import Command
from securechat.client.devices_view import devices_command
from securechat.client.events import Target, check_room, check_user
from securechat.client.key_change import decide
from securechat.crypto.trust import TrustLevel
from securechat.errors import InvalidArgument, SecureChatError

if TYPE_CHECKING:
    from securechat.client.chat_engine import ChatEngine

Handler = Callable[["ChatEngine", Command], Awaitable[None]]
HANDLERS: dict[str, Handler] = {}


def handles(*names: str) -> Callable[[Handler], Handler]:
    """Register the decorated coroutine as the handler of ``names``."""

    def register(handler: Handler) -> Handler:
        for name in names:
            HANDLERS[name] = handler
        return handler

    return register


@handles("help")
async def show_help(engine: ChatEngine, command: Command) -> None:
    for line in commands.help_lines():
        engine.view.say(line)
    engine.view.say("keys: Ctrl+N/Ctrl+P next/previous conversation, PgUp/PgDn scroll, "
                    "Tab completes, Up/Down recall, Ctrl+D quits")  # fmt: skip


@handles("join")
async def join(engine: ChatEngine, command: Command) -> None:
    room = check_room(command.args[0])
    await engine.join(room)
    engine.view.switch(Target.room(room))


@handles("create")
async def create(engine: ChatEngine, command: Command) -> None:
    room = check_room(command.args[0])
    password = await engine.room_password(room) if len(command.args) == 2 else ""
    await engine.session.messenger.actions.create(room, password)  # signed; the password stays
    engine.rooms.add(room)
    engine.view.switch(Target.room(room))
    engine.view.say(f"created #{room}" + (" (password protected)" if password else ""))


@handles("leave")
async def leave(engine: ChatEngine, command: Command) -> None:
    room = check_room(command.args[0] if command.args else engine.current_room())
    if not await engine.session.messenger.actions.leave(room):
        await engine.client.api.leave_room(room)  # a room from before signed rosters
    engine.rooms.discard(room)
    engine.view.say(f"left #{room}", target=Target.room(room))
    if engine.view.current == Target.room(room):
        engine.view.switch(Target.room(engine.config.ui.room))


@handles("rooms")
async def rooms(engine: ChatEngine, command: Command) -> None:
    for room in await engine.client.api.list_rooms():
        if room.member:
            engine.rooms.add(room.name)
        mark = "*" if room.member else " "
        lock = " (password)" if room.protected else ""
        engine.view.say(f"{mark} #{room.name}  {room.member_count} member(s){lock}")


@handles("members")
async def members(engine: ChatEngine, command: Command) -> None:
    room = check_room(command.args[0] if command.args else engine.current_room())
    roster = await engine.session.messenger.rosters.sync(room)
    online = {m.user: m.online for m in await engine.client.api.list_members(room)}
    if roster is None:
        for user, is_online in online.items():
            engine.users.add(user)
            engine.view.say(f"  {user}  {'online' if is_online else 'offline'}")
        return
    engine.view.say(f"verified members of #{room} (roster {roster.version}):")
    stale = {m.user for m in roster.stale_members(engine.session.messenger.rosters.account_key_of)}
    for user, member in sorted(roster.members.items()):
        engine.users.add(user)
        state = "online" if online.get(user) else "offline"
        line = f"  {user}  {state}" + ("  admin" if member.admin else "")
        if user in stale:  # (its member key is not the account key accepted for the user)
            line += "  stale: account key changed, gets nothing"
        engine.view.say(line, warning=user in stale)
    for user in sorted(set(online) - set(roster.members)):
        engine.view.say(
            f"  {user}: listed by the server but not in the verified member list: nothing is "
            "encrypted to them", warning=True,
        )  # fmt: skip


@handles("remove", "admin", "unadmin")
async def change_roster(engine: ChatEngine, command: Command) -> None:
    room = engine.current_room()
    user = check_user(command.args[0])
    actions = engine.session.messenger.actions
    if command.name == "remove":
        await actions.remove(room, user)
    else:
        await actions.set_admin(room, user, make_admin=command.name == "admin")


@handles("password")
async def password(engine: ChatEngine, command: Command) -> None:
    """Set or change the current room's password (asked twice), or open the room again."""
    room = engine.current_room()
    actions = engine.session.messenger.actions
    roster = await actions.admin_roster(room)  # before a password is typed for nothing
    if command.args:  # --remove
        if not roster.policy.protected:
            raise InvalidArgument(f"#{room} has no password: it is open already")
        await actions.set_password(room, "")
    else:
        await actions.set_password(room, await engine.new_room_password(room))


@handles("upgrade")
async def upgrade(engine: ChatEngine, command: Command) -> None:
    """Sign the CREATE of a room from before signed rosters (its notice says so)."""
    room = engine.current_room()
    await engine.session.messenger.upgrades.upgrade(room, lambda: engine.new_room_password(room))


@handles("who")
async def who(engine: ChatEngine, command: Command) -> None:
    users = await engine.client.api.list_online()
    engine.users.update(u.user for u in users if u.user != engine.me)
    names = sorted(u.user for u in users)
    engine.view.say("online: " + (", ".join(names) if names else "nobody"))


@handles("switch")
async def switch(engine: ChatEngine, command: Command) -> None:
    target = Target.parse(command.args[0])
    check_user(target.name) if target.kind == "user" else check_room(target.name)
    engine.view.switch(target)


@handles("verify", "trust", "reject")
async def key_decision(engine: ChatEngine, command: Command) -> None:
    """A contact's account key: compare (verify), accept (trust) or refuse (reject) it, in the
    conversation with them (client/key_change.py, the same flow as `securechat keys ...`)."""
    user = check_user(command.args[0])
    here = Target.user(user)
    engine.view.switch(here)  # the number and the question, where the change was told

    def show(text: str) -> None:
        engine.view.say(text, target=here)

    accounts = engine.session.messenger.accounts
    shown = await decide(accounts, command.name, user, show, engine.view.confirm, "chat")
    if shown.changed and accounts.vault.account.trust_level(user) is not TrustLevel.CHANGED:
        show("/retry sends again what was held back")


@handles("devices")
async def devices(engine: ChatEngine, command: Command) -> None:
    """/devices [link | remove N], beside the chat: a link waits for the other device."""
    where = engine.view.current

    def show(text: str) -> None:
        engine.view.say(text, target=where)

    async def run() -> None:
        try:
            await devices_command(engine.client.api, engine.session.messenger.accounts,
                                  command.args, show)  # fmt: skip
        except SecureChatError as exc:
            engine.view.say(f"! {exc.message}", target=where, warning=True)

    engine.background(run())


@handles("search")
async def search(engine: ChatEngine, command: Command) -> None:
    query = command.text
    found = await engine.store.run(lambda s: s.search(query))
    engine.view.show_search(query, found)


@handles("retry")
async def retry(engine: ChatEngine, command: Command) -> None:
    conversation = str(engine.view.current)
    again = await engine.outbox.retry(conversation)
    engine.view.say(f"sending {len(again)} message(s) again" if again
                    else f"nothing failed in {conversation}")  # fmt: skip
