"""Account keys: encoding, fingerprint, signatures, and safety numbers computed over them."""

from __future__ import annotations

import pytest

from securechat.crypto.account_key import AccountKeyPair, AccountPublic
from securechat.crypto.safety_number import (
    ACCOUNT_SAFETY_NUMBER_VERSION,
    SAFETY_NUMBER_VERSION,
    account_safety_number,
    fingerprint_half,
)
from securechat.errors import BadSignature, InvalidArgument

from ._support import flip_bit


def test_public_key_is_32_raw_bytes_and_round_trips() -> None:
    pair = AccountKeyPair.generate()
    assert len(pair.public.to_bytes()) == 32
    assert AccountPublic.from_bytes(pair.public.to_bytes()) == pair.public
    assert AccountKeyPair.from_bytes(pair.to_bytes()).public == pair.public


@pytest.mark.parametrize("length", [0, 31, 33, 128])
def test_wrong_lengths_are_refused(length: int) -> None:
    with pytest.raises(InvalidArgument):
        AccountPublic.from_bytes(bytes(length))
    with pytest.raises(InvalidArgument):
        AccountKeyPair.from_bytes(bytes(length))


def test_signatures_verify_and_any_flipped_bit_fails() -> None:
    pair = AccountKeyPair.generate()
    signature = pair.sign(b"statement")
    pair.public.verify(signature, b"statement")
    for bit in range(0, 512, 37):
        with pytest.raises(BadSignature):
            pair.public.verify(flip_bit(signature, bit), b"statement")
    with pytest.raises(BadSignature):
        AccountKeyPair.generate().public.verify(signature, b"statement")


def test_fingerprint_is_labelled_and_displayed_in_groups() -> None:
    key = AccountKeyPair.generate().public
    assert len(key.fingerprint()) == 32
    groups = key.display_fingerprint().split(" ")
    assert len(groups) == 8
    assert all(len(group) == 4 for group in groups)
    assert key.fingerprint() != AccountKeyPair.generate().public.fingerprint()


def test_account_safety_number_is_symmetric_and_domain_separated() -> None:
    alice, bob = AccountKeyPair.generate().public, AccountKeyPair.generate().public
    number = account_safety_number("alice", alice, "bob", bob)
    assert number == account_safety_number("bob", bob, "alice", alice)
    assert len(number) == 60
    assert number.isdigit()
    assert number != account_safety_number("alice", alice, "bob", AccountKeyPair.generate().public)
    assert ACCOUNT_SAFETY_NUMBER_VERSION != SAFETY_NUMBER_VERSION
    assert ACCOUNT_SAFETY_NUMBER_VERSION != 0  # never Signal's
    assert fingerprint_half(
        alice.to_bytes(), "alice", version=ACCOUNT_SAFETY_NUMBER_VERSION
    ) != fingerprint_half(alice.to_bytes(), "alice", version=SAFETY_NUMBER_VERSION)
