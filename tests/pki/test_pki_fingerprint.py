"""One fingerprint format: SHA-256 as colon-separated upper-case hex, parsed from operator input."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from securechat.errors import InvalidArgument
from securechat.pki import (
    DevPki,
    fingerprint,
    fingerprint_der,
    format_fingerprint,
    load_certificate,
    parse_fingerprint,
)

DIGEST = hashlib.sha256(b"securechat").digest()
SHOWN = DIGEST.hex(":").upper()


def test_format_is_colon_separated_upper_case_hex() -> None:
    assert format_fingerprint(DIGEST) == SHOWN
    assert len(SHOWN) == 95


def test_certificate_fingerprints_use_the_one_format(pki: DevPki) -> None:
    cert = load_certificate(pki.client("alice").cert)

    der = cert.public_bytes(Encoding.DER)
    assert (
        fingerprint(cert)
        == fingerprint_der(der)
        == format_fingerprint(hashlib.sha256(der).digest())
    )


@pytest.mark.parametrize("text", [SHOWN, SHOWN.lower(), SHOWN.replace(":", ""), f"  {SHOWN} "])
def test_operator_input_is_normalised(text: str) -> None:
    assert parse_fingerprint(text) == SHOWN


@pytest.mark.parametrize(
    "text",
    ["", "AB:CD", SHOWN[:-3], SHOWN + ":00", "GG" * 32, SHOWN.replace(":", " "), "0x" + "a" * 62],
)
def test_bad_fingerprints_are_refused(text: str) -> None:
    with pytest.raises(InvalidArgument, match="64 hex digits"):
        parse_fingerprint(text)
