"""Accounts own devices: ghost devices, linking, removal, and safety numbers that stay put."""

from __future__ import annotations

import pytest

from securechat.crypto.account import Address, CryptoAccount
from securechat.crypto.account_key import AccountKeyPair
from securechat.crypto.certificates import DeviceCertificate, DeviceListHead
from securechat.crypto.device_list import ListProblem, Rejection
from securechat.crypto.linking import LinkJoiner
from securechat.crypto.trust import TrustLevel
from securechat.errors import DeviceNotCertified, InvalidArgument, LinkError

from ._directory import Device, Directory, deliver, link, register
from ._support import NOW, make_account


def _ghost(directory: Directory, user: str, device_id: int, *, certified_by_server: bool) -> Device:
    """The server adds a device of its own under ``user``'s name (and its prekeys)."""
    ghost = Device(make_account(user, device_id), directory)
    certificate = None
    if certified_by_server:  # the server's own account key signs it: still not the user's
        certificate = DeviceCertificate.issue(
            AccountKeyPair.generate(), user, device_id, ghost.account.identity_public, NOW
        ).to_bytes()
    directory.certificates[ghost.address] = certificate
    directory.upload(ghost.account)
    return ghost


@pytest.mark.parametrize("certified_by_server", [False, True])
def test_a_ghost_own_device_never_receives_anything(certified_by_server: bool) -> None:
    directory = Directory()
    alice, bob = register(directory, "alice"), register(directory, "bob")
    ghost = _ghost(directory, "alice", 9, certified_by_server=certified_by_server)
    assert Address("alice", 9) in alice.recipients("bob")  # the server does list it
    result = alice.refresh("alice")
    assert set(result.devices) == {1}
    expected = Rejection.OTHER_ACCOUNT if certified_by_server else Rejection.NO_CERTIFICATE
    assert [(r.device_id, r.reason) for r in result.rejected] == [(9, expected)]
    envelopes = alice.send("bob", b"for bob only")
    assert set(envelopes) == {bob.address}
    with pytest.raises(DeviceNotCertified):
        alice.account.start_session(directory.bundles[ghost.address], now=NOW)
    with pytest.raises((DeviceNotCertified, InvalidArgument)):
        alice.account.encrypt(ghost.address, "dm", b"never")
    deliver(envelopes, alice.address, [bob, ghost])
    assert bob.inbox == [(alice.address, b"for bob only")]
    assert ghost.inbox == []


@pytest.mark.parametrize("certified_by_server", [False, True])
def test_a_ghost_contact_device_never_receives_anything(certified_by_server: bool) -> None:
    directory = Directory()
    alice, bob = register(directory, "alice"), register(directory, "bob")
    ghost = _ghost(directory, "bob", 9, certified_by_server=certified_by_server)
    envelopes = alice.send("bob", b"hello bob")
    assert set(envelopes) == {bob.address}
    with pytest.raises(DeviceNotCertified):
        alice.account.start_session(directory.bundles[ghost.address], now=NOW)
    assert alice.account.trust_level("bob") is TrustLevel.UNVERIFIED  # a notice, not a change


def test_linked_devices_receive_and_mirror_and_numbers_stay_put() -> None:
    directory = Directory()
    laptop, bob = register(directory, "alice"), register(directory, "bob")
    bob.refresh("alice")
    laptop.refresh("bob")
    number = bob.account.safety_number("alice")
    assert number == laptop.account.safety_number("bob")
    desktop = link(laptop, 2)
    assert desktop.account.account_key == laptop.account.account_key
    assert desktop.account.safety_number("bob") == number  # the pin travelled with the link
    # bob -> alice reaches both of her devices
    envelopes = bob.send("alice", b"to both")
    assert set(envelopes) == {laptop.address, desktop.address}
    deliver(envelopes, bob.address, [laptop, desktop])
    assert laptop.inbox == desktop.inbox == [(bob.address, b"to both")]
    assert bob.account.trust_level("alice") is TrustLevel.UNVERIFIED
    assert bob.account.safety_number("alice") == number
    # alice -> bob from the laptop: a copy goes to her desktop
    envelopes = laptop.send("bob", b"sent from the laptop")
    assert set(envelopes) == {bob.address, desktop.address}
    deliver(envelopes, laptop.address, [bob, desktop])
    assert desktop.inbox[-1] == (laptop.address, b"sent from the laptop")
    # removing the desktop stops it from receiving, for everyone
    publication = laptop.account.devices.remove(2, now=NOW + 10)
    directory.publish("alice", publication)
    laptop.account.devices.published(publication)
    assert set(bob.send("alice", b"after removal")) == {laptop.address}
    assert set(laptop.send("bob", b"mine")) == {bob.address}
    with pytest.raises(DeviceNotCertified):
        bob.account.encrypt(desktop.address, "dm", b"no")
    assert bob.account.safety_number("alice") == number
    assert laptop.account.safety_number("bob") == number


def test_a_server_hiding_a_removal_from_someone_who_saw_it_is_detected() -> None:
    directory = Directory()
    laptop, bob = register(directory, "alice"), register(directory, "bob")
    link(laptop, 2)
    bob.refresh("alice")
    stale = {
        "heads": dict(directory.heads),
        "certificates": dict(directory.certificates),
    }
    publication = laptop.account.devices.remove(2, now=NOW + 10)
    directory.publish("alice", publication)
    assert set(bob.refresh("alice").devices) == {1}
    directory.heads, directory.certificates = stale["heads"], stale["certificates"]
    directory.removals.clear()
    replayed = bob.refresh("alice")
    assert replayed.problem is ListProblem.ROLLED_BACK
    assert set(bob.account.devices.verified("alice")) == {1}


def test_you_cannot_remove_the_device_you_are_on() -> None:
    directory = Directory()
    laptop = register(directory, "alice")
    link(laptop, 2)
    before = laptop.account.to_bytes()
    with pytest.raises(InvalidArgument, match="device you are using"):
        laptop.account.devices.remove(1, now=NOW)
    assert laptop.account.to_bytes() == before
    with pytest.raises(InvalidArgument, match="not one of your"):
        laptop.account.devices.remove(7, now=NOW)


def test_more_devices_than_allowed_are_refused_and_the_code_is_void() -> None:
    directory = Directory()
    laptop = register(directory, "alice")
    link(laptop, 2)
    new = make_account("alice", 3, linked=True)
    offer = laptop.account.devices.link_offer(now=NOW)
    joiner = LinkJoiner(offer.code)
    request = new.devices.link_request(joiner, offer.offer_message())
    with pytest.raises(LinkError) as info:
        laptop.account.devices.grant_link(offer, request, now=NOW + 1, max_devices=2)
    assert info.value.reason == "refused"
    with pytest.raises(LinkError):
        laptop.account.devices.grant_link(offer, request, now=NOW + 2)


def test_a_link_for_another_user_or_a_taken_device_id_is_refused() -> None:
    directory = Directory()
    laptop = register(directory, "alice")
    for user, device_id in (("mallory", 2), ("alice", 1)):
        offer = laptop.account.devices.link_offer(now=NOW)
        joiner = LinkJoiner(offer.code)
        request = make_account(user, device_id, linked=True).devices.link_request(
            joiner, offer.offer_message()
        )
        with pytest.raises(LinkError) as info:
            laptop.account.devices.grant_link(offer, request, now=NOW + 1)
        assert info.value.reason == "refused"


def test_own_account_key_is_never_taken_from_the_server() -> None:
    directory = Directory()
    alice = register(directory, "alice")
    with pytest.raises(InvalidArgument):
        alice.account.observe_account("alice", AccountKeyPair.generate().public)
    # A server that replaces the own account's key and list: the own devices do not change.
    impostor = AccountKeyPair.generate()
    directory.heads["alice"] = DeviceListHead.issue(
        impostor, "alice", 99, NOW, {1: alice.account.identity_public}
    ).to_bytes()
    result = alice.refresh("alice")
    assert result.problem is ListProblem.INVALID
    assert set(alice.account.devices.verified("alice")) == {1}


def test_a_device_waiting_for_a_link_cannot_act_for_the_account() -> None:
    pending = make_account("alice", 2, linked=True)
    assert pending.account_key is None
    with pytest.raises(InvalidArgument):
        pending.devices.link_offer(now=NOW)
    with pytest.raises(InvalidArgument):
        pending.devices.remove(1, now=NOW)


def test_device_state_survives_a_save() -> None:
    directory = Directory()
    laptop, bob = register(directory, "alice"), register(directory, "bob")
    desktop = link(laptop, 2)
    bob.refresh("alice")
    for device in (laptop, desktop, bob):
        restored = CryptoAccount.from_bytes(device.account.to_bytes())
        assert restored.to_bytes() == device.account.to_bytes()
        assert restored.account_key == device.account.account_key
    restored_bob = CryptoAccount.from_bytes(bob.account.to_bytes())
    assert set(restored_bob.devices.verified("alice")) == {1, 2}


def test_account_key_lookup_for_signed_rosters() -> None:
    directory = Directory()
    alice = register(directory, "alice")
    register(directory, "bob")
    assert alice.account.account_key is not None
    assert alice.account.account_key_of("alice") == alice.account.account_key.to_bytes()
    assert alice.account.account_key_of("bob") is None  # nothing pinned yet
    alice.refresh("bob")
    assert alice.account.account_key_of("bob") == directory.account_keys["bob"].to_bytes()
    alice.account.observe_account("bob", AccountKeyPair.generate().public)  # pending change
    assert alice.account.account_key_of("bob") == directory.account_keys["bob"].to_bytes()
    signature = alice.account.devices.signer.sign(b"roster event")
    alice.account.account_key.verify(signature, b"roster event")
    with pytest.raises(InvalidArgument):
        _ = make_account("carol", 2, linked=True).devices.signer


def test_a_publication_is_committed_once_and_never_over_a_newer_list() -> None:
    directory = Directory()
    laptop = register(directory, "alice")
    desktop = link(laptop, 2)
    publication = laptop.account.devices.remove(2, now=NOW + 10)
    laptop.account.devices.published(publication)
    before = laptop.account.to_bytes()
    with pytest.raises(InvalidArgument, match="older"):
        laptop.account.devices.published(publication)
    assert laptop.account.to_bytes() == before
    assert desktop.account.devices.own_list is not None
