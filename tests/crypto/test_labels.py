"""Labels are unique and well-formed; the KDF helpers match their RFCs."""

from __future__ import annotations

from securechat.crypto import labels


def test_every_label_is_unique_and_versioned() -> None:
    assert len(set(labels.ALL_LABELS)) == len(labels.ALL_LABELS)
    for label in labels.ALL_LABELS:
        assert label.startswith(labels.PROTOCOL_PREFIX)
        assert len(label) > len(labels.PROTOCOL_PREFIX)


def test_hkdf_matches_rfc5869_case_1() -> None:
    okm = labels.hkdf(
        bytes.fromhex("0b" * 22),
        bytes.fromhex("000102030405060708090a0b0c"),
        bytes.fromhex("f0f1f2f3f4f5f6f7f8f9"),
        42,
    )
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_hmac_sha256_matches_rfc4231_case_2() -> None:
    mac = labels.hmac_sha256(b"Jefe", b"what do ya want for nothing?")
    assert mac.hex() == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_constant_time_equal() -> None:
    assert labels.constant_time_equal(b"abc", b"abc")
    assert not labels.constant_time_equal(b"abc", b"abd")


def test_backend_supports_every_primitive() -> None:
    from securechat.crypto.randomness import require_backend_support

    require_backend_support()
