"""Device subcommands: devices list | link | remove (the work is in client/devices_view.py and
client/linking.py, shared with the chat's /devices)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from securechat.client.cli_common import echo, note, note_event, opened, run

if TYPE_CHECKING:
    from securechat.client.account import Options


@click.group()
def devices() -> None:
    """Your devices: list them, link a new one, remove one (also a lost one)."""


@devices.command("list")
@click.pass_obj
def devices_list(options: Options) -> None:
    """Your devices as your account key certified them (and any the server lists that it did
    not: those never receive anything)."""
    from securechat.client.devices_view import own_devices

    async def go() -> None:
        async with opened(options, keys=True) as client:
            for line in await own_devices(client.messenger_for(note_event).accounts):
                echo(line)

    run(go())


@devices.command("link")
@click.pass_obj
def devices_link(options: Options) -> None:
    """Show a one-time code for a new device and wait (up to 10 minutes) until it joins."""
    from securechat.client.linking import offer_link

    async def go() -> None:
        async with opened(options, keys=True) as client:
            accounts = client.messenger_for(note_event).accounts
            added = await offer_link(client.api, accounts, note)
            note(f"linked device {added.device_id}: it is one of your devices now")

    run(go())


@devices.command("remove")
@click.argument("device_id", type=click.IntRange(min=1))
@click.pass_obj
def devices_remove(options: Options, device_id: int) -> None:
    """Remove DEVICE_ID from your account (a lost one too): it receives nothing from now on."""
    from securechat.client.devices_view import remove_device

    async def go() -> None:
        async with opened(options, keys=True) as client:
            accounts = client.messenger_for(note_event).accounts
            note(await remove_device(client.api, accounts, device_id))

    run(go())


COMMANDS = (devices,)
