"""Trust on first use: one pinned identity per user, and never a silent change.

* The first identity seen for a user is pinned, unverified.
* :meth:`TrustStore.verify` marks the identity the user compared (the pending one if a change
  was seen, else the pinned one) as verified.
* A different identity seen later is kept as *pending*; the pin does not move. Until the user
  reacts, :meth:`TrustStore.check` raises ``IdentityChanged(user, verified)`` for every send:
  a formerly verified contact needs :meth:`verify` (after comparing safety numbers), an
  unverified one needs :meth:`trust` (acknowledge). ``trust`` refuses to downgrade a verified
  contact silently.

Pins are part of the account state (:meth:`to_bytes` / :meth:`read`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from securechat.crypto.encoding import Reader, Writer
from securechat.crypto.identity import IdentityPublic
from securechat.crypto.labels import constant_time_equal
from securechat.errors import IdentityChanged, InvalidArgument


class TrustLevel(enum.Enum):
    UNKNOWN = "unknown"  # never seen
    UNVERIFIED = "unverified"  # pinned on first use
    VERIFIED = "verified"  # safety number compared
    CHANGED = "changed"  # a different identity was seen: sending is blocked


@dataclass
class Pin:
    identity: bytes
    verified: bool
    pending: bytes | None = None


class TrustStore:
    """The pins of one account, keyed by user name."""

    def __init__(self) -> None:
        self._pins: dict[str, Pin] = {}

    def level(self, user: str) -> TrustLevel:
        pin = self._pins.get(user)
        if pin is None:
            return TrustLevel.UNKNOWN
        if pin.pending is not None:
            return TrustLevel.CHANGED
        return TrustLevel.VERIFIED if pin.verified else TrustLevel.UNVERIFIED

    def pinned(self, user: str) -> IdentityPublic | None:
        pin = self._pins.get(user)
        return None if pin is None else IdentityPublic.from_bytes(pin.identity)

    def displayed(self, user: str) -> IdentityPublic | None:
        """The identity a safety number should be shown for: the pending one if any."""
        pin = self._pins.get(user)
        if pin is None:
            return None
        return IdentityPublic.from_bytes(pin.pending if pin.pending is not None else pin.identity)

    def observe(self, user: str, identity: IdentityPublic) -> None:
        """Record an identity seen for ``user``: pin it if first, mark a change otherwise."""
        encoded = identity.to_bytes()
        pin = self._pins.get(user)
        if pin is None:
            self._pins[user] = Pin(encoded, verified=False)
        elif not constant_time_equal(pin.identity, encoded):
            pin.pending = encoded
        # Seeing the pinned identity again does not cancel a pending change: the user decides.

    def check(self, user: str, identity: IdentityPublic) -> None:
        """Raise IdentityChanged unless ``identity`` is the accepted pin for ``user``."""
        pin = self._pins.get(user)
        if pin is None:
            raise InvalidArgument(f"no identity pinned for {user}")
        if pin.pending is not None or not constant_time_equal(pin.identity, identity.to_bytes()):
            raise IdentityChanged(user, pin.verified)

    def trust(self, user: str) -> None:
        """Acknowledge a changed identity of an unverified contact (it stays unverified)."""
        pin = self._require(user)
        if pin.pending is None:
            return
        if pin.verified:
            raise InvalidArgument(
                f"{user} was verified: compare the safety number and verify the new key instead"
            )
        pin.identity, pin.pending = pin.pending, None

    def verify(self, user: str) -> None:
        """Mark the displayed identity (pending if any) as verified."""
        pin = self._require(user)
        if pin.pending is not None:
            pin.identity, pin.pending = pin.pending, None
        pin.verified = True

    def unverify(self, user: str) -> None:
        self._require(user).verified = False

    def _require(self, user: str) -> Pin:
        pin = self._pins.get(user)
        if pin is None:
            raise InvalidArgument(f"no identity known for {user}: exchange a message first")
        return pin

    def write(self, writer: Writer) -> Writer:
        writer.u32(len(self._pins))
        for user, pin in sorted(self._pins.items()):
            writer.text(user).var_bytes(pin.identity).boolean(pin.verified)
            writer.optional_bytes(pin.pending)
        return writer

    @classmethod
    def read(cls, reader: Reader) -> TrustStore:
        store = cls()
        for _ in range(reader.u32()):
            user = reader.text()
            store._pins[user] = Pin(reader.var_bytes(), reader.boolean(), reader.optional_bytes())
        return store
