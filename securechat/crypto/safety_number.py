"""Signal's numeric fingerprint ("safety number") with securechat's own version constant.

For each party: ``h = version(2 bytes) || identity_key || stable_id``, then 5200 times
``h = SHA-512(h || identity_key)``. The first 30 bytes of ``h`` become six 5-byte big-endian
integers, each taken mod 100000 and written as 5 digits: 30 digits per party. The two halves are
sorted and joined (so both parties see the same 60 digits) and shown as 12 groups of 5.

This is libsignal's ``NumericFingerprintGenerator`` (its displayable fingerprint hashes with
version 0 and 33-byte DJB-prefixed keys; the test suite checks that vector). securechat uses
:data:`SAFETY_NUMBER_VERSION` = 0x5343 ("SC") and the 128-byte canonical ``IdentityPublic``
encoding as the identity key, with the user name (UTF-8) as stable id, so its numbers can never
collide with Signal's for the same bytes.

Since accounts own devices, the number shown to users is :func:`account_safety_number`: the same
algorithm over the 32-byte Ed25519 *account* keys, with its own version constant
:data:`ACCOUNT_SAFETY_NUMBER_VERSION` = 0x5341 ("SA"). The key hashed changed meaning (an account
key instead of one device's identity), so the version changed too: a number computed the stage-1
way and one computed over account keys are domain-separated and can never be confused, and both
stay distinct from Signal's (version 0). Because devices are not hashed, the number stays the same
when a device is linked or removed; it changes only when an account key changes.
:func:`safety_number` over device identities is kept for contacts not yet migrated.
"""

from __future__ import annotations

import hashlib

from securechat.crypto.account_key import AccountPublic
from securechat.crypto.identity import IdentityPublic

SAFETY_NUMBER_VERSION = 0x5343
ACCOUNT_SAFETY_NUMBER_VERSION = 0x5341
LIBSIGNAL_DISPLAY_VERSION = 0
ITERATIONS = 5200
DIGITS_PER_PARTY = 30


def fingerprint_half(
    identity_key: bytes, stable_id: str, *, version: int, iterations: int = ITERATIONS
) -> str:
    """The 30-digit half of the safety number that belongs to one party."""
    digest = version.to_bytes(2, "big") + identity_key + stable_id.encode("utf-8")
    for _ in range(iterations):
        digest = hashlib.sha512(digest + identity_key).digest()
    return "".join(
        f"{int.from_bytes(digest[offset : offset + 5], 'big') % 100000:05d}"
        for offset in range(0, 30, 5)
    )


def combine(local_half: str, remote_half: str) -> str:
    """Sort the two halves and join them into the 60 digits both parties see."""
    return "".join(sorted((local_half, remote_half)))


def _number(
    version: int,
    local_user: str,
    local_key: bytes,
    remote_user: str,
    remote_key: bytes,
    *,
    iterations: int,
) -> str:
    return combine(
        fingerprint_half(local_key, local_user, version=version, iterations=iterations),
        fingerprint_half(remote_key, remote_user, version=version, iterations=iterations),
    )


def safety_number(
    local_user: str,
    local_identity: IdentityPublic,
    remote_user: str,
    remote_identity: IdentityPublic,
    *,
    iterations: int = ITERATIONS,
) -> str:
    """The stage-1 60-digit safety number over device identities (symmetric)."""
    return _number(
        SAFETY_NUMBER_VERSION,
        local_user,
        local_identity.to_bytes(),
        remote_user,
        remote_identity.to_bytes(),
        iterations=iterations,
    )


def account_safety_number(
    local_user: str,
    local_account: AccountPublic,
    remote_user: str,
    remote_account: AccountPublic,
    *,
    iterations: int = ITERATIONS,
) -> str:
    """The 60-digit safety number of two users over their account keys (symmetric)."""
    return _number(
        ACCOUNT_SAFETY_NUMBER_VERSION,
        local_user,
        local_account.to_bytes(),
        remote_user,
        remote_account.to_bytes(),
        iterations=iterations,
    )


def format_safety_number(digits: str) -> str:
    """Show 60 digits as 12 groups of 5 separated by spaces."""
    return " ".join(digits[i : i + 5] for i in range(0, len(digits), 5))
