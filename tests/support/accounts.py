"""Devices with account keys over the raw API: the crypto core signs, the test plays the client.

``first_device`` makes a logged-in device the first of its account (PublishAccount, then its
bundle with the binding); ``link`` runs the whole link protocol in process between an existing
device and a newly logged-in one and publishes what a client would.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from securechat.client.bundles import publish_request
from securechat.crypto.account import CryptoAccount
from securechat.crypto.device_book import DevicePublication
from securechat.crypto.linking import LinkJoiner
from securechat_proto.v1 import keys_pb2
from tests.support.net import Api


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


def change_request(publication: DevicePublication) -> keys_pb2.PublishDeviceChangeRequest:
    request = keys_pb2.PublishDeviceChangeRequest(device_list=publication.head.to_bytes())
    if publication.certificate is not None:
        request.certificate = publication.certificate.to_bytes()
    if publication.removal is not None:
        request.removal = publication.removal.to_bytes()
    return request


def account_request(
    crypto: CryptoAccount, *, reset: bool = False
) -> keys_pb2.PublishAccountRequest:
    devices = crypto.devices
    assert devices.account_key and devices.certificate and devices.binding and devices.own_list
    return keys_pb2.PublishAccountRequest(
        account_key=devices.account_key.to_bytes(),
        certificate=devices.certificate.to_bytes(),
        binding=devices.binding.to_bytes(),
        device_list=devices.own_list.to_bytes(),
        reset=reset,
    )


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
