"""Per-user identity keys: an Ed25519 signing key and an X25519 DH key signed by it.

The public identity has one canonical 128-byte encoding,
``ed25519_pub(32) || x25519_pub(32) || signature(64)``, where the signature is Ed25519 over
``Writer(IDENTITY_DH_SIGNATURE) || ed25519_pub || x25519_pub``. Those 128 bytes are what the
server stores, what pins compare and what the safety number hashes.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from securechat.crypto import labels
from securechat.crypto.encoding import Reader, Writer
from securechat.crypto.randomness import SYSTEM_RANDOMNESS, SystemRandomness
from securechat.errors import BadSignature, InvalidArgument

KEY_SIZE = 32
SIGNATURE_SIZE = 64
IDENTITY_PUBLIC_SIZE = 2 * KEY_SIZE + SIGNATURE_SIZE
IDENTITY_PRIVATE_SIZE = 2 * KEY_SIZE


def _dh_binding(signing_key: bytes, dh_key: bytes) -> bytes:
    return Writer(labels.IDENTITY_DH_SIGNATURE).fixed(signing_key, 32).fixed(dh_key, 32).to_bytes()


def verify_signature(signing_key: bytes, signature: bytes, message: bytes) -> None:
    """Verify an Ed25519 signature by ``signing_key``; raise BadSignature if it does not hold."""
    try:
        Ed25519PublicKey.from_public_bytes(signing_key).verify(signature, message)
    except (InvalidSignature, ValueError) as exc:
        raise BadSignature() from exc


@dataclass(frozen=True)
class IdentityPublic:
    """A user's public identity: signing key, DH key and the binding signature."""

    signing_key: bytes
    dh_key: bytes
    signature: bytes

    def to_bytes(self) -> bytes:
        return (
            Writer()
            .fixed(self.signing_key, KEY_SIZE)
            .fixed(self.dh_key, KEY_SIZE)
            .fixed(self.signature, SIGNATURE_SIZE)
            .to_bytes()
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> IdentityPublic:
        """Parse the 128-byte encoding (raises InvalidArgument; does not verify)."""
        if len(data) != IDENTITY_PUBLIC_SIZE:
            raise InvalidArgument(f"an identity key is {IDENTITY_PUBLIC_SIZE} bytes")
        reader = Reader(data)
        return cls(reader.fixed(KEY_SIZE), reader.fixed(KEY_SIZE), reader.fixed(SIGNATURE_SIZE))

    def verify(self) -> None:
        """Check the DH key is signed by the signing key; raise BadSignature otherwise."""
        verify_signature(
            self.signing_key, self.signature, _dh_binding(self.signing_key, self.dh_key)
        )

    def verify_signed(self, signature: bytes, message: bytes) -> None:
        """Check ``signature`` over ``message`` by this identity's signing key."""
        verify_signature(self.signing_key, signature, message)

    def dh_public(self) -> X25519PublicKey:
        return X25519PublicKey.from_public_bytes(self.dh_key)


class IdentityKeyPair:
    """The private half of an identity: signs prekeys and takes part in the handshake."""

    def __init__(self, signing_private: Ed25519PrivateKey, dh_private: X25519PrivateKey) -> None:
        self._signing = signing_private
        self._dh = dh_private
        signing_key = signing_private.public_key().public_bytes_raw()
        dh_key = dh_private.public_key().public_bytes_raw()
        self.public = IdentityPublic(
            signing_key, dh_key, signing_private.sign(_dh_binding(signing_key, dh_key))
        )

    @classmethod
    def generate(cls, randomness: SystemRandomness = SYSTEM_RANDOMNESS) -> IdentityKeyPair:
        return cls(randomness.ed25519(), randomness.x25519())

    def sign(self, message: bytes) -> bytes:
        return self._signing.sign(message)

    def dh(self, peer: X25519PublicKey) -> bytes:
        return self._dh.exchange(peer)

    def to_bytes(self) -> bytes:
        """Private serialization: ``ed25519_seed(32) || x25519_private(32)``."""
        return self._signing.private_bytes_raw() + self._dh.private_bytes_raw()

    @classmethod
    def from_bytes(cls, data: bytes) -> IdentityKeyPair:
        if len(data) != IDENTITY_PRIVATE_SIZE:
            raise InvalidArgument("malformed identity private key")
        return cls(
            Ed25519PrivateKey.from_private_bytes(data[:KEY_SIZE]),
            X25519PrivateKey.from_private_bytes(data[KEY_SIZE:]),
        )
