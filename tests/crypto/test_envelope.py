"""Envelope parsing and padding: bucket sizes, unambiguous padding, malformed input."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securechat.crypto.envelope import PADDING_BLOCK, Envelope, pad, unpad
from securechat.errors import DecryptionError

from ._support import BOB, CONVERSATION, paired


@given(st.binary(max_size=1000))
@settings(max_examples=100)
def test_padding_round_trips_to_a_bucket(plaintext: bytes) -> None:
    padded = pad(plaintext)
    assert len(padded) % PADDING_BLOCK == 0
    assert len(plaintext) < len(padded) <= len(plaintext) + PADDING_BLOCK
    assert unpad(padded) == plaintext


def test_bucket_boundaries() -> None:
    assert len(pad(b"")) == 160
    assert len(pad(b"x" * 159)) == 160
    assert len(pad(b"x" * 160)) == 320
    assert unpad(pad(b"\x80\x00")) == b"\x80\x00"


@pytest.mark.parametrize(
    "padded", [b"", b"\x00" * 160, b"x" * 160, b"\x80" + b"\x00" * 158, b"x\x80" + b"\x01" * 158]
)
def test_bad_padding_is_a_decryption_error(padded: bytes) -> None:
    with pytest.raises(DecryptionError):
        unpad(padded)


def test_envelopes_round_trip_and_hide_length_to_the_bucket() -> None:
    alice, _ = paired()
    short = alice.encrypt(BOB, CONVERSATION, b"a")
    longer = alice.encrypt(BOB, CONVERSATION, b"a" * 150)
    assert len(short) == len(longer)
    assert Envelope.parse(short).to_bytes() == short


@pytest.mark.parametrize(
    "data",
    [b"", b"\x01", b"\x02\x02", b"\x01\x03" + b"\x00" * 300, b"\x01\x02" + b"\x00" * 100],
)
def test_malformed_envelopes_are_decryption_errors(data: bytes) -> None:
    with pytest.raises(DecryptionError):
        Envelope.parse(data)


@given(st.binary(max_size=400))
@settings(max_examples=100)
def test_random_bytes_never_raise_anything_but_decryption_error(data: bytes) -> None:
    with contextlib.suppress(DecryptionError):
        Envelope.parse(data)


def test_truncated_envelopes_fail() -> None:
    alice, _ = paired(reply=False)
    envelope = alice.encrypt(BOB, CONVERSATION, b"hello")
    for cut in range(0, len(envelope), 37):
        with pytest.raises(DecryptionError):
            Envelope.parse(envelope[:cut])
