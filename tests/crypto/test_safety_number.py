"""Safety numbers: libsignal's published vector, symmetry and our own version constant."""

from __future__ import annotations

from securechat.crypto.identity import IdentityKeyPair
from securechat.crypto.safety_number import (
    SAFETY_NUMBER_VERSION,
    combine,
    fingerprint_half,
    format_safety_number,
    safety_number,
)

from ._support import load_json, make_account, paired


def test_libsignal_numeric_fingerprint_vector() -> None:
    vector = load_json("libsignal_fingerprint.json")
    alice = fingerprint_half(
        bytes.fromhex(vector["alice_identity"]),
        vector["alice_stable_id"],
        version=vector["version"],
        iterations=vector["iterations"],
    )
    bob = fingerprint_half(
        bytes.fromhex(vector["bob_identity"]),
        vector["bob_stable_id"],
        version=vector["version"],
        iterations=vector["iterations"],
    )
    assert combine(alice, bob) == combine(bob, alice) == vector["displayable_fingerprint"]


def test_both_parties_see_the_same_60_digits() -> None:
    alice, bob = paired()
    number = alice.safety_number("bob")
    assert number == bob.safety_number("alice")
    assert len(number) == 60
    assert number.isdigit()
    groups = format_safety_number(number).split(" ")
    assert len(groups) == 12
    assert all(len(group) == 5 for group in groups)


def test_number_depends_on_identity_name_and_version() -> None:
    a, b = IdentityKeyPair.generate().public, IdentityKeyPair.generate().public
    c = IdentityKeyPair.generate().public
    base = safety_number("alice", a, "bob", b)
    assert base == safety_number("bob", b, "alice", a)
    assert base != safety_number("alice", a, "bob", c)
    assert base != safety_number("alice", a, "bobby", b)
    assert fingerprint_half(a.to_bytes(), "alice", version=SAFETY_NUMBER_VERSION) != (
        fingerprint_half(a.to_bytes(), "alice", version=0)
    )
    assert SAFETY_NUMBER_VERSION == 0x5343


def test_unknown_user_has_no_safety_number() -> None:
    import pytest

    from securechat.errors import InvalidArgument

    with pytest.raises(InvalidArgument):
        make_account("alice").safety_number("bob")
