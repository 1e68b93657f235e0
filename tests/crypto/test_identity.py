"""Identity keys: canonical 128-byte encoding and the signature binding the DH key."""

from __future__ import annotations

import dataclasses

import pytest

from securechat.crypto.identity import IDENTITY_PUBLIC_SIZE, IdentityKeyPair, IdentityPublic
from securechat.errors import BadSignature, InvalidArgument

from ._support import flip_bit


def test_public_identity_round_trips_as_128_bytes() -> None:
    identity = IdentityKeyPair.generate().public
    encoded = identity.to_bytes()
    assert len(encoded) == IDENTITY_PUBLIC_SIZE == 128
    assert encoded == identity.signing_key + identity.dh_key + identity.signature
    assert IdentityPublic.from_bytes(encoded) == identity
    identity.verify()


def test_private_identity_round_trips() -> None:
    pair = IdentityKeyPair.generate()
    assert IdentityKeyPair.from_bytes(pair.to_bytes()).public == pair.public


@pytest.mark.parametrize("bit", [0, 255, 256, 511, 512, 1023])
def test_any_flipped_bit_breaks_the_binding(bit: int) -> None:
    encoded = IdentityKeyPair.generate().public.to_bytes()
    with pytest.raises(BadSignature):
        IdentityPublic.from_bytes(flip_bit(encoded, bit)).verify()


def test_dh_key_of_another_identity_is_rejected() -> None:
    first, second = IdentityKeyPair.generate().public, IdentityKeyPair.generate().public
    with pytest.raises(BadSignature):
        dataclasses.replace(first, dh_key=second.dh_key).verify()


def test_wrong_length_is_rejected() -> None:
    with pytest.raises(InvalidArgument):
        IdentityPublic.from_bytes(b"\x00" * 127)
    with pytest.raises(InvalidArgument):
        IdentityKeyPair.from_bytes(b"\x00" * 63)
