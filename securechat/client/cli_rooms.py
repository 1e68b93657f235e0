"""Room subcommands: rooms list|create|join|leave|members."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from securechat.client.cli_common import echo, name, note, opened, run

if TYPE_CHECKING:
    from securechat.client.account import Options


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
        async with opened(options) as client:
            password = options.secrets.room_password(room) if protect else ""
            await client.api.create_room(room, password)
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
        async with opened(options) as client:
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
        async with opened(options) as client:
            await client.api.leave_room(room)
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


COMMANDS = (rooms,)
