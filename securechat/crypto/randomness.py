"""The single source of randomness of the protocol, replaceable in tests for golden transcripts.

Production code always uses :class:`SystemRandomness` (``os.urandom`` and ML-KEM's own
encapsulation). Tests inject a deterministic subclass so a handshake and a few ratchet messages
can be frozen as bytes: any accidental protocol change then fails a known-answer test.
"""

from __future__ import annotations

import os

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from securechat.errors import CryptoError


class SystemRandomness:
    """Draws every random value from the operating system's CSPRNG."""

    def random_bytes(self, n: int) -> bytes:
        return os.urandom(n)

    def x25519(self) -> X25519PrivateKey:
        return X25519PrivateKey.from_private_bytes(self.random_bytes(32))

    def ed25519(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.random_bytes(32))

    def mlkem768(self) -> MLKEM768PrivateKey:
        return MLKEM768PrivateKey.from_seed_bytes(self.random_bytes(64))

    def encapsulate(self, public_key: MLKEM768PublicKey) -> tuple[bytes, bytes]:
        """Return ``(shared_secret, ciphertext)`` for ``public_key``."""
        shared_secret, ciphertext = public_key.encapsulate()
        return shared_secret, ciphertext


SYSTEM_RANDOMNESS = SystemRandomness()


def require_backend_support() -> None:
    """Fail closed, with a clear message, if this ``cryptography`` build lacks a primitive."""
    try:
        key = MLKEM768PrivateKey.generate()
        shared_secret, ciphertext = key.public_key().encapsulate()
        if key.decapsulate(ciphertext) != shared_secret:
            raise CryptoError("ML-KEM-768 self-test failed: reinstall cryptography")
    except UnsupportedAlgorithm as exc:
        raise CryptoError(
            "this build of cryptography/OpenSSL has no ML-KEM-768: install cryptography >= 48 "
            "from the official wheels"
        ) from exc
