"""Trust on first use: pins, changes, acknowledgement and verification."""

from __future__ import annotations

import pytest

from securechat.crypto.encoding import Reader, Writer
from securechat.crypto.identity import IdentityKeyPair
from securechat.crypto.trust import TrustLevel, TrustStore
from securechat.errors import IdentityChanged, InvalidArgument

from ._support import ALICE, BOB, CONVERSATION, NOW, bundle_from, make_account, paired

FIRST = IdentityKeyPair.generate().public
SECOND = IdentityKeyPair.generate().public


def test_first_identity_is_pinned_unverified() -> None:
    store = TrustStore()
    assert store.level("bob") is TrustLevel.UNKNOWN
    store.observe("bob", FIRST)
    assert store.level("bob") is TrustLevel.UNVERIFIED
    store.check("bob", FIRST)


def test_change_of_unverified_contact_needs_acknowledgement() -> None:
    store = TrustStore()
    store.observe("bob", FIRST)
    store.observe("bob", SECOND)
    assert store.level("bob") is TrustLevel.CHANGED
    for identity in (FIRST, SECOND):
        with pytest.raises(IdentityChanged) as info:
            store.check("bob", identity)
        assert info.value.verified is False
    store.trust("bob")
    store.check("bob", SECOND)
    assert store.level("bob") is TrustLevel.UNVERIFIED
    with pytest.raises(IdentityChanged):
        store.check("bob", FIRST)


def test_change_of_verified_contact_needs_reverification() -> None:
    store = TrustStore()
    store.observe("bob", FIRST)
    store.verify("bob")
    store.observe("bob", SECOND)
    with pytest.raises(IdentityChanged) as info:
        store.check("bob", SECOND)
    assert info.value.verified is True
    with pytest.raises(InvalidArgument):
        store.trust("bob")
    assert store.displayed("bob") == SECOND
    store.verify("bob")
    store.check("bob", SECOND)
    assert store.level("bob") is TrustLevel.VERIFIED


def test_pins_serialize() -> None:
    store = TrustStore()
    store.observe("bob", FIRST)
    store.observe("bob", SECOND)
    store.observe("carol", SECOND)
    store.verify("carol")
    copy = TrustStore.read(Reader(store.write(Writer()).to_bytes()))
    assert copy.level("bob") is TrustLevel.CHANGED
    assert copy.level("carol") is TrustLevel.VERIFIED
    assert copy.pinned("bob") == FIRST


def test_unknown_user_operations_fail() -> None:
    store = TrustStore()
    with pytest.raises(InvalidArgument):
        store.verify("nobody")
    with pytest.raises(InvalidArgument):
        store.check("nobody", FIRST)


def test_account_never_encrypts_silently_to_a_new_identity() -> None:
    alice, _bob = paired()
    reinstalled = make_account("bob")  # same user and device, new identity
    with pytest.raises(IdentityChanged):
        alice.start_session(bundle_from(reinstalled.upload_bundle()), now=NOW)
    with pytest.raises(IdentityChanged):  # the old session is blocked too, until the user acts
        alice.encrypt(BOB, CONVERSATION, b"queued")
    alice.trust("bob")
    alice.start_session(
        bundle_from(
            reinstalled.upload_bundle(include_published=True), one_time_index=1, kem_index=1
        ),
        now=NOW,
    )
    envelope = alice.encrypt(BOB, CONVERSATION, b"after ack")
    assert reinstalled.decrypt(ALICE, CONVERSATION, envelope, now=NOW) == b"after ack"


def test_incoming_prekey_message_from_new_identity_blocks_replies() -> None:
    alice, bob = paired()
    alice.verify("bob")
    bob.verify("alice")
    new_alice = make_account("alice")
    new_alice.start_session(
        bundle_from(bob.upload_bundle(include_published=True), one_time_index=2, kem_index=1),
        now=NOW,
    )
    envelope = new_alice.encrypt(BOB, CONVERSATION, b"it's me, new phone")
    assert bob.decrypt(ALICE, CONVERSATION, envelope, now=NOW) == b"it's me, new phone"
    assert bob.trust_level("alice") is TrustLevel.CHANGED
    with pytest.raises(IdentityChanged) as info:
        bob.encrypt(ALICE, CONVERSATION, b"reply")
    assert info.value.verified is True
    assert bob.safety_number("alice") == new_alice.safety_number("bob")
    bob.verify("alice")
    assert new_alice.decrypt(BOB, CONVERSATION, bob.encrypt(ALICE, CONVERSATION, b"ok"), now=NOW)
