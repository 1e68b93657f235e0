"""The account key: one Ed25519 key per user, the identity that owns every device of that user.

The public account key is its raw 32-byte Ed25519 encoding. It signs device certificates,
device removals and signed device lists (:mod:`securechat.crypto.certificates`), and safety
numbers are computed over it (:func:`securechat.crypto.safety_number.account_safety_number`),
so they stay the same when devices come and go. Every device of the account holds the private
key: it travels to a new device over the link channel (:mod:`securechat.crypto.linking`).

Fingerprint (for display and logs, never for trust decisions)::

    SHA-256( Writer(ACCOUNT_KEY_FINGERPRINT) | account_key(32) )
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from securechat.crypto import labels
from securechat.crypto.encoding import Writer
from securechat.crypto.identity import verify_signature
from securechat.crypto.randomness import SYSTEM_RANDOMNESS, SystemRandomness
from securechat.errors import InvalidArgument

ACCOUNT_KEY_SIZE = 32
ACCOUNT_SEED_SIZE = 32


@dataclass(frozen=True)
class AccountPublic:
    """A user's public account key (32 raw Ed25519 bytes)."""

    key: bytes

    def __post_init__(self) -> None:
        if len(self.key) != ACCOUNT_KEY_SIZE:
            raise InvalidArgument(f"an account key is {ACCOUNT_KEY_SIZE} bytes")

    def to_bytes(self) -> bytes:
        return self.key

    @classmethod
    def from_bytes(cls, data: bytes) -> AccountPublic:
        """Parse the 32-byte encoding (raises InvalidArgument; does not validate the point)."""
        return cls(bytes(data))

    def verify(self, signature: bytes, message: bytes) -> None:
        """Raise BadSignature unless ``signature`` is this key's signature over ``message``."""
        verify_signature(self.key, signature, message)

    def fingerprint(self) -> bytes:
        return labels.sha256(
            Writer(labels.ACCOUNT_KEY_FINGERPRINT).fixed(self.key, ACCOUNT_KEY_SIZE).to_bytes()
        )

    def display_fingerprint(self) -> str:
        """The first 16 fingerprint bytes as 8 groups of 4 hex digits."""
        digits = self.fingerprint()[:16].hex()
        return " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))


class AccountKeyPair:
    """The private account key: certifies and removes devices, signs device lists."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = AccountPublic(private.public_key().public_bytes_raw())

    @classmethod
    def generate(cls, randomness: SystemRandomness = SYSTEM_RANDOMNESS) -> AccountKeyPair:
        return cls(randomness.ed25519())

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def to_bytes(self) -> bytes:
        """Private serialization: the 32-byte Ed25519 seed."""
        return self._private.private_bytes_raw()

    @classmethod
    def from_bytes(cls, data: bytes) -> AccountKeyPair:
        if len(data) != ACCOUNT_SEED_SIZE:
            raise InvalidArgument("malformed account private key")
        return cls(Ed25519PrivateKey.from_private_bytes(data))
