"""The client facade: session setup, replay, prekey consumption, replacement and persistence."""

from __future__ import annotations

import dataclasses

import pytest

from securechat.crypto.account import Address, CryptoAccount
from securechat.crypto.prekey_store import SIGNED_PREKEY_GRACE
from securechat.crypto.trust import TrustLevel
from securechat.errors import BadSignature, DecryptionError, IdentityChanged, InvalidArgument

from ._support import ALICE, BOB, CONVERSATION, NOW, bundle_from, flip_bit, make_account, paired


def test_first_messages_are_prekey_until_a_reply_arrives() -> None:
    alice, bob = make_account("alice"), make_account("bob")
    alice.start_session(bundle_from(bob.upload_bundle()), now=NOW)
    first, second = (alice.encrypt(BOB, CONVERSATION, t) for t in (b"1", b"2"))
    assert first[1] == second[1] == 1  # PREKEY
    assert bob.decrypt(ALICE, CONVERSATION, second, now=NOW) == b"2"
    assert bob.decrypt(ALICE, CONVERSATION, first, now=NOW) == b"1"
    assert alice.decrypt(BOB, CONVERSATION, bob.encrypt(ALICE, CONVERSATION, b"r"), now=NOW)
    assert alice.encrypt(BOB, CONVERSATION, b"3")[1] == 2  # NORMAL


def test_replayed_first_message_fails() -> None:
    alice, bob = make_account("alice"), make_account("bob")
    alice.start_session(bundle_from(bob.upload_bundle()), now=NOW)
    first = alice.encrypt(BOB, CONVERSATION, b"once")
    assert bob.decrypt(ALICE, CONVERSATION, first, now=NOW) == b"once"
    with pytest.raises(DecryptionError):
        bob.decrypt(ALICE, CONVERSATION, first, now=NOW)


def test_replay_after_the_session_is_gone_fails_too() -> None:
    alice, bob = make_account("alice"), make_account("bob")
    upload = bob.upload_bundle()
    alice.start_session(bundle_from(upload, one_time_index=None, kem_index=None), now=NOW)
    first = alice.encrypt(BOB, CONVERSATION, b"last resort only")
    bob.decrypt(ALICE, CONVERSATION, first, now=NOW)
    restored = CryptoAccount.from_bytes(bob.to_bytes())
    restored.archive_sessions()
    restored._sessions.clear()
    with pytest.raises(DecryptionError):
        restored.decrypt(ALICE, CONVERSATION, first, now=NOW)


def test_reused_one_time_prekey_id_fails_for_the_second_initiator() -> None:
    bob = make_account("bob")
    bundle = bundle_from(bob.upload_bundle())
    alice, carol = make_account("alice"), make_account("carol")
    alice.start_session(bundle, now=NOW)
    carol.start_session(bundle, now=NOW)
    assert bob.decrypt(ALICE, CONVERSATION, alice.encrypt(BOB, CONVERSATION, b"a"), now=NOW)
    with pytest.raises(DecryptionError):
        bob.decrypt(
            Address("carol", 1), CONVERSATION, carol.encrypt(BOB, CONVERSATION, b"c"), now=NOW
        )


def test_unknown_prekey_ids_fail_and_consume_nothing() -> None:
    alice, bob = make_account("alice"), make_account("bob")
    upload = bob.upload_bundle()
    other = make_account("bob").upload_bundle()  # same user name, different keys and ids
    bundle = dataclasses.replace(
        bundle_from(upload),
        one_time_prekey=dataclasses.replace(upload.one_time_prekeys[0], key_id=99),
    )
    with pytest.raises(BadSignature):
        alice.start_session(bundle, now=NOW)
    assert other.identity != upload.identity
    assert len(bob._prekeys.one_time) == 5


def test_bad_bundle_signature_is_rejected_by_start_session() -> None:
    alice, bob = make_account("alice"), make_account("bob")
    bundle = bundle_from(bob.upload_bundle())
    kem = dataclasses.replace(bundle.kem_prekey, signature=flip_bit(bundle.kem_prekey.signature, 5))
    with pytest.raises(BadSignature):
        alice.start_session(dataclasses.replace(bundle, kem_prekey=kem), now=NOW)
    assert not alice.has_session(BOB)


def test_one_time_keys_are_deleted_only_after_the_message_opens() -> None:
    alice, bob = make_account("alice"), make_account("bob")
    alice.start_session(bundle_from(bob.upload_bundle()), now=NOW)
    first = alice.encrypt(BOB, CONVERSATION, b"x")
    with pytest.raises(DecryptionError):
        bob.decrypt(ALICE, "another conversation", first, now=NOW)
    assert len(bob._prekeys.one_time) == 5
    assert len(bob._prekeys.kem) == 4
    bob.decrypt(ALICE, CONVERSATION, first, now=NOW)
    assert len(bob._prekeys.one_time) == 4
    assert len(bob._prekeys.kem) == 3


def test_last_resort_kem_key_survives_use() -> None:
    alice, bob = make_account("alice"), make_account("bob")
    alice.start_session(bundle_from(bob.upload_bundle(), kem_index=None), now=NOW)
    bob.decrypt(ALICE, CONVERSATION, alice.encrypt(BOB, CONVERSATION, b"x"), now=NOW)
    assert bob._prekeys.last_resort_id in bob._prekeys.kem


def test_new_prekey_message_replaces_the_session_only_once_it_decrypts() -> None:
    alice, bob = paired()
    upload = bob.upload_bundle(include_published=True)
    alice.start_session(bundle_from(upload, one_time_index=1, kem_index=1), now=NOW)
    fresh = alice.encrypt(BOB, CONVERSATION, b"new session")
    with pytest.raises(DecryptionError):
        bob.decrypt(ALICE, CONVERSATION, flip_bit(fresh, len(fresh) * 8 - 1), now=NOW)
    old_current = bob._sessions[ALICE].current
    assert bob.decrypt(ALICE, CONVERSATION, fresh, now=NOW) == b"new session"
    assert bob._sessions[ALICE].current is not old_current
    reply = bob.encrypt(ALICE, CONVERSATION, b"on the new one")
    assert alice.decrypt(BOB, CONVERSATION, reply, now=NOW) == b"on the new one"


def test_simultaneous_initiation_converges() -> None:
    alice, bob = make_account("alice"), make_account("bob")
    alice.start_session(bundle_from(bob.upload_bundle()), now=NOW)
    bob.start_session(bundle_from(alice.upload_bundle()), now=NOW)
    from_alice = alice.encrypt(BOB, CONVERSATION, b"hi bob")
    from_bob = bob.encrypt(ALICE, CONVERSATION, b"hi alice")
    assert bob.decrypt(ALICE, CONVERSATION, from_alice, now=NOW) == b"hi bob"
    assert alice.decrypt(BOB, CONVERSATION, from_bob, now=NOW) == b"hi alice"
    for _ in range(2):
        assert bob.decrypt(ALICE, CONVERSATION, alice.encrypt(BOB, CONVERSATION, b"a"), now=NOW)
        assert alice.decrypt(BOB, CONVERSATION, bob.encrypt(ALICE, CONVERSATION, b"b"), now=NOW)


def test_state_round_trips_through_bytes() -> None:
    alice, bob = paired()
    late = alice.encrypt(BOB, CONVERSATION, b"late")
    alice.encrypt(BOB, CONVERSATION, b"lost")
    alice = CryptoAccount.from_bytes(alice.to_bytes())
    bob = CryptoAccount.from_bytes(bob.to_bytes())
    assert bob.decrypt(ALICE, CONVERSATION, late, now=NOW) == b"late"
    assert bob.decrypt(ALICE, CONVERSATION, alice.encrypt(BOB, CONVERSATION, b"n"), now=NOW)
    assert CryptoAccount.from_bytes(bob.to_bytes()).to_bytes() == bob.to_bytes()
    assert bob.trust_level("alice") is TrustLevel.UNVERIFIED


@pytest.mark.parametrize("mutation", ["magic", "version", "truncated", "trailing"])
def test_malformed_state_is_rejected(mutation: str) -> None:
    data = make_account("alice").to_bytes()
    broken = {
        "magic": b"XXXX" + data[4:],
        "version": data[:4] + b"\x00\x03" + data[6:],
        "truncated": data[:-10],
        "trailing": data + b"\x00",
    }[mutation]
    with pytest.raises(InvalidArgument):
        CryptoAccount.from_bytes(broken)


def test_encrypt_without_session_is_an_invalid_argument() -> None:
    with pytest.raises(InvalidArgument):
        make_account("alice").encrypt(BOB, CONVERSATION, b"x")


def test_decrypt_from_unknown_sender_or_wrong_device_fails() -> None:
    alice, bob = paired()
    envelope = alice.encrypt(BOB, CONVERSATION, b"x")
    for sender in (Address("alice", 2), Address("mallory", 1)):
        with pytest.raises(DecryptionError):
            bob.decrypt(sender, CONVERSATION, envelope, now=NOW)
    assert bob.decrypt(ALICE, CONVERSATION, envelope, now=NOW) == b"x"


def test_archived_sessions_receive_but_never_send() -> None:
    alice, bob = paired()
    in_flight = alice.encrypt(BOB, CONVERSATION, b"in flight")
    bob.archive_sessions()
    assert not bob.has_session(ALICE)
    assert bob.decrypt(ALICE, CONVERSATION, in_flight, now=NOW) == b"in flight"
    assert not bob.has_session(ALICE)
    with pytest.raises(InvalidArgument):
        bob.encrypt(ALICE, CONVERSATION, b"x")


def test_room_fan_out_checks_every_pin_first() -> None:
    sender = make_account("alice")
    members = [make_account(f"m{i}") for i in range(3)]
    for member in members:
        sender.start_session(bundle_from(member.upload_bundle()), now=NOW)
    envelopes = sender.encrypt_for_devices([m.address for m in members], "room", b"hello room")
    for member in members:
        opened = member.decrypt(ALICE, "room", envelopes[member.address], now=NOW)
        assert opened == b"hello room"
    impostor = make_account("m1")
    with pytest.raises(IdentityChanged):
        sender.start_session(bundle_from(impostor.upload_bundle()), now=NOW)
    with pytest.raises(IdentityChanged):
        sender.encrypt_for_devices([m.address for m in members], "room", b"blocked")


def test_signed_prekey_rotation_keeps_the_old_key_for_the_grace_period() -> None:
    alice, bob = make_account("alice"), make_account("bob")
    old_bundle = bundle_from(bob.upload_bundle())
    new = bob.rotate_signed_prekey(now=NOW + 7 * 86400)
    assert new.key_id == old_bundle.signed_prekey.key_id + 1
    alice.start_session(old_bundle, now=NOW)
    first = alice.encrypt(BOB, CONVERSATION, b"built on the old key")
    assert bob.decrypt(ALICE, CONVERSATION, first, now=NOW) == b"built on the old key"
    bob.rotate_signed_prekey(now=NOW + 7 * 86400 + SIGNED_PREKEY_GRACE + 1)
    assert old_bundle.signed_prekey.key_id not in bob._prekeys.signed
    assert new.key_id in bob._prekeys.signed
