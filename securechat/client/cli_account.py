"""Account and key subcommands: register, login, logout, auth-key, keys show|safety-number|verify|
trust|reject (the key-change decision is client/key_change.py, shared with the chat)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from securechat.client.cli_common import echo, note, note_event, opened, run

if TYPE_CHECKING:
    from securechat.client.account import Client, Options


async def _join_default_room(client: Client) -> None:
    """The server joins a new account to its default room only while that room has no signed
    roster; once it has one, the new client joins it itself (a signed JOIN) when it is open."""
    from securechat.client.cli_common import client_config
    from securechat.client.messenger import Messenger
    from securechat.errors import SecureChatError

    assert client.vault is not None
    room = client_config().ui.room
    messenger = Messenger(client.api, client.vault)
    try:
        await messenger.upgrades.settle_all()  # a legacy lobby is remembered: joined again later
        joined = await messenger.upgrades.join_open(room)
    except SecureChatError as exc:
        note(f"! could not join #{room}: {exc.message}")
        return
    if joined:
        note(f"joined #{room} (a signed join, shown to its members)")


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
            await _join_default_room(client)
            note(
                f"registered {user} (device {client.session.device_id}) on "
                f"{client.endpoint.server}; profile {client.profile.name!r} is logged in"
            )

    run(go())


@click.command()
@click.argument("user")
@click.option("--link", "link_code", metavar="CODE",
              help="Join USER's account as a new device, with the code `securechat devices link` "
                   "shows on one of your devices.")  # fmt: skip
@click.option("--reset", is_flag=True,
              help="Start over on this new device with a new account key: every other device "
                   "of USER is removed and contacts must accept the new key.")  # fmt: skip
@click.pass_obj
def login(options: Options, user: str, link_code: str | None, reset: bool) -> None:
    """Log in as USER (a profile without keys becomes a new device: see --link)."""
    from securechat.client import account
    from securechat.crypto.linking import LinkJoiner

    if link_code is not None and reset:
        raise click.UsageError("give --link or --reset, not both")
    if link_code is not None:
        LinkJoiner.from_text(link_code)  # a typing mistake fails before anything else

    async def go() -> None:
        async with opened(options, keys=True, login=False) as client:
            await account.login(
                client, user, options.secrets.account_password(), link_code=link_code,
                reset=reset, say=note,
            )  # fmt: skip
            assert client.session is not None
            how = " (linked)" if link_code else ""
            note(f"logged in as {user} (device {client.session.device_id}){how}")

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
    """Show this device, your account key's fingerprint and the prekeys left."""
    from securechat.crypto.safety_number import (
        ACCOUNT_SAFETY_NUMBER_VERSION,
        fingerprint_half,
        format_safety_number,
    )

    async def go() -> None:
        async with opened(options, keys=True) as client:
            assert client.vault is not None
            account = client.vault.account
            counts = await client.api.count_prekeys()
            echo(f"user:            {account.address.user}")
            echo(f"device:          {account.address.device_id}")
            echo(f"server:          {client.endpoint.server}")
            key = account.account_key
            if key is None:
                echo("account key:     none yet (this device waits to be linked)")
            else:
                half = fingerprint_half(
                    key.to_bytes(), account.address.user, version=ACCOUNT_SAFETY_NUMBER_VERSION
                )
                echo(f"account key:     {key.display_fingerprint()}")
                echo(f"your half of every safety number: {format_safety_number(half)}")
            echo(
                f"prekeys left:    {counts.one_time_prekeys} one-time, "
                f"{counts.kem_prekeys} post-quantum"
            )

    run(go())


def _decide(options: Options, action: str, user: str, *, yes: bool = False) -> None:
    """One key decision (client/key_change.py, the same flow as the chat's)."""
    from securechat.client.key_change import decide

    async def confirm(question: str) -> bool:
        return yes or click.confirm(question)

    async def go() -> None:
        async with opened(options, keys=True) as client:
            accounts = client.messenger_for(note_event).accounts
            await decide(accounts, action, user, echo, confirm, "cli")

    run(go())


@keys.command("safety-number")
@click.argument("user")
@click.pass_obj
def keys_safety_number(options: Options, user: str) -> None:
    """Show the safety number you share with USER (the NEW key's, after a change)."""
    _decide(options, "look", user)


@keys.command("verify")
@click.argument("user")
@click.option("--yes", is_flag=True, help="Mark verified without asking (you compared).")
@click.pass_obj
def keys_verify(options: Options, user: str, yes: bool) -> None:
    """Compare the safety number with USER and mark the key shown verified (after a change:
    accept the NEW key as verified)."""
    _decide(options, "verify", user, yes=yes)


@keys.command("trust")
@click.argument("user")
@click.pass_obj
def keys_trust(options: Options, user: str) -> None:
    """Accept the new account key of USER without comparing safety numbers (unverified)."""
    _decide(options, "trust", user)


@keys.command("reject")
@click.argument("user")
@click.pass_obj
def keys_reject(options: Options, user: str) -> None:
    """Refuse the new account key of USER: keep the old key and the sessions made under it."""
    _decide(options, "reject", user)


@click.command("auth-key")
@click.argument("user")
@click.option("--register", "for_register", is_flag=True,
              help="Print a RegisterRequest (JSON, new salt) for grpcurl instead.")  # fmt: skip
@click.pass_obj
def auth_key(options: Options, user: str, for_register: bool) -> None:
    """Print USER's login secret (the authenticator derived from the password) for grpcurl."""
    import base64
    import json

    from securechat.client.credentials import derive, fetch_login, new_keys

    async def go() -> None:
        async with opened(options, login=False) as client:
            password = options.secrets.account_password()
            if for_register:
                keys = await new_keys(password)
                params = keys.params
                echo(json.dumps({
                    "username": user,
                    "password": keys.authenticator_text(),
                    "login_salt": base64.b64encode(keys.salt).decode("ascii"),
                    "argon2": {"iterations": params.iterations, "lanes": params.lanes,
                               "memory_kib": params.memory_cost},
                }))  # fmt: skip
                return
            server = await fetch_login(client.api, user)
            if server.legacy_password:
                note(f"{user} still logs in with the password itself (a legacy account): "
                     "the first `securechat login` upgrades it")  # fmt: skip
                echo(password)
                return
            echo((await derive(password, server.login)).authenticator_text())

    run(go())


COMMANDS = (register, login, logout, keys, auth_key)
