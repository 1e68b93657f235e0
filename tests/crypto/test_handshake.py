"""The hybrid handshake: both sides derive the same root key, and it depends on everything."""

from __future__ import annotations

import dataclasses

import pytest

from securechat.crypto import handshake
from securechat.crypto.identity import IdentityKeyPair
from securechat.crypto.prekeys import (
    PreKeyBundle,
    make_kem_prekey,
    make_one_time_prekey,
    make_signed_prekey,
)
from securechat.errors import BadSignature, DecryptionError

from ._support import NOW, flip_bit


@dataclasses.dataclass
class Responder:
    identity: IdentityKeyPair
    spk: handshake.SignedPreKeyPair
    opk: handshake.OneTimePreKeyPair
    kem: handshake.KemPreKeyPair

    def bundle(self, *, with_opk: bool = True) -> PreKeyBundle:
        return PreKeyBundle(
            "bob",
            2,
            self.identity.public,
            self.spk.public,
            self.opk.public if with_opk else None,
            self.kem.public,
        )

    def respond(self, header: handshake.PreKeyHeader, *, with_opk: bool = True) -> bytes:
        return handshake.respond(
            self.identity,
            "bob",
            2,
            "alice",
            1,
            header,
            self.spk,
            self.opk if with_opk else None,
            self.kem,
        )


@pytest.fixture(scope="module")
def bob() -> Responder:
    identity = IdentityKeyPair.generate()
    return Responder(
        identity,
        make_signed_prekey(identity, "bob", 2, 1, NOW),
        make_one_time_prekey(identity, "bob", 2, 1),
        make_kem_prekey(identity, "bob", 2, 1, last_resort=False),
    )


@pytest.fixture(scope="module")
def alice() -> IdentityKeyPair:
    return IdentityKeyPair.generate()


@pytest.mark.parametrize("with_opk", [True, False])
def test_both_sides_derive_the_same_root_key(
    alice: IdentityKeyPair, bob: Responder, with_opk: bool
) -> None:
    result = handshake.initiate(alice, "alice", 1, bob.bundle(with_opk=with_opk))
    assert result.responder_ratchet_key == bob.spk.public.public_key
    assert (result.header.one_time_prekey_id is not None) == with_opk
    assert bob.respond(result.header, with_opk=with_opk) == result.root_key


def test_fresh_ephemeral_keys_give_fresh_root_keys(alice: IdentityKeyPair, bob: Responder) -> None:
    first = handshake.initiate(alice, "alice", 1, bob.bundle())
    second = handshake.initiate(alice, "alice", 1, bob.bundle())
    assert first.root_key != second.root_key


def test_root_key_binds_the_addresses(alice: IdentityKeyPair, bob: Responder) -> None:
    result = handshake.initiate(alice, "alice", 1, bob.bundle())
    other = handshake.respond(
        bob.identity, "bob", 2, "alice", 9, result.header, bob.spk, bob.opk, bob.kem
    )
    assert other != result.root_key


@pytest.mark.parametrize("bit", [8, 255, 256, 1500, 7000, 8703])
def test_tampered_kem_ciphertext_or_ephemeral_changes_the_key(
    alice: IdentityKeyPair, bob: Responder, bit: int
) -> None:
    result = handshake.initiate(alice, "alice", 1, bob.bundle())
    header = result.header
    if bit < 256:
        header = dataclasses.replace(header, ephemeral_key=flip_bit(header.ephemeral_key, bit))
    else:
        header = dataclasses.replace(header, kem_ciphertext=flip_bit(header.kem_ciphertext, bit))
    assert bob.respond(header) != result.root_key


def test_missing_one_time_key_is_rejected(alice: IdentityKeyPair, bob: Responder) -> None:
    result = handshake.initiate(alice, "alice", 1, bob.bundle())
    with pytest.raises(DecryptionError):
        bob.respond(result.header, with_opk=False)


def test_forged_initiator_identity_is_rejected(alice: IdentityKeyPair, bob: Responder) -> None:
    result = handshake.initiate(alice, "alice", 1, bob.bundle())
    identity = dataclasses.replace(
        result.header.identity, signature=flip_bit(result.header.identity.signature, 1)
    )
    with pytest.raises(DecryptionError):
        bob.respond(dataclasses.replace(result.header, identity=identity))


def test_initiator_rejects_a_badly_signed_bundle(alice: IdentityKeyPair, bob: Responder) -> None:
    bundle = bob.bundle()
    spk = dataclasses.replace(bundle.signed_prekey, created_at=NOW + 1)
    with pytest.raises(BadSignature):
        handshake.initiate(alice, "alice", 1, dataclasses.replace(bundle, signed_prekey=spk))
