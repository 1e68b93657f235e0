"""Linking a new device over the server's relay, both sides (the protocol is crypto/linking.py).

On the existing device (:func:`offer_link`): a one-time code is shown, the offer posted; when
the new device's request arrives it is opened and certified (a certificate and the device list
one version up, published with PublishDeviceChange), and only then is the grant posted. On the
new device (:func:`join_account`), logged in with the account password as a new device: the
offer the relay holds is checked against the typed code before anything is sent, the request
posted, and the grant (account key, certificate, device list, trusted contacts) installed; then
the device publishes its keys. A relay that swaps either side's key makes the link fail on both
devices; a wrong, expired or used code is refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from securechat.client.rpc.api import Api
from securechat.client.upkeep import publish
from securechat.client.vault import Vault, now_s
from securechat.client.verified import AccountBook
from securechat.crypto.account import Address, CryptoAccount
from securechat.crypto.device_book import DevicePublication
from securechat.crypto.linking import LINK_CODE_LIFETIME, LinkJoiner
from securechat.errors import FailedPrecondition, LinkError
from securechat_proto.v1 import keys_pb2

POLL_S = 0.5
Say = Callable[[str], None]


def change_request(publication: DevicePublication) -> keys_pb2.PublishDeviceChangeRequest:
    """The PublishDeviceChange request for a signed change of the own device set."""
    request = keys_pb2.PublishDeviceChangeRequest(device_list=publication.head.to_bytes())
    if publication.certificate is not None:
        request.certificate = publication.certificate.to_bytes()
    if publication.removal is not None:
        request.removal = publication.removal.to_bytes()
    return request


def account_request(
    account: CryptoAccount, *, reset: bool = False
) -> keys_pb2.PublishAccountRequest:
    """PublishAccount for the first device of an account key (or a reset)."""
    devices = account.devices
    key, certificate, binding, head = (
        devices.account_key,
        devices.certificate,
        devices.binding,
        devices.own_list,
    )
    if key is None or certificate is None or binding is None or head is None:
        raise FailedPrecondition("this device has no account key to publish")
    return keys_pb2.PublishAccountRequest(
        account_key=key.to_bytes(),
        certificate=certificate.to_bytes(),
        binding=binding.to_bytes(),
        device_list=head.to_bytes(),
        reset=reset,
    )


async def publish_change(api: Api, vault: Vault, publication: DevicePublication) -> None:
    """Publish a signed change; on success it becomes the own device list (saved)."""
    reply = await api.publish_device_change(change_request(publication))
    if not reply.accepted:
        raise FailedPrecondition(
            "another of your devices changed the device list at the same moment: nothing "
            "changed; try again"
        )
    vault.account.devices.published(publication)
    vault.save()


async def _wait_for(api: Api, relay_id: str, slot: str, deadline: float) -> bytes:
    while True:
        found = await api.get_link_message(relay_id, slot)
        if found is not None:
            return found
        if now_s() >= deadline:
            raise LinkError("expired")
        await asyncio.sleep(POLL_S)


async def offer_link(api: Api, accounts: AccountBook, say: Say) -> Address:
    """On an existing device: show a code, wait for the new device, certify it, grant it."""
    vault = accounts.vault
    await accounts.refresh(vault.account.address.user)  # sign on top of the newest list
    offer = vault.account.devices.link_offer(now=now_s())
    relay = offer.code.relay_id
    await api.post_link_message(relay, "offer", offer.offer_message())
    minutes = LINK_CODE_LIFETIME // 60
    say(f"link code: {offer.code.text()}")
    say(
        f"on the new device run `securechat login {vault.account.address.user} --link CODE` "
        f"with this code within {minutes} minutes (it works once)"
    )
    request = await _wait_for(api, relay, "request", offer.expires_at)
    grant, publication = vault.account.devices.grant_link(
        offer, request, now=now_s(), max_devices=accounts.max_devices
    )
    await publish_change(api, vault, publication)
    await api.post_link_message(relay, "grant", grant)
    assert publication.certificate is not None
    return Address(publication.certificate.user, publication.certificate.device_id)


async def join_account(api: Api, vault: Vault, joiner: LinkJoiner, say: Say) -> None:
    """On the new device: answer the code's offer, install the grant, publish the keys."""
    deadline = now_s() + LINK_CODE_LIFETIME
    relay = joiner.code.relay_id
    say("waiting for your other device...")
    offer = await _wait_for(api, relay, "offer", deadline)
    request = vault.account.devices.link_request(joiner, offer)  # checks the offer's key first
    await api.post_link_message(relay, "request", request)
    grant = await _wait_for(api, relay, "grant", deadline)
    vault.account.devices.complete_link(joiner, grant)
    vault.state.linking = False
    vault.save()
    await publish(api, vault)
