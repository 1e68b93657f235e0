"""The own devices as the user sees them, and removing one (shared by the CLI and the chat)."""

from __future__ import annotations

from collections.abc import Callable

from securechat.client.display import clock
from securechat.client.linking import offer_link, publish_change
from securechat.client.rpc.api import Api
from securechat.client.vault import now_s
from securechat.client.verified import AccountBook


async def own_devices(accounts: AccountBook) -> list[str]:
    """One line per device: the certified ones (this one marked), then any the server lists
    that the account key did not certify (those never receive anything)."""
    me = accounts.me
    await accounts.refresh(me.user)
    account = accounts.vault.account
    key = account.account_key
    if key is None:
        return ["this device has no account key yet: link it (`securechat login USER --link CODE`)"]
    verified = account.devices.verified(me.user)
    served = {d.device_id: d for d in accounts.served[me.user].devices}
    lines = [f"account key {key.display_fingerprint()}"]
    for device_id in sorted(verified):
        here = "  (this device)" if device_id == me.device_id else ""
        listed = served.get(device_id)
        seen = f", last seen {clock(listed.last_seen_ms)}" if listed and listed.last_seen_ms else ""
        lines.append(f"device {device_id}  certified{seen}{here}")
    for device_id in sorted(set(served) - set(verified)):
        lines.append(f"device {device_id}  NOT CERTIFIED by your account key: never encrypted to")
    return lines


async def remove_device(api: Api, accounts: AccountBook, device_id: int) -> str:
    """Sign and publish the removal of one of the own devices (never the one in use)."""
    vault = accounts.vault
    await accounts.refresh(vault.account.address.user)  # sign on top of the newest list
    publication = vault.account.devices.remove(device_id, now=now_s())
    await publish_change(api, vault, publication)
    accounts.forget(vault.account.address.user)
    return (
        f"removed device {device_id}: it receives nothing from now on (what it already "
        "received stays on it)"
    )


async def devices_command(
    api: Api, accounts: AccountBook, args: tuple[str, ...], show: Callable[[str], None]
) -> None:
    """The chat's /devices [link | remove N] (the CLI's `securechat devices ...` alike)."""
    if args == ("link",):
        added = await offer_link(api, accounts, show)
        show(f"linked device {added.device_id}: it is one of your devices now")
    elif len(args) == 2 and args[0] == "remove":
        show(await remove_device(api, accounts, int(args[1])))
    else:
        for line in await own_devices(accounts):
            show(line)
