"""The one-time code that authenticates a device link: what the user reads on one device and
types on the other.

The existing device makes an ephemeral X25519 key ``E_A`` and a random 4-byte secret; the code
is 15 bytes::

    fingerprint(9) | secret(4) | check(2)
    fingerprint = SHA-256( Writer(LINK_KEY_FINGERPRINT) | E_A(32) )[:9]
    check       = SHA-256( Writer(LINK_CODE_CHECK) | fingerprint(9) | secret(4) )[:2]

written in Crockford's base32 (digits and capitals without I, L, O, U; 24 characters, 6 groups of
4 joined by ``-``; reading is case-insensitive, ignores ``-`` and spaces and maps O to 0 and
I, L to 1). The fingerprint lets the new device check the key the server relays before sending
anything (72 bits: a server would need a second preimage within the code's lifetime); the
secret goes into the channel keys, so only someone who read the code can talk on the channel
(32 bits, one online try: the existing device voids the code on the first failure); the check
tells a typing mistake from a tampered relay. The fingerprint, in hex, is also the relay id
the new device asks the server for.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from securechat.crypto import labels
from securechat.crypto.encoding import Writer
from securechat.crypto.labels import constant_time_equal
from securechat.errors import LinkError

FINGERPRINT_SIZE = 9
SECRET_SIZE = 4
CHECK_SIZE = 2
CODE_SIZE = FINGERPRINT_SIZE + SECRET_SIZE + CHECK_SIZE
GROUP = 4

_RFC4648 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_TO_CROCKFORD = str.maketrans(_RFC4648, _CROCKFORD)
_FROM_CROCKFORD = str.maketrans(_CROCKFORD + "OIL", _RFC4648 + "ABB")


def key_fingerprint(ephemeral_public: bytes) -> bytes:
    """The full 32-byte fingerprint of the existing device's ephemeral link key."""
    return labels.sha256(Writer(labels.LINK_KEY_FINGERPRINT).fixed(ephemeral_public, 32).to_bytes())


def _check(fingerprint: bytes, secret: bytes) -> bytes:
    message = (
        Writer(labels.LINK_CODE_CHECK)
        .fixed(fingerprint, FINGERPRINT_SIZE)
        .fixed(secret, SECRET_SIZE)
        .to_bytes()
    )
    return labels.sha256(message)[:CHECK_SIZE]


@dataclass(frozen=True)
class LinkCode:
    """A parsed code: the relayed key's fingerprint prefix and the channel secret."""

    fingerprint: bytes
    secret: bytes

    @classmethod
    def for_key(cls, ephemeral_public: bytes, secret: bytes) -> LinkCode:
        return cls(key_fingerprint(ephemeral_public)[:FINGERPRINT_SIZE], secret)

    def matches(self, ephemeral_public: bytes) -> bool:
        """Whether ``ephemeral_public`` is the key this code was made for."""
        return constant_time_equal(
            key_fingerprint(ephemeral_public)[:FINGERPRINT_SIZE], self.fingerprint
        )

    @property
    def relay_id(self) -> str:
        """What the new device asks the server's link relay for (public: no secret in it)."""
        return self.fingerprint.hex()

    def to_bytes(self) -> bytes:
        return self.fingerprint + self.secret + _check(self.fingerprint, self.secret)

    def text(self) -> str:
        letters = base64.b32encode(self.to_bytes()).decode("ascii").translate(_TO_CROCKFORD)
        return "-".join(letters[i : i + GROUP] for i in range(0, len(letters), GROUP))

    @classmethod
    def parse(cls, text: str) -> LinkCode:
        """Read a typed code (LinkError ``wrong_code`` on any typo the check catches)."""
        letters = "".join(text.split()).replace("-", "").upper()
        if len(letters) != CODE_SIZE * 8 // 5 or not set(letters) <= set(_CROCKFORD + "OIL"):
            raise LinkError("wrong_code")
        try:
            data = base64.b32decode(letters.translate(_FROM_CROCKFORD))
        except (binascii.Error, ValueError) as exc:
            raise LinkError("wrong_code") from exc
        fingerprint = data[:FINGERPRINT_SIZE]
        secret = data[FINGERPRINT_SIZE : FINGERPRINT_SIZE + SECRET_SIZE]
        if not constant_time_equal(
            data[FINGERPRINT_SIZE + SECRET_SIZE :], _check(fingerprint, secret)
        ):
            raise LinkError("wrong_code")
        return cls(fingerprint, secret)
