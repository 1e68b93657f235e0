"""Keeping this device's published keys healthy: publish, refill prekeys, rotate weekly, and
notice when someone claims them fast (a drain).

The server never pushes "running low"; like Signal's clients, this one checks: when its stream
opens, and after activity (a send or an incoming message), at most once per
``CHECK_INTERVAL_S`` (no poll per message). It refills once two thirds are gone.

A device of an account publishes its bundle with its binding (the identity's signature naming
the account key); a new device waiting for its link grant publishes nothing (the server would
refuse it). The weekly rotation replaces the signed prekey and the last-resort post-quantum
prekey together (the old private halves stay for a grace period, see crypto/prekey_store.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from securechat.client.bundles import add_prekeys_request, publish_request
from securechat.client.rpc.api import Api
from securechat.client.vault import Vault, now_s

log = logging.getLogger("securechat.client.upkeep")

ONE_TIME_LOW = 34
ONE_TIME_TARGET = 100
KEM_LOW = 7
KEM_TARGET = 20
CHECK_INTERVAL_S = 60.0
#: One-time prekeys claimed between two checks that count as a drain worth telling the user.
DRAIN_ALERT = 30
SIGNED_PREKEY_MAX_AGE_S = 7 * 24 * 3600


@dataclass(frozen=True)
class Upkeep:
    published: bool = False
    one_time_added: int = 0
    kem_added: int = 0
    rotated: bool = False
    # What the server had left before any refill (-1: not asked).
    one_time_left: int = -1


class RefillWatch:
    """When to check the server's prekey counts again, and whether they fell like a drain."""

    def __init__(self, interval: float = CHECK_INTERVAL_S) -> None:
        self.interval = interval
        self.last_check = float("-inf")
        self.expected = -1  # one-time prekeys on the server after the last check

    def due(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if now - self.last_check < self.interval:
            return False
        self.last_check = now
        return True

    def observe(self, result: Upkeep) -> int:
        """Record a check; returns how many one-time prekeys were claimed since the last one
        when that is a drain (``DRAIN_ALERT`` or more), else 0."""
        claimed = 0
        if self.expected >= 0 and result.one_time_left >= 0:
            claimed = max(0, self.expected - result.one_time_left)
        if result.one_time_left >= 0:
            self.expected = result.one_time_left + result.one_time_added
        if claimed >= DRAIN_ALERT:
            log.warning("%d one-time prekeys were claimed since the last check", claimed)
            return claimed
        return 0


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
    left = counts.one_time_prekeys
    if not (one_time or kem or signed):
        return Upkeep(one_time_left=left)
    vault.save()  # private halves first, so no published key is ever unknown to us
    await api.add_prekeys(add_prekeys_request(one_time, kem, signed, last_resort))
    return Upkeep(False, len(one_time), len(kem), signed is not None, left)
