"""Room subcommands: rooms list|create|join|leave|members|remove|admin|password|upgrade.

Create, join, leave, remove and admin changes are signed roster events (issue 15) made with the
account key in the keystore (so these commands unlock it); a room password is turned into the
server's authenticator and the join-proof key on this side and never sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import click

from securechat.client.cli_common import echo, name, note, opened, run

if TYPE_CHECKING:
    from securechat.client.account import Client, Options
    from securechat.client.messenger import Messenger


@asynccontextmanager
async def signing(options: Options) -> AsyncIterator[tuple[Client, Messenger]]:
    """A logged-in client with its keystore unlocked, and a messenger that prints notices."""
    from securechat.client.events import NoticeEvent
    from securechat.client.messenger import Messenger

    def show(event: object) -> None:
        if isinstance(event, NoticeEvent):
            note(("! " if event.warning else "") + event.text)

    async with opened(options, keys=True) as client:
        assert client.vault is not None
        yield client, Messenger(client.api, client.vault, show)


@click.group()
def rooms() -> None:
    """List, create, join and leave rooms."""


@rooms.command("list")
@click.pass_obj
def rooms_list(options: Options) -> None:
    """Every room, its member count, whether it is protected and whether you are in it."""

    async def go() -> None:
        async with opened(options) as client:
            for room in await client.api.list_rooms():
                flags = ", ".join(
                    flag
                    for flag, on in (("member", room.member), ("password", room.protected))
                    if on
                )
                suffix = f"  [{flags}]" if flags else ""
                echo(f"{name(room.name)}  {room.member_count} member(s){suffix}")

    run(go())


@rooms.command("create")
@click.argument("room")
@click.option("--password", "protect", is_flag=True,
              help="Ask for a room password (or SECURECHAT_ROOM_PASSWORD).")  # fmt: skip
@click.pass_obj
def rooms_create(options: Options, room: str, protect: bool) -> None:
    """Create ROOM (you become its first member)."""
    from securechat.client.events import check_room

    check_room(room)

    async def go() -> None:
        async with signing(options) as (_, messenger):
            password = options.secrets.room_password(room) if protect else ""
            await messenger.actions.create(room, password)
            note(f"created {room}" + (" (password protected)" if protect else ""))

    run(go())


@rooms.command("join")
@click.argument("room")
@click.pass_obj
def rooms_join(options: Options, room: str) -> None:
    """Join ROOM (asks for its password when it is protected)."""
    from securechat.client.events import check_room

    check_room(room)

    async def go() -> None:
        async with signing(options) as (client, messenger):

            async def ask() -> str:
                return options.secrets.room_password(room)

            signed = await messenger.actions.join(room, ask)
            if signed is not None:
                note(f"joined {name(signed.name)} ({signed.member_count} member(s))")
                return
            listed = {r.name: r for r in await client.api.list_rooms()}
            info = listed.get(room)
            password = ""
            # A protected room is listed to non-members only when its creator chose so.
            if info is None or (info.protected and not info.member):
                password = options.secrets.room_password(room)
            joined = await client.api.join_room(room, password)
            note(f"joined {name(joined.name)} ({joined.member_count} member(s))")

    run(go())


@rooms.command("leave")
@click.argument("room")
@click.pass_obj
def rooms_leave(options: Options, room: str) -> None:
    """Leave ROOM."""
    from securechat.client.events import check_room

    check_room(room)

    async def go() -> None:
        async with signing(options) as (client, messenger):
            if not await messenger.actions.leave(room):
                await client.api.leave_room(room)  # a room from before signed rosters
            note(f"left {room}")

    run(go())


@rooms.command("members")
@click.argument("room")
@click.pass_obj
def rooms_members(options: Options, room: str) -> None:
    """List the members of ROOM with their devices and online state."""
    from securechat.client.events import check_room

    check_room(room)

    async def go() -> None:
        async with opened(options) as client:
            for member in await client.api.list_members(room):
                devices = ",".join(str(d) for d in member.device_ids) or "-"
                state = "online" if member.online else "offline"
                echo(f"{name(member.user)}  {state}  devices {devices}")

    run(go())


@rooms.command("remove")
@click.argument("room")
@click.argument("user")
@click.pass_obj
def rooms_remove(options: Options, room: str, user: str) -> None:
    """Remove USER from ROOM (admins only; a signed change every member checks)."""
    from securechat.client.events import check_room, check_user

    check_room(room)
    check_user(user)

    async def go() -> None:
        async with signing(options) as (_, messenger):
            await messenger.actions.remove(room, user)
            note(f"removed {user} from {room}")

    run(go())


@rooms.command("admin")
@click.argument("room")
@click.argument("user")
@click.option("--revoke", is_flag=True, help="Take the admin right away instead.")
@click.pass_obj
def rooms_admin(options: Options, room: str, user: str, revoke: bool) -> None:
    """Make USER an admin of ROOM (or no longer one, with --revoke)."""
    from securechat.client.events import check_room, check_user

    check_room(room)
    check_user(user)

    async def go() -> None:
        async with signing(options) as (_, messenger):
            await messenger.actions.set_admin(room, user, make_admin=not revoke)
            note(f"{user} is {'no longer ' if revoke else ''}an admin of {room}")

    run(go())


@rooms.command("password")
@click.argument("room")
@click.option("--remove", is_flag=True, help="Take the password away: the room is open again.")
@click.pass_obj
def rooms_password(options: Options, room: str, remove: bool) -> None:
    """Set or change the password of ROOM (admins only; asked twice, or
    SECURECHAT_ROOM_PASSWORD). Members already in it stay; joins need the new password."""
    from securechat.client.events import check_room
    from securechat.errors import InvalidArgument

    check_room(room)

    async def go() -> None:
        async with signing(options) as (_, messenger):
            roster = await messenger.actions.admin_roster(room)
            if remove and not roster.policy.protected:
                raise InvalidArgument(f"{room} has no password: it is open already")
            password = "" if remove else options.secrets.room_password(room, confirm=True)
            if not remove and not password:
                raise InvalidArgument(f"no password given: {room} is unchanged")
            await messenger.actions.set_password(room, password)
            note(f"{room} is open now (no password)" if remove else f"{room} has a new password")

    run(go())


@rooms.command("upgrade")
@click.argument("room")
@click.pass_obj
def rooms_upgrade(options: Options, room: str) -> None:
    """Make ROOM, a room from before signed member lists that you are in, end-to-end verified
    (a protected one asks for a room password, which its members then join with)."""
    from securechat.client.events import check_room

    check_room(room)

    async def go() -> None:
        async with signing(options) as (_, messenger):

            async def ask() -> str:
                return options.secrets.room_password(room, confirm=True)

            await messenger.upgrades.upgrade(room, ask)
            note(f"{room} is end-to-end verified now: its members join again")

    run(go())


COMMANDS = (rooms,)
