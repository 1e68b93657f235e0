"""Verifying a served device list: exactly the certified, listed, not-removed devices survive."""

from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from securechat.crypto.account_key import AccountKeyPair
from securechat.crypto.certificates import DeviceCertificate, DeviceRemoval
from securechat.crypto.device_list import (
    DeviceListing,
    DeviceListMemory,
    DeviceListResult,
    ListedDevice,
    ListProblem,
    Rejected,
    Rejection,
    verify_device_list,
)
from securechat.crypto.encoding import Reader, Writer
from securechat.crypto.identity import IdentityKeyPair
from securechat.errors import InvalidArgument

from ._devices import FakeAccount, with_devices
from ._support import NOW, flip_bit


def _verify(
    fake: FakeAccount, listing: DeviceListing, memory: DeviceListMemory | None = None
) -> DeviceListResult:
    return verify_device_list(fake.user, fake.account.public, listing, memory)


def _reasons(result: DeviceListResult) -> dict[int | None, Rejection]:
    return {r.device_id: r.reason for r in result.rejected if r.what == "device"}


def test_all_certified_listed_devices_are_accepted() -> None:
    fake = with_devices(1, 2, 3)
    result = _verify(fake, fake.listing())
    assert result.devices == fake.devices
    assert result.rejected == ()
    assert result.problem is None
    assert result.missing == ()


def test_a_certificate_signed_by_another_account_is_rejected() -> None:
    fake = with_devices(1, 2)
    ghost = FakeAccount("alice", devices={9: IdentityKeyPair.generate().public})
    listing = fake.listing()
    listing = dataclasses.replace(
        listing, devices=[*listing.devices, ListedDevice(9, ghost.certificate(9))]
    )
    result = _verify(fake, listing)
    assert set(result.devices) == {1, 2}
    assert _reasons(result) == {9: Rejection.OTHER_ACCOUNT}


def test_a_certificate_for_another_user_or_device_id_is_rejected() -> None:
    fake = with_devices(1, 2)
    for_bob = DeviceCertificate.issue(fake.account, "bob", 2, fake.devices[2], NOW).to_bytes()
    listing = DeviceListing(
        [ListedDevice(1, fake.certificate(2)), ListedDevice(2, for_bob)], head=fake.head()
    )
    result = _verify(fake, listing)
    assert result.devices == {}
    assert _reasons(result) == {1: Rejection.OTHER_DEVICE, 2: Rejection.OTHER_USER}
    assert result.missing == (1, 2)


def test_a_listed_identity_other_than_the_certified_one_is_rejected() -> None:
    fake = with_devices(1)
    listing = DeviceListing(
        [ListedDevice(1, fake.certificate(1), IdentityKeyPair.generate().public)],
        head=fake.head(),
    )
    assert _reasons(_verify(fake, listing)) == {1: Rejection.OTHER_DEVICE}


def test_no_certificate_malformed_and_bad_signature() -> None:
    fake = with_devices(1, 2, 3, 4)
    certificate = fake.certificate(3)
    listing = DeviceListing(
        [
            ListedDevice(1, fake.certificate(1)),
            ListedDevice(2, None),
            ListedDevice(3, flip_bit(certificate, len(certificate) * 8 - 1)),
            ListedDevice(4, b"\x01garbage"),
        ],
        head=fake.head(),
    )
    result = _verify(fake, listing)
    assert result.devices == {1: fake.devices[1]}
    assert _reasons(result) == {
        2: Rejection.NO_CERTIFICATE,
        3: Rejection.BAD_SIGNATURE,
        4: Rejection.MALFORMED,
    }


def test_a_certified_device_missing_from_the_signed_list_is_rejected() -> None:
    """A valid old certificate is not enough: the newest signed list must name the device."""
    fake = with_devices(1, 2)
    old_certificate = fake.certificate(2)
    del fake.devices[2]
    listing = fake.listing()
    listing = dataclasses.replace(
        listing, devices=[*listing.devices, ListedDevice(2, old_certificate)]
    )
    assert _reasons(_verify(fake, listing)) == {2: Rejection.NOT_IN_LIST}


def test_removed_devices_are_rejected_and_remembered() -> None:
    fake = with_devices(1, 2)
    removal = fake.removal(2)
    stale_certificate = fake.certificate(2)
    memory = DeviceListMemory(fake.account.public)
    first = _verify(fake, fake.listing(removals=(removal,)), memory)
    assert _reasons(first) == {2: Rejection.REMOVED}
    memory.apply(first)
    # Later the server forgets the removal and lists the device again: still refused.
    listing = fake.listing()
    again = _verify(fake, listing, memory)
    assert _reasons(again) == {2: Rejection.REMOVED}
    assert set(again.devices) == {1}
    assert stale_certificate  # the certificate itself was valid all along


def test_a_replayed_removal_does_not_remove_a_later_device_with_the_same_id() -> None:
    fake = with_devices(1, 3)
    old_removal = fake.removal(3)
    fake.add(3)  # the id is reused by a new device with a new identity
    result = _verify(fake, fake.listing(removals=(old_removal,)))
    assert result.devices == fake.devices
    assert Rejected("removal", 3, Rejection.STALE_REMOVAL) in result.rejected


def test_removals_from_another_account_or_for_another_user_are_rejected() -> None:
    fake = with_devices(1, 2)
    foreign = FakeAccount("alice", devices=dict(fake.devices)).removal(2)
    for_bob = DeviceRemoval.issue(fake.account, "bob", 2, fake.devices[2], NOW).to_bytes()
    result = _verify(fake, fake.listing(removals=(foreign, for_bob, b"\x02x")))
    assert set(result.devices) == {1, 2}
    assert {(r.device_id, r.reason) for r in result.rejected} == {
        (2, Rejection.OTHER_ACCOUNT),
        (2, Rejection.OTHER_USER),
        (None, Rejection.MALFORMED),
    }
    assert result.removals == ()


def test_an_older_list_is_refused_and_the_newer_one_kept() -> None:
    """A server re-serving the list from before a removal is detected, not obeyed."""
    fake = with_devices(1, 2)
    before_removal = fake.listing()
    memory = DeviceListMemory(fake.account.public)
    memory.apply(_verify(fake, before_removal, memory))
    del fake.devices[2]
    memory.apply(_verify(fake, fake.listing(), memory))  # version 2: device 2 gone
    replayed = _verify(fake, before_removal, memory)
    assert replayed.problem is ListProblem.ROLLED_BACK
    assert replayed.devices == {}
    memory.apply(replayed)
    assert set(memory.devices) == {1}
    assert memory.version == 2


def test_two_different_lists_with_one_version_are_refused() -> None:
    fake = with_devices(1)
    memory = DeviceListMemory(fake.account.public)
    memory.apply(_verify(fake, fake.listing(), memory))
    fake.version -= 1  # sign another version 1 naming an extra device
    fake.add(2)
    forked = _verify(fake, fake.listing(), memory)
    assert forked.problem is ListProblem.CONFLICTING
    assert forked.devices == {}


@pytest.mark.parametrize("problem", ["missing", "foreign", "other_user", "tampered"])
def test_without_a_valid_signed_list_no_device_is_accepted(problem: str) -> None:
    fake = with_devices(1)
    listing = fake.listing()
    assert listing.head is not None
    head = {
        "missing": None,
        "foreign": FakeAccount("alice", devices=dict(fake.devices)).head(),
        "other_user": FakeAccount("bob", fake.account, dict(fake.devices)).head(),
        "tampered": flip_bit(listing.head, 200),
    }[problem]
    result = _verify(fake, dataclasses.replace(listing, head=head))
    assert result.devices == {}
    assert result.problem is (ListProblem.MISSING if head is None else ListProblem.INVALID)


def test_devices_the_server_withholds_are_reported_missing() -> None:
    fake = with_devices(1, 2, 3)
    listing = fake.listing()
    listing = dataclasses.replace(listing, devices=list(listing.devices)[:1])
    result = _verify(fake, listing)
    assert result.missing == (2, 3)


def test_memory_round_trips_and_refuses_another_account() -> None:
    fake = with_devices(1, 2)
    memory = DeviceListMemory(fake.account.public)
    memory.apply(_verify(fake, fake.listing(removals=(fake.removal(2),)), memory))
    copy = DeviceListMemory.read(Reader(memory.write(Writer()).to_bytes()))
    assert copy == memory
    with pytest.raises(InvalidArgument):
        verify_device_list("alice", AccountKeyPair.generate().public, fake.listing(), memory)


FORGERIES = {
    "other_account": Rejection.OTHER_ACCOUNT,
    "other_user": Rejection.OTHER_USER,
    "bad_signature": Rejection.BAD_SIGNATURE,
    "none": Rejection.NO_CERTIFICATE,
    "removed": Rejection.REMOVED,
    "unlisted": Rejection.NOT_IN_LIST,
}


@given(
    st.lists(st.sampled_from(["valid", *FORGERIES]), min_size=1, max_size=8),
    st.randoms(use_true_random=False),
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_exactly_the_valid_devices_survive_any_mix(kinds: list[str], rng: random.Random) -> None:
    fake = FakeAccount("alice")
    ghost = FakeAccount("alice")
    entries: list[ListedDevice] = []
    removals: list[bytes] = []
    expected = {}
    for device_id, kind in enumerate(kinds, start=1):
        identity = fake.add(device_id)
        if kind == "valid":
            expected[device_id] = identity
            certificate: bytes | None = fake.certificate(device_id)
        elif kind == "other_account":
            ghost.devices[device_id] = identity
            certificate = ghost.certificate(device_id)
        elif kind == "other_user":
            certificate = DeviceCertificate.issue(
                fake.account, "mallory", device_id, identity, NOW
            ).to_bytes()
        elif kind == "bad_signature":
            certificate = flip_bit(fake.certificate(device_id), 8 * 200 + rng.randrange(8))
        elif kind == "removed":
            certificate = fake.certificate(device_id)
            removals.append(fake.removal(device_id))
        else:
            certificate = None if kind == "none" else fake.certificate(device_id)
        entries.append(ListedDevice(device_id, certificate))
    listed = {i: d for i, d in fake.devices.items() if kinds[i - 1] != "unlisted"}
    fake.devices = listed
    rng.shuffle(entries)
    result = _verify(fake, DeviceListing(entries, tuple(removals), fake.head()))
    assert result.devices == expected
    assert _reasons(result) == {
        i: FORGERIES[kind] for i, kind in enumerate(kinds, start=1) if kind != "valid"
    }
