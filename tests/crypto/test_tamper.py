"""Single-bit tampering of any envelope byte or associated-data input always fails, harmlessly."""

from __future__ import annotations

import pytest

from securechat.crypto.account import Address, CryptoAccount
from securechat.crypto.envelope import Envelope
from securechat.crypto.handshake import Party
from securechat.errors import DecryptionError

from ._support import ALICE, BOB, CONVERSATION, NOW, bundle_from, flip_bit, make_account, paired


def _prekey_setup() -> tuple[CryptoAccount, CryptoAccount, bytes]:
    alice, bob = make_account("alice"), make_account("bob")
    alice.start_session(bundle_from(bob.upload_bundle()), now=NOW)
    return alice, bob, alice.encrypt(BOB, CONVERSATION, b"first message")


def test_every_byte_of_a_prekey_envelope_is_protected() -> None:
    _, bob, envelope = _prekey_setup()
    before = bob.to_bytes()
    for index in range(len(envelope)):
        with pytest.raises(DecryptionError):
            bob.decrypt(ALICE, CONVERSATION, flip_bit(envelope, index * 8 + index % 8), now=NOW)
    assert bob.to_bytes() == before
    assert bob.decrypt(ALICE, CONVERSATION, envelope, now=NOW) == b"first message"


def test_every_bit_of_a_normal_envelope_is_protected() -> None:
    alice, bob = paired()
    envelope = alice.encrypt(BOB, CONVERSATION, b"normal message")
    assert envelope[1] == 2
    before = bob.to_bytes()
    for bit in range(len(envelope) * 8):
        with pytest.raises(DecryptionError):
            bob.decrypt(ALICE, CONVERSATION, flip_bit(envelope, bit), now=NOW)
    assert bob.to_bytes() == before
    assert bob.decrypt(ALICE, CONVERSATION, envelope, now=NOW) == b"normal message"


@pytest.mark.parametrize("kind", ["prekey", "normal"])
def test_associated_data_inputs_are_bound(kind: str) -> None:
    if kind == "prekey":
        _, bob, envelope = _prekey_setup()
    else:
        alice, bob = paired()
        envelope = alice.encrypt(BOB, CONVERSATION, b"normal message")
    conversations = [CONVERSATION + "x", CONVERSATION[:-1], "", CONVERSATION.upper()]
    for conversation in conversations:
        with pytest.raises(DecryptionError):
            bob.decrypt(ALICE, conversation, envelope, now=NOW)
    for sender in (Address("alice", 2), Address("alicf", 1), Address("bob", 1)):
        with pytest.raises(DecryptionError):
            bob.decrypt(sender, CONVERSATION, envelope, now=NOW)
    assert bob.decrypt(ALICE, CONVERSATION, envelope, now=NOW) is not None


def test_recipient_address_and_identity_are_bound() -> None:
    alice, bob = paired()
    envelope = Envelope.parse(alice.encrypt(BOB, CONVERSATION, b"for bob device 1"))
    session = bob._sessions[ALICE].current
    assert session is not None
    sender = Party("alice", 1, session.remote_identity)
    other_identity = make_account("bob").identity_public
    for local in (
        Party("bob", 2, bob.identity_public),
        Party("bobby", 1, bob.identity_public),
        Party("bob", 1, other_identity),
    ):
        with pytest.raises(DecryptionError):
            session.open(local, sender, CONVERSATION, envelope, now=NOW, randomness=bob._randomness)
    local = Party("bob", 1, bob.identity_public)
    opened = session.open(
        local, sender, CONVERSATION, envelope, now=NOW, randomness=bob._randomness
    )
    assert opened == b"for bob device 1"


def test_message_type_is_bound() -> None:
    alice, bob = paired()
    envelope = alice.encrypt(BOB, CONVERSATION, b"x")
    relabelled = envelope[:1] + b"\x01" + envelope[2:]
    with pytest.raises(DecryptionError):
        bob.decrypt(ALICE, CONVERSATION, relabelled, now=NOW)
