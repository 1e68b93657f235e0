"""Account and key subcommands: register, login, logout, keys show|safety-number|verify|trust."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from securechat.client.cli_common import echo, note, opened, run

if TYPE_CHECKING:
    from securechat.client.account import Client, Options


@click.command()
@click.argument("user")
@click.pass_obj
def register(options: Options, user: str) -> None:
    """Create the account USER, log this profile in and publish its keys."""
    from securechat.client import account

    async def go() -> None:
        async with opened(options, keys=True, login=False) as client:
            password = options.secrets.account_password(confirm=True)
            await account.register(client, user, password)
            assert client.session is not None
            note(
                f"registered {user} (device {client.session.device_id}) on "
                f"{client.endpoint.server}; profile {client.profile.name!r} is logged in"
            )

    run(go())


@click.command()
@click.argument("user")
@click.pass_obj
def login(options: Options, user: str) -> None:
    """Log in as USER (a profile without keys becomes a new device)."""
    from securechat.client import account

    async def go() -> None:
        async with opened(options, keys=True, login=False) as client:
            await account.login(client, user, options.secrets.account_password())
            assert client.session is not None
            note(f"logged in as {user} (device {client.session.device_id})")

    run(go())


@click.command()
@click.pass_obj
def logout(options: Options) -> None:
    """Revoke this profile's session token (keys stay in the profile)."""
    from securechat.client import account

    async def go() -> None:
        async with opened(options, login=False) as client:
            await account.logout(client)
            note("logged out")

    run(go())


@click.group()
def keys() -> None:
    """Your keys, and your contacts' safety numbers and trust."""


@keys.command("show")
@click.pass_obj
def keys_show(options: Options) -> None:
    """Show this device's identity fingerprint and remaining prekeys."""
    from securechat.crypto.safety_number import (
        SAFETY_NUMBER_VERSION,
        fingerprint_half,
        format_safety_number,
    )

    async def go() -> None:
        async with opened(options, keys=True) as client:
            assert client.vault is not None
            account = client.vault.account
            counts = await client.api.count_prekeys()
            half = fingerprint_half(
                account.identity_public.to_bytes(),
                account.address.user,
                version=SAFETY_NUMBER_VERSION,
            )
            echo(f"user:            {account.address.user}")
            echo(f"device:          {account.address.device_id}")
            echo(f"server:          {client.endpoint.server}")
            echo(f"your half of every safety number: {format_safety_number(half)}")
            echo(
                f"prekeys left:    {counts.one_time_prekeys} one-time, "
                f"{counts.kem_prekeys} post-quantum"
            )

    run(go())


async def _known(client: Client, user: str) -> None:
    """Make sure an identity is pinned for ``user`` (start sessions with their devices)."""
    from securechat.client.events import check_user
    from securechat.crypto.trust import TrustLevel

    check_user(user)
    assert client.vault is not None
    if client.vault.account.trust_level(user) is TrustLevel.UNKNOWN:
        await client.messenger.introduce(user)


def _safety_lines(client: Client, user: str) -> list[str]:
    from securechat.crypto.safety_number import format_safety_number

    assert client.vault is not None
    account = client.vault.account
    digits = format_safety_number(account.safety_number(user)).split(" ")
    level = account.trust_level(user).value
    return [
        f"safety number with {user} ({level}):",
        "  " + " ".join(digits[:6]),
        "  " + " ".join(digits[6:]),
    ]


@keys.command("safety-number")
@click.argument("user")
@click.pass_obj
def keys_safety_number(options: Options, user: str) -> None:
    """Show the safety number you share with USER (compare it in person or by phone)."""

    async def go() -> None:
        async with opened(options, keys=True) as client:
            await _known(client, user)
            for line in _safety_lines(client, user):
                echo(line)

    run(go())


@keys.command("verify")
@click.argument("user")
@click.option("--yes", is_flag=True, help="Mark verified without asking (you compared).")
@click.pass_obj
def keys_verify(options: Options, user: str, yes: bool) -> None:
    """Mark USER verified after comparing the safety number."""

    async def go() -> None:
        async with opened(options, keys=True) as client:
            await _known(client, user)
            for line in _safety_lines(client, user):
                echo(line)
            if not yes and not click.confirm("Do the numbers match on both sides?"):
                note("not verified")
                return
            assert client.vault is not None
            client.vault.account.verify(user)
            client.vault.save()
            note(f"{user} is verified")

    run(go())


@keys.command("trust")
@click.argument("user")
@click.pass_obj
def keys_trust(options: Options, user: str) -> None:
    """Accept the new identity key of an unverified contact USER."""

    async def go() -> None:
        async with opened(options, keys=True) as client:
            assert client.vault is not None
            client.vault.account.trust(user)
            client.vault.save()
            note(f"accepted the current identity key of {user} (still unverified)")

    run(go())


COMMANDS = (register, login, logout, keys)
