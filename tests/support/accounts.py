"""Devices with account keys over the raw API: the crypto core signs, the test plays the client.

``first_device`` makes a logged-in device the first of its account (PublishAccount, then its
bundle with the binding); ``link`` runs the whole link protocol in process between an existing
device and a newly logged-in one and publishes what a client would.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from securechat.client.bundles import publish_request
from securechat.client.linking import account_request, change_request
from securechat.crypto.account import CryptoAccount
from securechat.crypto.device_book import DevicePublication
from securechat.crypto.linking import LinkJoiner
from securechat_proto.v1 import keys_pb2
from tests.support.net import Api

__all__ = ["AccountDevice", "account_request", "change_request", "first_device", "link", "now"]


def now() -> int:
    return int(time.time())


@dataclass
class AccountDevice:
    """One logged-in device and its end-to-end state."""

    api: Api
    crypto: CryptoAccount

    async def publish_bundle(self) -> None:
        request = publish_request(self.crypto.upload_bundle(), self.crypto.devices.binding)
        await self.api.keys.PublishBundle(request, metadata=self.api.md)

    async def publish_change(
        self, publication: DevicePublication
    ) -> keys_pb2.PublishDeviceChangeResponse:
        request = change_request(publication)
        reply: keys_pb2.PublishDeviceChangeResponse = await self.api.keys.PublishDeviceChange(
            request, metadata=self.api.md
        )
        if reply.accepted:
            self.crypto.devices.published(publication)
        return reply


async def first_device(api: Api) -> AccountDevice:
    """``api`` (logged in, without keys) becomes the first device of a new account key."""
    crypto = CryptoAccount.create(
        api.user, api.device_id, now=now(), one_time_count=2, kem_one_time_count=2
    )
    await api.keys.PublishAccount(account_request(crypto), metadata=api.md)
    device = AccountDevice(api, crypto)
    await device.publish_bundle()
    return device


async def link(existing: AccountDevice, api: Api, *, bundle: bool = True) -> AccountDevice:
    """Certify the device ``api`` is logged in as (without keys) from ``existing``."""
    new = CryptoAccount.create(
        api.user, api.device_id, now=now(), one_time_count=2, kem_one_time_count=2, linked=True
    )
    offer = existing.crypto.devices.link_offer(now=now())
    joiner = LinkJoiner(offer.code)
    request = new.devices.link_request(joiner, offer.offer_message())
    grant, publication = existing.crypto.devices.grant_link(
        offer, request, now=now(), max_devices=64
    )
    reply = await existing.publish_change(publication)
    assert reply.accepted, reply
    new.devices.complete_link(joiner, grant)
    device = AccountDevice(api, new)
    if bundle:
        await device.publish_bundle()
    return device


async def get_account(api: Api, user: str) -> keys_pb2.GetAccountResponse:
    reply: keys_pb2.GetAccountResponse = await api.keys.GetAccount(
        keys_pb2.GetAccountRequest(user=user), metadata=api.md
    )
    return reply
