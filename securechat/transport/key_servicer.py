"""KeyService: publish, refill and claim public key bundles; account keys, device changes and
the link relay."""

from __future__ import annotations

from securechat.domain.model import (
    Bundle,
    ClaimedBundle,
    DeviceRef,
    KemPreKeyRecord,
    OneTimePreKeyRecord,
    SignedPreKeyRecord,
)
from securechat.services.devices import AccountDevices, AccountListing
from securechat.services.keys import KeyDirectory
from securechat.services.link_relay import LinkRelay
from securechat.transport import fields
from securechat.transport.convert import device_to_proto
from securechat.transport.rpc import Call
from securechat_proto.v1 import keys_pb2


def _signed(m: keys_pb2.SignedPreKey) -> SignedPreKeyRecord:
    return SignedPreKeyRecord(m.key_id, m.public_key, m.created_at, m.signature)


def _one_time(m: keys_pb2.OneTimePreKey) -> OneTimePreKeyRecord:
    return OneTimePreKeyRecord(m.key_id, m.public_key, m.signature)


def _kem(m: keys_pb2.KemPreKey) -> KemPreKeyRecord:
    return KemPreKeyRecord(m.key_id, m.public_key, m.signature, m.last_resort)


def _bundle_to_proto(bundle: ClaimedBundle) -> keys_pb2.PreKeyBundle:
    spk = bundle.signed_prekey
    message = keys_pb2.PreKeyBundle(
        device=device_to_proto(bundle.device),
        identity_key=bundle.identity_key,
        signed_prekey=keys_pb2.SignedPreKey(
            key_id=spk.key_id,
            public_key=spk.public_key,
            created_at=spk.created_at,
            signature=spk.signature,
        ),
        kem_prekey=keys_pb2.KemPreKey(
            key_id=bundle.kem_prekey.key_id,
            public_key=bundle.kem_prekey.public_key,
            signature=bundle.kem_prekey.signature,
            last_resort=bundle.kem_prekey.last_resort,
        ),
    )
    if bundle.one_time_prekey is not None:
        otk = bundle.one_time_prekey
        message.one_time_prekey.CopyFrom(
            keys_pb2.OneTimePreKey(
                key_id=otk.key_id, public_key=otk.public_key, signature=otk.signature
            )
        )
    return message


def listing_to_proto(listing: AccountListing) -> keys_pb2.GetAccountResponse:
    account = listing.account
    return keys_pb2.GetAccountResponse(
        account_key=account.account_key if account is not None else b"",
        devices=[
            keys_pb2.AccountDevice(
                device_id=d.device_id,
                certificate=d.certificate or b"",
                identity_key=d.identity_key or b"",
                binding=d.binding or b"",
                has_bundle=d.identity_key is not None,
                last_seen_ms=d.last_seen_ms,
            )
            for d in listing.devices
        ],
        removals=listing.removals,
        device_list=account.device_list if account is not None else b"",
        max_devices=listing.max_devices,
    )


class KeyServicer:
    def __init__(self, directory: KeyDirectory, devices: AccountDevices, relay: LinkRelay) -> None:
        self.directory = directory
        self.devices = devices
        self.relay = relay

    async def PublishBundle(
        self, request: keys_pb2.PublishBundleRequest, call: Call
    ) -> keys_pb2.PublishBundleResponse:
        bundle = Bundle(
            identity_key=request.identity_key,
            signed_prekey=_signed(request.signed_prekey),
            one_time_prekeys=[_one_time(k) for k in request.one_time_prekeys],
            kem_prekeys=[_kem(k) for k in request.kem_prekeys],
            last_resort=_kem(request.last_resort_kem_prekey)
            if request.HasField("last_resort_kem_prekey")
            else None,
            binding=request.binding or None,
        )
        counts = await self.directory.publish(call.device, bundle)
        return keys_pb2.PublishBundleResponse(
            one_time_prekeys=counts.one_time, kem_prekeys=counts.kem_one_time
        )

    async def AddPreKeys(
        self, request: keys_pb2.AddPreKeysRequest, call: Call
    ) -> keys_pb2.AddPreKeysResponse:
        counts = await self.directory.add_prekeys(
            call.device,
            [_one_time(k) for k in request.one_time_prekeys],
            [_kem(k) for k in request.kem_prekeys],
            _signed(request.signed_prekey) if request.HasField("signed_prekey") else None,
            _kem(request.last_resort_kem_prekey)
            if request.HasField("last_resort_kem_prekey")
            else None,
        )
        return keys_pb2.AddPreKeysResponse(
            one_time_prekeys=counts.one_time, kem_prekeys=counts.kem_one_time
        )

    async def ClaimBundles(
        self, request: keys_pb2.ClaimBundlesRequest, call: Call
    ) -> keys_pb2.ClaimBundlesResponse:
        device_ids = fields.device_ids(list(request.device_ids), "device_ids")
        bundles = await self.directory.claim(request.user, device_ids, call.user)
        return keys_pb2.ClaimBundlesResponse(bundles=[_bundle_to_proto(b) for b in bundles])

    async def ListDevices(
        self, request: keys_pb2.ListDevicesRequest, call: Call
    ) -> keys_pb2.ListDevicesResponse:
        devices = await self.directory.devices(request.user)
        return keys_pb2.ListDevicesResponse(
            devices=[
                keys_pb2.DeviceInfo(
                    device=device_to_proto(DeviceRef(d.user, d.device_id)),
                    has_bundle=d.identity_key is not None,
                    identity_key=d.identity_key or b"",
                    last_seen_ms=d.last_seen_ms,
                )
                for d in devices
            ]
        )

    async def CountPreKeys(
        self, request: keys_pb2.CountPreKeysRequest, call: Call
    ) -> keys_pb2.CountPreKeysResponse:
        counts = await self.directory.counts(call.device)
        return keys_pb2.CountPreKeysResponse(
            one_time_prekeys=counts.one_time, kem_prekeys=counts.kem_one_time
        )

    async def PublishAccount(
        self, request: keys_pb2.PublishAccountRequest, call: Call
    ) -> keys_pb2.PublishAccountResponse:
        await self.devices.publish_account(
            call.device,
            request.account_key,
            request.certificate,
            request.binding,
            request.device_list,
            reset=request.reset,
        )
        return keys_pb2.PublishAccountResponse()

    async def GetAccount(
        self, request: keys_pb2.GetAccountRequest, call: Call
    ) -> keys_pb2.GetAccountResponse:
        return listing_to_proto(await self.devices.listing(request.user))

    async def PublishDeviceChange(
        self, request: keys_pb2.PublishDeviceChangeRequest, call: Call
    ) -> keys_pb2.PublishDeviceChangeResponse:
        change = request.WhichOneof("change")
        current = await self.devices.change(
            call.device,
            request.device_list,
            request.certificate if change == "certificate" else None,
            request.removal if change == "removal" else None,
        )
        if current is None:
            return keys_pb2.PublishDeviceChangeResponse(accepted=True)
        return keys_pb2.PublishDeviceChangeResponse(
            accepted=False, current=listing_to_proto(current)
        )

    async def PostLinkMessage(
        self, request: keys_pb2.PostLinkMessageRequest, call: Call
    ) -> keys_pb2.PostLinkMessageResponse:
        await self.relay.post(call.user, request.relay_id, request.slot, request.message)
        return keys_pb2.PostLinkMessageResponse()

    async def GetLinkMessage(
        self, request: keys_pb2.GetLinkMessageRequest, call: Call
    ) -> keys_pb2.GetLinkMessageResponse:
        found = await self.relay.get(call.user, request.relay_id, request.slot)
        return keys_pb2.GetLinkMessageResponse(found=found is not None, message=found or b"")
