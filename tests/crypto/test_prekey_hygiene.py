"""Last-resort KEM rotation with the signed prekey, and a replay guard that lives as long as the
keys it protects (not a FIFO that forgets after 4096 sessions)."""

from __future__ import annotations

import pytest

from securechat.crypto import prekey_store
from securechat.crypto.account import CryptoAccount
from securechat.crypto.prekey_store import SIGNED_PREKEY_GRACE
from securechat.errors import DecryptionError

from ._support import ALICE, BOB, CONVERSATION, NOW, bundle_from, make_account

STAGE_ONE_FIFO = 4096  # the size of the global replay memory this guard replaced


def test_rotation_replaces_the_last_resort_kem_key_too() -> None:
    bob = make_account("bob")
    before = bob.upload_bundle()
    signed, last_resort = bob.rotate_prekeys(now=NOW + 86400)
    after = bob.upload_bundle()
    assert after.signed_prekey == signed != before.signed_prekey
    assert after.last_resort_kem_prekey == last_resort != before.last_resort_kem_prekey
    assert last_resort.last_resort
    assert after.kem_prekeys == []  # the replaced last-resort key is never offered as one-time


def test_old_keys_open_first_messages_during_the_grace_and_are_deleted_after() -> None:
    alice, bob = make_account("alice"), make_account("bob")
    old_bundle = bundle_from(bob.upload_bundle(), one_time_index=None, kem_index=None)
    bob.rotate_prekeys(now=NOW + 86400)
    alice.start_session(old_bundle, now=NOW)
    first = alice.encrypt(BOB, CONVERSATION, b"built on the replaced keys")
    assert bob.decrypt(ALICE, CONVERSATION, first, now=NOW) == b"built on the replaced keys"
    assert old_bundle.kem_prekey.key_id in bob._prekeys.kem  # a last-resort key is not consumed
    bob.rotate_prekeys(now=NOW + 86400 + SIGNED_PREKEY_GRACE + 1)
    assert old_bundle.kem_prekey.key_id not in bob._prekeys.kem
    assert old_bundle.signed_prekey.key_id not in bob._prekeys.signed
    assert bob._prekeys.seen_base_keys == {}  # the replay memory went with the keys
    late = make_account("carol")
    late.start_session(old_bundle, now=NOW)
    with pytest.raises(DecryptionError):
        bob.decrypt(late.address, CONVERSATION, late.encrypt(BOB, CONVERSATION, b"x"), now=NOW)


def test_a_replay_fails_after_more_than_4096_other_sessions() -> None:
    bob = make_account("bob", one_time_count=0, kem_one_time_count=0)
    bundle = bundle_from(bob.upload_bundle(), one_time_index=None, kem_index=None)
    alice = make_account("alice", one_time_count=0, kem_one_time_count=0)
    alice.start_session(bundle, now=NOW)
    replayed = alice.encrypt(BOB, CONVERSATION, b"once only")
    assert bob.decrypt(ALICE, CONVERSATION, replayed, now=NOW) == b"once only"
    for index in range(STAGE_ONE_FIFO + 1):
        alice.start_session(bundle, now=NOW)  # a fresh handshake on the same keys each time
        first = alice.encrypt(BOB, CONVERSATION, b"%d" % index)
        assert bob.decrypt(ALICE, CONVERSATION, first, now=NOW) == b"%d" % index
    bob = CryptoAccount.from_bytes(bob.to_bytes())
    pair = (bundle.signed_prekey.key_id, bundle.kem_prekey.key_id)
    assert len(bob._prekeys.seen_base_keys[pair]) == STAGE_ONE_FIFO + 2
    assert not any(s.matches(_prekey(replayed)) for s in bob._sessions[ALICE].all())
    before = bob.to_bytes()
    with pytest.raises(DecryptionError):
        bob.decrypt(ALICE, CONVERSATION, replayed, now=NOW)
    assert bob.to_bytes() == before


def _prekey(envelope: bytes):  # type: ignore[no-untyped-def]
    from securechat.crypto.envelope import Envelope

    prekey = Envelope.parse(envelope).prekey
    assert prekey is not None
    return prekey


def test_first_messages_with_one_time_keys_need_no_memory() -> None:
    alice, bob = make_account("alice"), make_account("bob")
    alice.start_session(bundle_from(bob.upload_bundle()), now=NOW)
    first = alice.encrypt(BOB, CONVERSATION, b"with a one-time key")
    bob.decrypt(ALICE, CONVERSATION, first, now=NOW)
    assert bob._prekeys.seen_base_keys == {}
    bob._sessions.clear()
    with pytest.raises(DecryptionError):  # the one-time key is gone
        bob.decrypt(ALICE, CONVERSATION, first, now=NOW)


def test_a_full_guard_refuses_new_first_messages_on_that_pair(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(prekey_store, "MAX_GUARDED_PER_PAIR", 2)
    bob = make_account("bob", one_time_count=0, kem_one_time_count=0)
    bundle = bundle_from(bob.upload_bundle(), one_time_index=None, kem_index=None)
    alice = make_account("alice")
    for index in range(2):
        alice.start_session(bundle, now=NOW)
        bob.decrypt(ALICE, CONVERSATION, alice.encrypt(BOB, CONVERSATION, b"%d" % index), now=NOW)
    alice.start_session(bundle, now=NOW)
    with pytest.raises(DecryptionError):
        bob.decrypt(ALICE, CONVERSATION, alice.encrypt(BOB, CONVERSATION, b"third"), now=NOW)
    _, last_resort = bob.rotate_prekeys(now=NOW + 1)
    fresh = bundle_from(bob.upload_bundle(), one_time_index=None, kem_index=None)
    assert fresh.kem_prekey == last_resort
    alice.start_session(fresh, now=NOW)
    assert bob.decrypt(ALICE, CONVERSATION, alice.encrypt(BOB, CONVERSATION, b"ok"), now=NOW)
