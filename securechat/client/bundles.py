"""Conversion between the crypto layer's key records and the KeyService messages."""

from __future__ import annotations

from securechat.crypto.account import DeviceUpload
from securechat.crypto.certificates import AccountBinding
from securechat.crypto.identity import IdentityPublic
from securechat.crypto.prekeys import (
    KemPreKeyPublic,
    OneTimePreKeyPublic,
    PreKeyBundle,
    SignedPreKeyPublic,
)
from securechat.errors import BadSignature, InvalidArgument
from securechat_proto.v1 import keys_pb2


def signed_to_proto(key: SignedPreKeyPublic) -> keys_pb2.SignedPreKey:
    return keys_pb2.SignedPreKey(
        key_id=key.key_id,
        public_key=key.public_key,
        created_at=key.created_at,
        signature=key.signature,
    )


def one_time_to_proto(key: OneTimePreKeyPublic) -> keys_pb2.OneTimePreKey:
    return keys_pb2.OneTimePreKey(
        key_id=key.key_id, public_key=key.public_key, signature=key.signature
    )


def kem_to_proto(key: KemPreKeyPublic) -> keys_pb2.KemPreKey:
    return keys_pb2.KemPreKey(
        key_id=key.key_id,
        public_key=key.public_key,
        signature=key.signature,
        last_resort=key.last_resort,
    )


def publish_request(
    upload: DeviceUpload, binding: AccountBinding | None = None
) -> keys_pb2.PublishBundleRequest:
    """The PublishBundle request for everything a device uploads (with its binding, once the
    device belongs to an account key)."""
    return keys_pb2.PublishBundleRequest(
        identity_key=upload.identity.to_bytes(),
        signed_prekey=signed_to_proto(upload.signed_prekey),
        one_time_prekeys=[one_time_to_proto(k) for k in upload.one_time_prekeys],
        kem_prekeys=[kem_to_proto(k) for k in upload.kem_prekeys],
        last_resort_kem_prekey=kem_to_proto(upload.last_resort_kem_prekey),
        binding=b"" if binding is None else binding.to_bytes(),
    )


def add_prekeys_request(
    one_time: list[OneTimePreKeyPublic],
    kem: list[KemPreKeyPublic],
    signed: SignedPreKeyPublic | None,
    last_resort: KemPreKeyPublic | None = None,
) -> keys_pb2.AddPreKeysRequest:
    request = keys_pb2.AddPreKeysRequest(
        one_time_prekeys=[one_time_to_proto(k) for k in one_time],
        kem_prekeys=[kem_to_proto(k) for k in kem],
    )
    if signed is not None:
        request.signed_prekey.CopyFrom(signed_to_proto(signed))
    if last_resort is not None:
        request.last_resort_kem_prekey.CopyFrom(kem_to_proto(last_resort))
    return request


def bundle_from_proto(message: keys_pb2.PreKeyBundle) -> PreKeyBundle:
    """A claimed bundle as the crypto layer's record (BadSignature if it is malformed)."""
    try:
        identity = IdentityPublic.from_bytes(message.identity_key)
    except (InvalidArgument, ValueError) as exc:
        raise BadSignature(
            f"the key bundle of {message.device.user} has a malformed identity key"
        ) from exc
    spk = message.signed_prekey
    one_time = None
    if message.HasField("one_time_prekey"):
        otk = message.one_time_prekey
        one_time = OneTimePreKeyPublic(otk.key_id, otk.public_key, otk.signature)
    kem = message.kem_prekey
    return PreKeyBundle(
        user=message.device.user,
        device_id=message.device.device_id,
        identity=identity,
        signed_prekey=SignedPreKeyPublic(spk.key_id, spk.public_key, spk.created_at, spk.signature),
        one_time_prekey=one_time,
        kem_prekey=KemPreKeyPublic(kem.key_id, kem.public_key, kem.signature, kem.last_resort),
    )
