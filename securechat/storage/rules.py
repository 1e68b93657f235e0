"""Input checks and error messages shared by every Store adapter, so they fail identically."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from securechat.domain.model import (
    Bundle,
    DeviceRef,
    KemPreKeyRecord,
    OneTimePreKeyRecord,
    PendingSend,
)
from securechat.errors import AlreadyExists, InvalidArgument, NotFound


def user_not_found(name: str) -> NotFound:
    return NotFound(f"user {name!r} does not exist: check the name (names are case-sensitive)")


def room_not_found(name: str) -> NotFound:
    return NotFound(f"room {name!r} does not exist: list rooms to see the available ones")


def device_not_found(device: DeviceRef) -> NotFound:
    return NotFound(
        f"device {device.device_id} of user {device.user!r} does not exist: "
        "refresh the device list and try again"
    )


def user_taken(name: str) -> AlreadyExists:
    return AlreadyExists(f"the name {name!r} is taken: choose another one")


def room_taken(name: str) -> AlreadyExists:
    return AlreadyExists(f"room {name!r} already exists: join it or pick another name")


def account_exists(name: str) -> AlreadyExists:
    return AlreadyExists(
        f"{name} already has an account key: link this device from one of {name}'s devices "
        "(`securechat devices link`), or reset the account"
    )


def session_exists() -> AlreadyExists:
    return AlreadyExists("a session with this token already exists: issue a new token")


def ack_beyond_last(up_to_seq: int, last_seq: int) -> InvalidArgument:
    return InvalidArgument(
        f"cannot acknowledge sequence {up_to_seq}: only {last_seq} were delivered"
    )


MAX_ROSTER_PAGE = 1024  # roster events per page


def bad_roster_page(limit: int, most: int) -> InvalidArgument:
    return InvalidArgument(f"a roster page holds 1-{most} events, got {limit}")


def check_limit(limit: int) -> None:
    if limit < 0:
        raise InvalidArgument(f"fetch limit must be zero or more, got {limit}")


MAX_PAGE = 1000


def check_page(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidArgument(f"page size must be between 1 and {MAX_PAGE}, got {limit}")


def invite_taken() -> AlreadyExists:
    return AlreadyExists("that invite code exists already: create another")


def page_end(sizes: Sequence[tuple[int, int]], max_bytes: int) -> int:
    """The last sequence of a page of ``(seq, ciphertext bytes)`` whose ciphertexts add up to
    at most ``max_bytes`` (always at least the first: one entry of any size fits a page)."""
    total = 0
    last = sizes[0][0]
    for seq, size in sizes:
        total += size
        if total > max_bytes and seq != sizes[0][0]:
            break
        last = seq
    return last


def _check_unique(kind: str, key_ids: Iterable[int]) -> None:
    seen: set[int] = set()
    for key_id in key_ids:
        if key_id in seen:
            raise InvalidArgument(
                f"duplicate {kind} prekey id {key_id} in one request: every key id must be unique"
            )
        seen.add(key_id)


def check_prekeys(
    one_time: Sequence[OneTimePreKeyRecord],
    kem: Sequence[KemPreKeyRecord],
    last_resort: KemPreKeyRecord | None = None,
) -> None:
    """InvalidArgument when a key id repeats within a request (KEM and last-resort share ids)."""
    _check_unique("one-time", (k.key_id for k in one_time))
    kem_ids = [k.key_id for k in kem]
    if last_resort is not None:
        kem_ids.append(last_resort.key_id)
    _check_unique("KEM", kem_ids)
    last_resorts = [k for k in kem if k.last_resort] + ([last_resort] if last_resort else [])
    if len(last_resorts) > 1:
        raise InvalidArgument("a request may carry at most one last-resort KEM prekey")


def check_bundle(bundle: Bundle) -> None:
    check_prekeys(bundle.one_time_prekeys, bundle.kem_prekeys, bundle.last_resort)


def existing_key_conflict(kind: str, key_id: int) -> InvalidArgument:
    return InvalidArgument(
        f"{kind} prekey id {key_id} is already published for this device: use fresh key ids"
    )


def bundle_kem_records(bundle: Bundle) -> list[KemPreKeyRecord]:
    """The bundle's KEM keys with the last-resort key (flag forced on) appended."""
    records = list(bundle.kem_prekeys)
    if bundle.last_resort is not None:
        lr = bundle.last_resort
        records.append(KemPreKeyRecord(lr.key_id, lr.public_key, lr.signature, last_resort=True))
    return records


def recipient_counts(sends: Sequence[PendingSend]) -> dict[DeviceRef, int]:
    """How many new mailbox entries each recipient device gets, sorted by (user, device_id).

    The sorted order is also the row-locking order, so concurrent batches cannot deadlock.
    """
    counts: dict[DeviceRef, int] = {}
    for send in sends:
        for item in send.items:
            counts[item.recipient] = counts.get(item.recipient, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (kv[0].user, kv[0].device_id)))


def contact_pair(a: str, b: str) -> tuple[str, str]:
    if a == b:
        raise InvalidArgument("a private conversation needs two different users")
    return (a, b) if a < b else (b, a)
