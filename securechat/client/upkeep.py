"""Keeping this device's published keys healthy: publish, refill prekeys, rotate weekly.

A device of an account publishes its bundle with its binding (the identity's signature naming
the account key); a new device waiting for its link grant publishes nothing (the server would
refuse it). The weekly rotation replaces the signed prekey and the last-resort post-quantum
prekey together (the old private halves stay for a grace period, see crypto/prekey_store.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from securechat.client.bundles import add_prekeys_request, publish_request
from securechat.client.rpc.api import Api
from securechat.client.vault import Vault, now_s

ONE_TIME_LOW = 25
ONE_TIME_TARGET = 100
KEM_LOW = 5
KEM_TARGET = 20
SIGNED_PREKEY_MAX_AGE_S = 7 * 24 * 3600


@dataclass(frozen=True)
class Upkeep:
    published: bool = False
    one_time_added: int = 0
    kem_added: int = 0
    rotated: bool = False


async def publish(api: Api, vault: Vault) -> None:
    """Publish the device bundle (again, with every unused key, if an earlier try failed)."""
    account = vault.account
    upload = account.upload_bundle(include_published=True)
    vault.save()
    await api.publish_bundle(publish_request(upload, account.devices.binding))
    vault.state.published = True
    vault.save()


async def maintain(api: Api, vault: Vault) -> Upkeep:
    """Publish if never done, refill one-time prekeys when few remain, rotate the signed and the
    last-resort prekey when they are a week old."""
    if vault.state.linking:
        return Upkeep()
    if not vault.state.published:
        await publish(api, vault)
        return Upkeep(published=True)
    counts = await api.count_prekeys()
    account = vault.account
    one_time = (
        account.refill_one_time_prekeys(ONE_TIME_TARGET - counts.one_time_prekeys)
        if counts.one_time_prekeys < ONE_TIME_LOW
        else []
    )
    kem = (
        account.refill_kem_prekeys(KEM_TARGET - counts.kem_prekeys)
        if counts.kem_prekeys < KEM_LOW
        else []
    )
    signed = last_resort = None
    if now_s() - vault.state.signed_prekey_at >= SIGNED_PREKEY_MAX_AGE_S:
        signed, last_resort = account.rotate_prekeys(now=now_s())
        vault.state.signed_prekey_at = now_s()
    if not (one_time or kem or signed):
        return Upkeep()
    vault.save()  # private halves first, so no published key is ever unknown to us
    await api.add_prekeys(add_prekeys_request(one_time, kem, signed, last_resort))
    return Upkeep(False, len(one_time), len(kem), signed is not None)
