"""An account key change is a decision: blocked until accepted (acting on the new key) or
rejected (keeping the old pin and sessions); queued messages never follow a key silently."""

from __future__ import annotations

import pytest

from securechat.crypto.account import CryptoAccount
from securechat.crypto.account_key import AccountKeyPair
from securechat.crypto.trust import TrustEvent, TrustLevel, TrustStore
from securechat.errors import DeviceNotCertified, IdentityChanged, InvalidArgument

from ._directory import Device, Directory, deliver, register
from ._support import NOW, load_json, make_account


def _conversation() -> tuple[Directory, Device, Device]:
    directory = Directory()
    alice, bob = register(directory, "alice"), register(directory, "bob")
    deliver(bob.send("alice", b"hi alice"), bob.address, [alice])
    deliver(alice.send("bob", b"hi bob"), alice.address, [bob])
    return directory, alice, bob


def _impostor(directory: Directory, user: str) -> Device:
    """The server replaces ``user``'s account with one of its own (new key, new device)."""
    fake = register(Directory(), user)
    directory.account_keys[user] = fake.account.account_key  # type: ignore[assignment]
    directory.heads[user] = fake.directory.heads[user]
    directory.certificates = {
        a: c for a, c in directory.certificates.items() if a.user != user
    } | dict(fake.directory.certificates)
    directory.bundles |= fake.directory.bundles
    fake.directory = directory
    return fake


@pytest.mark.parametrize("verified", [False, True])
def test_a_changed_account_key_blocks_sending_until_the_user_decides(verified: bool) -> None:
    directory, alice, bob = _conversation()
    if verified:
        bob.account.verify("alice")
    _impostor(directory, "alice")
    assert bob.account.observe_account("alice", directory.account_keys["alice"]) is (
        TrustEvent.CHANGED
    )
    assert bob.account.trust_level("alice") is TrustLevel.CHANGED
    with pytest.raises(IdentityChanged) as info:
        bob.account.encrypt(alice.address, "dm", b"blocked")
    assert info.value.verified is verified


def test_accepting_acts_on_the_new_key_and_shows_its_number_first() -> None:
    directory, alice, bob = _conversation()
    old_number = bob.account.safety_number("alice")
    impostor = _impostor(directory, "alice")
    bob.account.observe_account("alice", directory.account_keys["alice"])
    shown = bob.account.safety_number("alice")
    impostor.refresh("bob")
    assert shown == impostor.account.safety_number("bob") != old_number
    with pytest.raises(InvalidArgument, match="changed again"):
        bob.account.accept_identity("alice", old_number, verified=False)
    bob.account.accept_identity("alice", shown, verified=True)
    assert bob.account.trust_level("alice") is TrustLevel.VERIFIED
    with pytest.raises(DeviceNotCertified):  # the old key's devices no longer count
        bob.account.encrypt(alice.address, "dm", b"to the old device")
    envelopes = bob.send("alice", b"to the new key")
    deliver(envelopes, bob.address, [impostor])
    assert impostor.inbox == [(bob.address, b"to the new key")]


def test_rejecting_keeps_the_old_pin_and_the_working_sessions() -> None:
    directory, alice, bob = _conversation()
    number = bob.account.safety_number("alice")
    old_key = directory.account_keys["alice"]
    _impostor(directory, "alice")
    bob.account.observe_account("alice", directory.account_keys["alice"])
    bob.account.reject_identity("alice")
    assert bob.account.trust_level("alice") is TrustLevel.UNVERIFIED
    assert bob.account.safety_number("alice") == number
    envelope = bob.account.encrypt(alice.address, "dm", b"still to the real alice")
    assert alice.account.decrypt(bob.address, "dm", envelope, now=NOW) == (
        b"still to the real alice"
    )
    # The server keeps offering the rejected key: reported, not blocking again.
    again = bob.account.observe_account("alice", directory.account_keys["alice"])
    assert again is TrustEvent.REJECTED_AGAIN
    assert bob.account.trust_level("alice") is TrustLevel.UNVERIFIED
    assert bob.account.observe_account("alice", old_key) is TrustEvent.NONE
    with pytest.raises(InvalidArgument, match="nothing to reject"):
        bob.account.reject_identity("alice")


def test_queued_messages_never_go_to_a_new_key_without_a_decision() -> None:
    directory, alice, bob = _conversation()
    queued = [(b"queued 1", bob.account.accepted_key("alice"))]  # the client's outbox
    impostor = _impostor(directory, "alice")
    bob.account.observe_account("alice", directory.account_keys["alice"])
    for text, key in queued:
        with pytest.raises(IdentityChanged):
            bob.account.encrypt(alice.address, "dm", text, expected=key)
    bob.account.accept_identity("alice", bob.account.safety_number("alice"), verified=False)
    bob.refresh("alice")
    bob.account.start_session(directory.bundles[impostor.address], now=NOW)
    for text, key in queued:  # accepted, but the queued message was meant for the old key
        with pytest.raises(IdentityChanged):
            bob.account.encrypt(impostor.address, "dm", text, expected=key)
    fresh_key = bob.account.accepted_key("alice")
    assert bob.account.encrypt(impostor.address, "dm", b"re-queued", expected=fresh_key)


def test_after_a_rejection_queued_messages_go_to_the_old_key() -> None:
    directory, alice, bob = _conversation()
    key = bob.account.accepted_key("alice")
    _impostor(directory, "alice")
    bob.account.observe_account("alice", directory.account_keys["alice"])
    bob.account.reject_identity("alice")
    envelope = bob.account.encrypt(alice.address, "dm", b"queued", expected=key)
    assert alice.account.decrypt(bob.address, "dm", envelope, now=NOW) == b"queued"


def test_a_migrated_contact_keeps_the_pin_and_its_verification() -> None:
    """Stage-1 pins move to the account key a pinned device identity signed for."""
    frozen = load_json("account_state_v1.json")
    alice = CryptoAccount.from_bytes(bytes.fromhex(frozen["alice_state"]))
    bob = CryptoAccount.from_bytes(bytes.fromhex(frozen["bob_state"]))
    assert bob.trust_level("alice") is TrustLevel.VERIFIED
    key = alice.devices.migrate(now=NOW).head.account_key
    assert alice.devices.binding is not None
    event = bob.observe_account("alice", key, [alice.devices.binding])
    assert event is TrustEvent.ADOPTED
    assert bob.trust_level("alice") is TrustLevel.VERIFIED


def test_an_account_key_without_the_pinned_devices_binding_is_a_change() -> None:
    frozen = load_json("account_state_v1.json")
    bob = CryptoAccount.from_bytes(bytes.fromhex(frozen["bob_state"]))
    alice = CryptoAccount.from_bytes(bytes.fromhex(frozen["alice_state"]))
    other = make_account("alice", 1, linked=True)  # another identity claiming to be alice
    key = other.devices.migrate(now=NOW).head.account_key
    assert other.devices.binding is not None
    assert bob.observe_account("alice", key, [other.devices.binding]) is TrustEvent.CHANGED
    bob.reject_identity("alice")
    real = alice.devices.migrate(now=NOW).head.account_key
    assert alice.devices.binding is not None
    assert bob.observe_account("alice", AccountKeyPair.generate().public) is TrustEvent.CHANGED
    bob.reject_identity("alice")
    wrong_key = AccountKeyPair.generate().public  # the real binding names the real key only
    event = bob.observe_account("alice", wrong_key, [alice.devices.binding])
    assert event is TrustEvent.CHANGED
    bob.reject_identity("alice")
    assert bob.observe_account("alice", real, [alice.devices.binding]) is TrustEvent.ADOPTED
    assert bob.trust_level("alice") is TrustLevel.VERIFIED


def test_trust_store_round_trips_pending_and_rejected_keys() -> None:
    from securechat.crypto.encoding import Reader, Writer

    store = TrustStore()
    first, second = AccountKeyPair.generate().public, AccountKeyPair.generate().public
    store.observe_account("bob", first)
    store.observe_account("bob", second)
    store.reject("bob")
    store.observe_account("carol", first)
    store.observe_account("carol", second)
    copy = TrustStore.read(Reader(store.write(Writer()).to_bytes()))
    assert copy.level("carol") is TrustLevel.CHANGED
    assert copy.observe_account("bob", second) is TrustEvent.REJECTED_AGAIN
    fresh = TrustStore()
    fresh.import_pins(store.export_pins())
    assert fresh.level("carol") is TrustLevel.UNVERIFIED  # pending keys do not travel
    assert fresh.pinned_account("carol") == first
