"""Trust on first use: one pinned key per user, never a silent change, and a way to say no.

A pin holds a user's **account key** (32 bytes). A pin can also hold a **device identity**
(128 bytes): pins made before accounts owned devices, and the pin a device makes on receiving a
first message from someone it knew nothing about. Such a pin keeps working for a contact whose
account key is not known, and moves to the account key without any identity change when the
pinned identity's :class:`~securechat.crypto.certificates.AccountBinding` names that key (the
verified flag moves with it); without that binding a new account key is a change.

* The first key seen for a user is pinned, unverified.
* A different key seen later is kept as *pending*; the pin does not move. Until the user
  decides, :meth:`TrustStore.require_accepted` raises ``IdentityChanged(user, verified)``, so
  nothing is encrypted for that user (queued messages included).
* The decision: :meth:`accept` the displayed (pending) key, naming the key the user was shown
  (so a key that changed again meanwhile is never accepted by mistake), verified or not; or
  :meth:`reject` it: the pin and the sessions made under it stay, and the rejected key being
  offered again is reported (``REJECTED_AGAIN``) instead of blocking again.
* A new certified *device* is not a trust event at all (see :mod:`securechat.crypto.device_list`).

Pins are part of the account state (:meth:`write` / :meth:`read`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from securechat.crypto.account_key import ACCOUNT_KEY_SIZE, AccountPublic
from securechat.crypto.certificates import AccountBinding
from securechat.crypto.encoding import Reader, Writer
from securechat.crypto.identity import IDENTITY_PUBLIC_SIZE, IdentityPublic
from securechat.crypto.labels import constant_time_equal
from securechat.errors import BadSignature, IdentityChanged, InvalidArgument

TRUST_VERSION = 2


class TrustLevel(enum.Enum):
    UNKNOWN = "unknown"  # never seen
    UNVERIFIED = "unverified"  # pinned on first use
    VERIFIED = "verified"  # safety number compared
    CHANGED = "changed"  # a different key was seen: sending is blocked until the user decides


class TrustEvent(enum.Enum):
    """What observing a key did (for the client to tell the user)."""

    NONE = "none"
    PINNED = "pinned"
    CHANGED = "changed"
    ADOPTED = "adopted"  # a device-identity pin moved to the account key its device signed
    REJECTED_AGAIN = "rejected_again"


@dataclass
class Pin:
    key: bytes  # account key (32) or legacy device identity (128)
    verified: bool
    pending: bytes | None = None
    rejected: bytes | None = None

    @property
    def is_account(self) -> bool:
        return len(self.key) == ACCOUNT_KEY_SIZE


def _same(a: bytes | None, b: bytes) -> bool:
    return a is not None and constant_time_equal(a, b)


class TrustStore:
    """The pins of one account, keyed by user name."""

    def __init__(self) -> None:
        self._pins: dict[str, Pin] = {}

    def users(self) -> list[str]:
        return sorted(self._pins)

    def level(self, user: str) -> TrustLevel:
        pin = self._pins.get(user)
        if pin is None:
            return TrustLevel.UNKNOWN
        if pin.pending is not None:
            return TrustLevel.CHANGED
        return TrustLevel.VERIFIED if pin.verified else TrustLevel.UNVERIFIED

    def pin(self, user: str) -> Pin | None:
        return self._pins.get(user)

    def pinned(self, user: str) -> IdentityPublic | None:
        """The pinned legacy device identity (None for none, or for an account-key pin)."""
        pin = self._pins.get(user)
        if pin is None or pin.is_account:
            return None
        return IdentityPublic.from_bytes(pin.key)

    def pinned_account(self, user: str) -> AccountPublic | None:
        """The accepted account key of ``user`` (None if unknown or still a legacy pin)."""
        pin = self._pins.get(user)
        return AccountPublic(pin.key) if pin is not None and pin.is_account else None

    def displayed_key(self, user: str) -> bytes | None:
        """The key a safety number should be shown for: the pending one if any."""
        pin = self._pins.get(user)
        if pin is None:
            return None
        return pin.pending if pin.pending is not None else pin.key

    def displayed(self, user: str) -> IdentityPublic | None:
        """Stage-1 view of :meth:`displayed_key` (None when it is an account key)."""
        key = self.displayed_key(user)
        return (
            None
            if key is None or len(key) != IDENTITY_PUBLIC_SIZE
            else (IdentityPublic.from_bytes(key))
        )

    def _see(self, user: str, key: bytes) -> TrustEvent:
        pin = self._pins.get(user)
        if pin is None:
            self._pins[user] = Pin(key, verified=False)
            return TrustEvent.PINNED
        if constant_time_equal(pin.key, key) or _same(pin.pending, key):
            # Seeing the pinned key again does not cancel a pending change: the user decides.
            return TrustEvent.NONE
        if _same(pin.rejected, key):
            return TrustEvent.REJECTED_AGAIN
        pin.pending = key
        return TrustEvent.CHANGED

    def observe(self, user: str, identity: IdentityPublic) -> TrustEvent:
        """Stage 1: record a device identity seen for a user pinned by identity (or unknown).

        For a user pinned by account key, device identities are judged by the device list.
        """
        pin = self._pins.get(user)
        if pin is not None and (
            pin.is_account or (pin.pending is not None and len(pin.pending) == ACCOUNT_KEY_SIZE)
        ):
            return TrustEvent.NONE
        return self._see(user, identity.to_bytes())

    def observe_account(
        self,
        user: str,
        account_key: AccountPublic,
        bindings: Iterable[AccountBinding] = (),
    ) -> TrustEvent:
        """Record the account key the directory shows for ``user`` (TOFU, change, adoption).

        ``bindings`` are the device bindings the directory serves for ``user``'s devices; the
        one of the pinned device identity, if valid and naming ``account_key``, adopts it.
        """
        pin = self._pins.get(user)
        if (
            pin is not None
            and not pin.is_account
            and pin.pending is None
            and any(_adopts(b, user, pin.key, account_key) for b in bindings)
        ):
            pin.key = account_key.to_bytes()
            return TrustEvent.ADOPTED
        return self._see(user, account_key.to_bytes())

    def require_accepted(self, user: str) -> Pin:
        """The pin, if sending to ``user`` is allowed (IdentityChanged while a change waits)."""
        pin = self._pins.get(user)
        if pin is None:
            raise InvalidArgument(f"no key pinned for {user}")
        if pin.pending is not None:
            raise IdentityChanged(user, pin.verified)
        return pin

    def check(self, user: str, identity: IdentityPublic) -> None:
        """Stage 1: raise IdentityChanged unless ``identity`` is the accepted legacy pin."""
        pin = self.require_accepted(user)
        if pin.is_account or not constant_time_equal(pin.key, identity.to_bytes()):
            raise IdentityChanged(user, pin.verified)

    def accept(self, user: str, key: bytes, *, verified: bool) -> None:
        """Accept the displayed key, which must be ``key`` (the one the user was shown)."""
        pin = self._require(user)
        if not constant_time_equal(self.displayed_key(user) or b"", key):
            raise InvalidArgument(
                f"the key of {user} changed again: look at the new safety number and decide again"
            )
        if pin.pending is not None:
            pin.key, pin.pending, pin.verified = pin.pending, None, verified
            pin.rejected = None
        else:
            pin.verified = pin.verified or verified

    def reject(self, user: str) -> None:
        """Keep the old pin (and the sessions made under it); remember the refused key."""
        pin = self._require(user)
        if pin.pending is None:
            raise InvalidArgument(f"the key of {user} has not changed: there is nothing to reject")
        pin.rejected, pin.pending = pin.pending, None

    def trust(self, user: str) -> None:
        """Stage-1 acknowledgement of a changed key of an unverified contact."""
        pin = self._require(user)
        if pin.pending is None:
            return
        if pin.verified:
            raise InvalidArgument(
                f"{user} was verified: compare the safety number and verify the new key instead"
            )
        self.accept(user, pin.pending, verified=False)

    def verify(self, user: str) -> None:
        """Stage-1: mark the displayed key (pending if any) as verified."""
        key = self.displayed_key(user)
        if key is None:
            raise InvalidArgument(f"no identity known for {user}: exchange a message first")
        self.accept(user, key, verified=True)

    def unverify(self, user: str) -> None:
        self._require(user).verified = False

    def _require(self, user: str) -> Pin:
        pin = self._pins.get(user)
        if pin is None:
            raise InvalidArgument(f"no identity known for {user}: exchange a message first")
        return pin

    def export_pins(self) -> bytes:
        """The accepted pins (no pending or rejected keys), for a newly linked device."""
        writer = Writer().u32(len(self._pins))
        for user, pin in sorted(self._pins.items()):
            writer.text(user).var_bytes(pin.key).boolean(pin.verified)
        return writer.to_bytes()

    def import_pins(self, data: bytes) -> None:
        """Take the pins a linked device sent for every user not pinned here yet."""
        reader = Reader(data)
        pins = {}
        for _ in range(reader.u32()):
            user, key, verified = reader.text(), reader.var_bytes(), reader.boolean()
            _check_key(key)
            pins[user] = Pin(key, verified)
        reader.finish()
        for user, pin in pins.items():
            self._pins.setdefault(user, pin)

    def write(self, writer: Writer) -> Writer:
        writer.u32(len(self._pins))
        for user, pin in sorted(self._pins.items()):
            writer.text(user).var_bytes(pin.key).boolean(pin.verified)
            writer.optional_bytes(pin.pending).optional_bytes(pin.rejected)
        return writer

    @classmethod
    def read(cls, reader: Reader, version: int = TRUST_VERSION) -> TrustStore:
        """Parse pins (``version`` 1 = stage 1: no rejected key recorded)."""
        store = cls()
        for _ in range(reader.u32()):
            user = reader.text()
            pin = Pin(reader.var_bytes(), reader.boolean(), reader.optional_bytes())
            if version >= TRUST_VERSION:
                pin.rejected = reader.optional_bytes()
            for key in (pin.key, pin.pending, pin.rejected):
                if key is not None:
                    _check_key(key)
            store._pins[user] = pin
        return store


def _check_key(key: bytes) -> None:
    if len(key) not in (ACCOUNT_KEY_SIZE, IDENTITY_PUBLIC_SIZE):
        raise InvalidArgument("a pinned key is an account key or a device identity")


def _adopts(binding: AccountBinding, user: str, pinned: bytes, account_key: AccountPublic) -> bool:
    if binding.user != user or binding.account_key != account_key:
        return False
    if not constant_time_equal(binding.identity.to_bytes(), pinned):
        return False
    try:
        binding.verify()
    except BadSignature:
        return False
    return True
