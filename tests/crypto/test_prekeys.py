"""Prekey signatures: the server's upload checks and the claimer's bundle check."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from securechat.crypto.account import DeviceUpload
from securechat.crypto.identity import IdentityKeyPair
from securechat.crypto.prekeys import (
    make_kem_prekey,
    make_one_time_prekey,
    make_signed_prekey,
    verify_kem_prekey,
    verify_one_time_prekey,
    verify_signed_prekey,
)
from securechat.errors import BadSignature, InvalidArgument

from ._support import NOW, bundle_from, flip_bit, make_account


@pytest.fixture(scope="module")
def upload() -> DeviceUpload:
    return make_account("bob", 7).upload_bundle()


def test_server_side_checks_accept_a_fresh_upload(upload: DeviceUpload) -> None:
    upload.identity.verify()
    verify_signed_prekey(upload.identity, "bob", 7, upload.signed_prekey)
    for opk in upload.one_time_prekeys:
        verify_one_time_prekey(upload.identity, "bob", 7, opk)
    for kem in [*upload.kem_prekeys, upload.last_resort_kem_prekey]:
        verify_kem_prekey(upload.identity, "bob", 7, kem)
    assert upload.last_resort_kem_prekey.last_resort
    assert not any(kem.last_resort for kem in upload.kem_prekeys)


def test_upload_marks_one_time_keys_published(upload: DeviceUpload) -> None:
    account = make_account("carol")
    first = account.upload_bundle()
    assert len(first.one_time_prekeys) == 5
    assert len(first.kem_prekeys) == 3
    assert account.upload_bundle().one_time_prekeys == []
    assert account.upload_bundle(include_published=True).one_time_prekeys == (
        first.one_time_prekeys
    )
    refill = account.refill_one_time_prekeys(2)
    assert [key.key_id for key in refill] == [6, 7]
    assert [key.key_id for key in account.refill_kem_prekeys(1)] == [5]
    assert account.upload_bundle().one_time_prekeys == []


Verifier = Callable[..., None]
KINDS: list[tuple[str, Verifier]] = [
    ("signed_prekey", verify_signed_prekey),
    ("one_time_prekey", verify_one_time_prekey),
    ("kem_prekey", verify_kem_prekey),
]


def _key(upload: DeviceUpload, kind: str) -> Any:
    return {
        "signed_prekey": upload.signed_prekey,
        "one_time_prekey": upload.one_time_prekeys[0],
        "kem_prekey": upload.kem_prekeys[0],
    }[kind]


@pytest.mark.parametrize(("kind", "verify"), KINDS)
def test_bad_signature_is_rejected(upload: DeviceUpload, kind: str, verify: Verifier) -> None:
    key = _key(upload, kind)
    forged = dataclasses.replace(key, signature=flip_bit(key.signature, 3))
    with pytest.raises(BadSignature):
        verify(upload.identity, "bob", 7, forged)


@pytest.mark.parametrize(("kind", "verify"), KINDS)
def test_signature_is_bound_to_user_device_and_id(
    upload: DeviceUpload, kind: str, verify: Verifier
) -> None:
    key = _key(upload, kind)
    for user, device, changed in [
        ("mallory", 7, key),
        ("bob", 8, key),
        ("bob", 7, dataclasses.replace(key, key_id=key.key_id + 100)),
        ("bob", 7, dataclasses.replace(key, public_key=flip_bit(key.public_key, 9))),
    ]:
        with pytest.raises(BadSignature):
            verify(upload.identity, user, device, changed)


def test_signature_is_bound_to_kind_timestamp_and_last_resort() -> None:
    identity = IdentityKeyPair.generate()
    opk = make_one_time_prekey(identity, "bob", 1, 5).public
    spk = make_signed_prekey(identity, "bob", 1, 5, NOW).public
    kem = make_kem_prekey(identity, "bob", 1, 5, last_resort=False).public
    with pytest.raises(BadSignature):  # a one-time signature presented as a signed prekey's
        verify_signed_prekey(
            identity.public, "bob", 1, dataclasses.replace(spk, signature=opk.signature)
        )
    with pytest.raises(BadSignature):
        verify_signed_prekey(identity.public, "bob", 1, dataclasses.replace(spk, created_at=1))
    with pytest.raises(BadSignature):
        verify_kem_prekey(identity.public, "bob", 1, dataclasses.replace(kem, last_resort=True))


def test_wrong_key_sizes_are_invalid_arguments(upload: DeviceUpload) -> None:
    with pytest.raises(InvalidArgument):
        verify_signed_prekey(
            upload.identity,
            "bob",
            7,
            dataclasses.replace(upload.signed_prekey, public_key=b"\x01" * 33),
        )
    with pytest.raises(InvalidArgument):
        verify_kem_prekey(
            upload.identity, "bob", 7, dataclasses.replace(upload.kem_prekeys[0], key_id=-1)
        )


@pytest.mark.parametrize("field", ["identity", "signed_prekey", "one_time_prekey", "kem_prekey"])
def test_bundle_with_one_bad_signature_fails(upload: DeviceUpload, field: str) -> None:
    bundle = bundle_from(upload)
    bundle.verify()
    part = getattr(bundle, field)
    broken = dataclasses.replace(
        bundle, **{field: dataclasses.replace(part, signature=flip_bit(part.signature, 0))}
    )
    with pytest.raises(BadSignature):
        broken.verify()


def test_bundle_for_another_device_fails(upload: DeviceUpload) -> None:
    with pytest.raises(BadSignature):
        dataclasses.replace(bundle_from(upload), device_id=8).verify()


def test_malformed_bundle_key_is_a_bad_signature(upload: DeviceUpload) -> None:
    bundle = bundle_from(upload)
    spk = dataclasses.replace(bundle.signed_prekey, public_key=b"\x00")
    with pytest.raises(BadSignature):
        dataclasses.replace(bundle, signed_prekey=spk).verify()
