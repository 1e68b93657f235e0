"""The mailbox write transactions, written once as generators of SQL steps: the group commit
(sequences, quotas, send deduplication), acknowledgements, expiry and pruning.

A transaction yields :class:`Query` steps (the driver sends back the rows) and :class:`Many`
steps (one ``executemany``); its return value is the result. The SQLite writer runs one on its
own connection in a single thread hop (sqlite_writer.py), the async adapters statement by
statement (sql_mailbox.py). The statements are plain SQL with ``?`` placeholders (rewritten to
``$n`` for asyncpg): they are the hottest of the server, and SQLAlchemy's expression building cost
more CPU than they do.

Usage accounting, without a COUNT per send: ``mailbox_totals`` holds each device's undelivered
entries and bytes, changed by the same transactions that insert and delete mailbox rows. A
sender's share of one device's mailbox (``mailbox_senders``) only matters once the device holds
more than the per-sender quota, so shares are counted from the mailbox the first time a batch
could pass it (the device becomes *tracked*), kept up to date from then on, and dropped when the
device's mailbox is empty again. An online device, which acknowledges what it gets, costs one
totals row per commit.

Row locks (PostgreSQL): every transaction that changes a device's mailbox or usage first locks
the device rows in (user, device_id) order, so concurrent nodes neither deadlock nor interleave.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from securechat.domain.mailbox import (
    ZERO,
    Committed,
    MailboxLimits,
    Plan,
    SendKey,
    Usage,
    fits_whole,
    incoming,
    plan,
    send_key,
    whole,
)
from securechat.domain.model import DeviceRef, MailboxEntry, PendingSend
from securechat.storage import rules

T = TypeVar("T")
CHUNK = 400  # devices (or keys) per statement: parameters stay far below driver limits


@dataclass(frozen=True, slots=True)
class Query:
    """One statement whose rows the driver sends back (as tuples)."""

    sql: str
    params: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class Many:
    """One statement executed once per row (``executemany``); the driver sends back None."""

    sql: str
    rows: list[tuple[Any, ...]]


Step = Query | Many
Tx = Generator[Step, list[tuple[Any, ...]] | None, T]


@dataclass(frozen=True, slots=True)
class Dialect:
    dollar: bool  # asyncpg's $1, $2, ... instead of ?
    lock_rows: bool  # lock device rows explicitly (PostgreSQL; SQLite's writer is alone)
    greatest: str  # the larger of two values: max() in SQLite, GREATEST() in PostgreSQL

    def sql(self, text: str) -> str:
        return _dollars(text) if self.dollar else text


@functools.lru_cache(maxsize=256)
def _dollars(text: str) -> str:
    numbers = itertools.count(1)
    return "".join(f"${next(numbers)}" if ch == "?" else ch for ch in text)


SQLITE = Dialect(dollar=False, lock_rows=False, greatest="max")
POSTGRES = Dialect(dollar=True, lock_rows=True, greatest="GREATEST")

_MAILBOX_COLUMNS = (
    "user_name", "device_id", "seq", "message_id", "sender_user", "sender_device",
    "conversation_kind", "conversation_name", "ciphertext", "sent_at_ms",
)  # fmt: skip
INSERT_MAILBOX = (
    f"INSERT INTO mailbox ({', '.join(_MAILBOX_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' for _ in _MAILBOX_COLUMNS)})"
)
SET_TOTALS = (
    "INSERT INTO mailbox_totals (user_name, device_id, entries, bytes, tracked) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_name, device_id) DO UPDATE SET "
    "entries = excluded.entries, bytes = excluded.bytes, tracked = excluded.tracked"
)
UNTRACK = "UPDATE mailbox_totals SET tracked = ? WHERE user_name = ? AND device_id = ?"
_SHARES_UPSERT = (
    "INSERT INTO mailbox_senders (user_name, device_id, sender_user, entries, bytes) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_name, device_id, sender_user) DO UPDATE SET "
)
ADD_SHARES = _SHARES_UPSERT + (
    "entries = mailbox_senders.entries + excluded.entries, "
    "bytes = mailbox_senders.bytes + excluded.bytes"
)
SET_SHARES = _SHARES_UPSERT + "entries = excluded.entries, bytes = excluded.bytes"
RECORD_SENT = (
    "INSERT INTO sent_messages "
    "(sender_user, sender_device, client_message_id, message_id, sent_at_ms) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (sender_user, sender_device, client_message_id) "
    "DO UPDATE SET message_id = excluded.message_id, sent_at_ms = excluded.sent_at_ms"
)
DELETE_RETURNING = (
    "DELETE FROM mailbox WHERE user_name = ? AND device_id = ? AND seq <= ? "
    "RETURNING sender_user, length(ciphertext)"
)
DROP_SHARES = "DELETE FROM mailbox_senders WHERE user_name = ? AND device_id = ?"
DROP_EMPTY_SHARES = (
    "DELETE FROM mailbox_senders WHERE user_name = ? AND device_id = ? AND entries <= 0"
)


DEVICE_TERM = "(user_name = ? AND device_id = ?)"


@functools.lru_cache(maxsize=256)
def _any_of(count: int, term: str = DEVICE_TERM) -> str:
    """``term OR term ...``: unlike a row-value IN list, SQLite searches its index for each
    term (``MULTI-INDEX OR``) instead of scanning the table."""
    return " OR ".join([term] * count)


def _device_params(devices: Sequence[DeviceRef]) -> list[Any]:
    params: list[Any] = []
    for device in devices:
        params += [device.user, device.device_id]
    return params


def _chunks(items: Sequence[T]) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _rows(result: list[tuple[Any, ...]] | None) -> list[tuple[Any, ...]]:
    assert result is not None, "a Query step gets rows back"
    return result


def _per_device(
    d: Dialect, devices: Sequence[DeviceRef], select: str, where: str = "", tail: str = "",
    extra: tuple[Any, ...] = (),
) -> Tx[list[tuple[Any, ...]]]:  # fmt: skip
    """``select ... WHERE (one of the devices) where tail``, chunked: every row."""
    found: list[tuple[Any, ...]] = []
    for chunk in _chunks(devices):
        rows = yield Query(
            d.sql(f"{select} WHERE ({_any_of(len(chunk))}) {where} {tail}"),
            (*_device_params(chunk), *extra),
        )
        found += _rows(rows)
    return found


def lock(d: Dialect, devices: Sequence[DeviceRef]) -> Tx[None]:
    """Lock the device rows in sorted order (PostgreSQL): concurrent commits queue up."""
    if d.lock_rows:
        select = "SELECT device_id FROM devices"
        order = "ORDER BY user_name, device_id FOR UPDATE"
        yield from _per_device(d, sorted(set(devices)), select, tail=order)


Totals = dict[DeviceRef, tuple[Usage, bool]]
Shares = dict[tuple[DeviceRef, str], Usage]
_GROUP_BY_SHARE = "GROUP BY user_name, device_id, sender_user"


def read_totals(d: Dialect, devices: Sequence[DeviceRef]) -> Tx[Totals]:
    """Each device's usage and whether its shares are kept (absent: never had mail)."""
    select = "SELECT user_name, device_id, entries, bytes, tracked FROM mailbox_totals"
    rows = yield from _per_device(d, devices, select)
    return {DeviceRef(u, i): (Usage(int(n), int(b)), bool(on)) for u, i, n, b, on in rows}


def _add_to_totals(d: Dialect, added: dict[DeviceRef, Usage]) -> Tx[Totals]:
    """Add to each device's totals (negative: take off, never below 0) in one statement per
    chunk; each device's totals after it, and whether its shares are kept."""
    found: Totals = {}
    greatest = d.greatest
    devices = sorted(added)
    for chunk in _chunks(devices):
        params: list[Any] = []
        for device in chunk:
            params += [device.user, device.device_id, added[device].entries, added[device].bytes]
        rows = yield Query(
            d.sql(
                "INSERT INTO mailbox_totals (user_name, device_id, entries, bytes) VALUES "  # noqa: S608
                f"{', '.join(['(?, ?, ?, ?)'] * len(chunk))} "
                "ON CONFLICT (user_name, device_id) DO UPDATE SET "
                f"entries = {greatest}(mailbox_totals.entries + excluded.entries, 0), "
                f"bytes = {greatest}(mailbox_totals.bytes + excluded.bytes, 0) "
                "RETURNING user_name, device_id, entries, bytes, tracked"
            ),
            tuple(params),
        )
        for user, device_id, entries, size, on in _rows(rows):
            found[DeviceRef(user, device_id)] = (Usage(int(entries), int(size)), bool(on))
    return found


def _shares(rows: list[tuple[Any, ...]]) -> Shares:
    return {(DeviceRef(u, i), s): Usage(int(n), int(b)) for u, i, s, n, b in rows}


def _count_shares(d: Dialect, devices: Sequence[DeviceRef]) -> Tx[Shares]:
    """Each sending user's share of these devices' mailboxes, counted from the mailbox."""
    select = (
        "SELECT user_name, device_id, sender_user, count(*), "
        "coalesce(sum(length(ciphertext)), 0) FROM mailbox"
    )
    return _shares((yield from _per_device(d, devices, select, tail=_GROUP_BY_SHARE)))


def _read_shares(d: Dialect, devices: Sequence[DeviceRef], senders: Sequence[str]) -> Tx[Shares]:
    """The kept shares of these senders in these (tracked) devices' mailboxes."""
    select = "SELECT user_name, device_id, sender_user, entries, bytes FROM mailbox_senders"
    where = f"AND sender_user IN ({', '.join('?' for _ in senders)})"
    return _shares((yield from _per_device(d, devices, select, where, extra=tuple(senders))))


def _read_sent(
    d: Dialect, keys: Sequence[SendKey], since_ms: int
) -> Tx[dict[SendKey, tuple[str, int]]]:
    found: dict[SendKey, tuple[str, int]] = {}
    term = "(sender_user = ? AND sender_device = ? AND client_message_id = ?)"
    for chunk in _chunks(keys):
        params: list[Any] = []
        for key in chunk:
            params += key
        rows = yield Query(
            d.sql(
                "SELECT sender_user, sender_device, client_message_id, message_id, sent_at_ms "  # noqa: S608
                f"FROM sent_messages WHERE {_any_of(len(chunk), term)}"
            ),
            tuple(params),
        )
        for user, device_id, client_id, message_id, sent_at_ms in _rows(rows):
            if int(sent_at_ms) >= since_ms:  # older records wait for pruning: they do not count
                found[(user, int(device_id), client_id)] = (message_id, int(sent_at_ms))
    return found


def reserve_sql(count: int) -> str:
    """UPDATE ... RETURNING that adds one amount to the last_seq of ``count`` devices."""
    return (
        "UPDATE devices SET last_seq = last_seq + ? "  # noqa: S608
        f"WHERE {_any_of(count)} RETURNING user_name, device_id, last_seq"
    )


def _reserve(d: Dialect, counts: dict[DeviceRef, int]) -> Tx[dict[DeviceRef, int]]:
    """Bump last_seq of every device; each one's first reserved sequence. One statement per
    distinct amount (usually one: a message per device). NotFound for an unknown device."""
    by_amount: dict[int, list[DeviceRef]] = {}
    for ref, amount in counts.items():
        by_amount.setdefault(amount, []).append(ref)
    first: dict[DeviceRef, int] = {}
    for amount, group in by_amount.items():
        for chunk in _chunks(group):
            rows = yield Query(d.sql(reserve_sql(len(chunk))), (amount, *_device_params(chunk)))
            for user, device_id, last in _rows(rows):
                first[DeviceRef(str(user), int(device_id))] = int(last) - amount + 1
    for ref in counts:
        if ref not in first:
            raise rules.device_not_found(ref)
    return first


def materialise(
    sends: Sequence[PendingSend], next_seq: dict[DeviceRef, int]
) -> tuple[list[list[MailboxEntry]], list[tuple[Any, ...]]]:
    """Give every item its sequence (``next_seq`` holds each device's first reserved one and
    is advanced) and build the entries and the mailbox rows, in send order."""
    results: list[list[MailboxEntry]] = []
    rows: list[tuple[Any, ...]] = []
    for send in sends:
        entries = []
        for item in send.items:
            recipient = item.recipient
            seq = next_seq[recipient]
            next_seq[recipient] = seq + 1
            conversation = item.conversation
            entries.append(
                MailboxEntry(
                    recipient, seq, send.message_id, send.sender, conversation,
                    item.ciphertext, send.sent_at_ms,
                )
            )  # fmt: skip
            rows.append(
                (
                    recipient.user, recipient.device_id, seq, send.message_id, send.sender.user,
                    send.sender.device_id, conversation.kind.value, conversation.name,
                    item.ciphertext, send.sent_at_ms,
                )
            )  # fmt: skip
        results.append(entries)
    return results, rows


def commit(
    d: Dialect, sends: Sequence[PendingSend], limits: MailboxLimits, dedup_since_ms: int
) -> Tx[list[Committed]]:
    """The group commit: every send of the batch in this one transaction (see domain.mailbox
    for what is stored)."""
    upper = incoming(sends)
    yield from lock(d, list(upper))
    keys = [key for send in sends if (key := send_key(send)) is not None]
    seen = (yield from _read_sent(d, keys, dedup_since_ms)) if keys else {}
    # Count the whole batch in at once (the usual outcome); put back below what is not stored.
    after = (yield from _add_to_totals(d, upper)) if upper else {}
    tracked = {device for device, (_, on) in after.items() if on}
    decided = None
    if not seen and fits_whole((total for total, _ in after.values()), limits):
        decided = whole(sends, upper)  # the usual case: everything, as counted in already
    entering: list[DeviceRef] = []
    shares: Shares = {}
    if decided is None:
        decided, entering, shares = yield from _decide(
            d, sends, limits, seen, upper, after, tracked
        )
    counts = rules.recipient_counts(decided.stored)
    next_seq = (yield from _reserve(d, counts)) if counts else {}
    entries, rows = materialise(decided.stored, next_seq)
    if rows:
        yield Many(d.sql(INSERT_MAILBOX), rows)
    by_sender = decided.shares_added(tracked | set(entering))
    yield from _write_shares(d, by_sender, tracked, entering, shares)
    if decided.records:
        rows = [(*key, message_id, at) for key, message_id, at in decided.records]
        yield Many(d.sql(RECORD_SENT), rows)
    return decided.outcomes(entries)


def _decide(
    d: Dialect,
    sends: Sequence[PendingSend],
    limits: MailboxLimits,
    seen: dict[SendKey, tuple[str, int]],
    upper: dict[DeviceRef, Usage],
    after: Totals,
    tracked: set[DeviceRef],
) -> Tx[tuple[Plan, list[DeviceRef], Shares]]:
    """Send by send, when a quota is in reach or a send is a retry: read (or count) the shares
    that matter, plan, and put back in the totals what is not stored. The devices that start
    being tracked, and the shares counted for them."""
    usage = {r: Usage(a.entries - upper[r].entries, a.bytes - upper[r].bytes)
             for r, (a, _) in after.items()}  # fmt: skip
    shares: Shares = {}
    entering: list[DeviceRef] = []
    if limits.limits_senders:
        needed = [r for r in sorted(after) if r in tracked or not limits.share_fits(after[r][0])]
        kept = [r for r in needed if r in tracked]
        entering = [r for r in needed if r not in tracked]
        if kept:
            senders = sorted({send.sender.user for send in sends})
            shares.update((yield from _read_shares(d, kept, senders)))
        if entering:
            shares.update((yield from _count_shares(d, entering)))
    decided = plan(sends, limits, usage, shares, seen, upper)
    stored = decided.device_totals()
    fixes = [
        (r.user, r.device_id, *usage[r].plus(*stored.get(r, ZERO)), r in tracked or r in entering)
        for r in sorted(after)
        if stored.get(r, ZERO) != upper[r] or r in entering
    ]
    if fixes:
        yield Many(d.sql(SET_TOTALS), fixes)
    return decided, entering, shares


def _write_shares(
    d: Dialect,
    by_sender: dict[DeviceRef, dict[str, Usage]],
    tracked: set[DeviceRef],
    entering: Sequence[DeviceRef],
    counted: Shares,
) -> Tx[None]:
    """Shares of the devices that start being tracked (counted before the batch, plus the
    batch), and the batch's additions to those already tracked."""
    starting = set(entering)
    if starting:
        fresh: Shares = {key: use for key, use in counted.items() if key[0] in starting}
        for ref in starting:
            for sender, use in by_sender.get(ref, {}).items():
                fresh[(ref, sender)] = fresh.get((ref, sender), ZERO).plus(*use)
        rows = [(r.user, r.device_id, s, u.entries, u.bytes) for (r, s), u in sorted(fresh.items())]
        if rows:
            yield Many(d.sql(SET_SHARES), rows)
    changes = [
        (ref.user, ref.device_id, sender, use.entries, use.bytes)
        for ref in sorted(by_sender)
        if ref in tracked
        for sender, use in sorted(by_sender[ref].items())
    ]
    if changes:
        yield Many(d.sql(ADD_SHARES), changes)


def remove(d: Dialect, acks: Sequence[tuple[DeviceRef, int]]) -> Tx[int]:
    """Delete each device's entries up to its sequence and take them off its usage; the number
    of entries deleted. A device whose mailbox is now empty stops being tracked."""
    marks = sorted(dict(acks).items())
    if not marks:
        return 0
    yield from lock(d, [device for device, _ in marks])
    tally: dict[DeviceRef, dict[str, list[int]]] = {}
    for device, seq in marks:
        # One statement per device: faster than one whose WHERE names them all (SQLite).
        rows = yield Query(d.sql(DELETE_RETURNING), (device.user, device.device_id, seq))
        by: dict[str, list[int]] = {}
        for sender, size in _rows(rows):
            use = by.get(sender)
            if use is None:
                by[sender] = [1, int(size)]
            else:
                use[0] += 1
                use[1] += int(size)
        if by:
            tally[device] = by
    if not tally:
        return 0
    removed = {dev: {s: Usage(*use) for s, use in by.items()} for dev, by in tally.items()}
    yield from _take_off(d, removed)
    return sum(use[0] for by in tally.values() for use in by.values())


def _take_off(d: Dialect, removed: dict[DeviceRef, dict[str, Usage]]) -> Tx[None]:
    """Subtract deleted entries from the devices' totals (and shares, while tracked); a device
    whose mailbox is now empty stops being tracked."""
    gone = {
        device: Usage(-sum(u.entries for u in by.values()), -sum(u.bytes for u in by.values()))
        for device, by in removed.items()
    }
    after = yield from _add_to_totals(d, gone)
    shares: list[tuple[Any, ...]] = []
    dropped: list[tuple[Any, ...]] = []
    for device, (left, tracked) in sorted(after.items()):
        if tracked and left.entries == 0:
            dropped.append((device.user, device.device_id))
        elif tracked:
            shares += [(device.user, device.device_id, s, -u.entries, -u.bytes)
                       for s, u in sorted(removed[device].items())]  # fmt: skip
    if shares:
        yield Many(d.sql(ADD_SHARES), shares)
        yield Many(d.sql(DROP_EMPTY_SHARES), sorted({row[:2] for row in shares}))
    if dropped:
        yield Many(d.sql(DROP_SHARES), dropped)
        yield Many(d.sql(UNTRACK), [(False, *device) for device in dropped])


def expire(d: Dialect, before_ms: int) -> Tx[int]:
    """Delete entries sent before ``before_ms``; the number deleted."""
    old = "FROM mailbox WHERE sent_at_ms < ?"
    devices = yield Query(d.sql(f"SELECT DISTINCT user_name, device_id {old}"), (before_ms,))
    if not _rows(devices):
        return 0
    yield from lock(d, [DeviceRef(user, device_id) for user, device_id in _rows(devices)])
    rows = yield Query(
        d.sql(
            "SELECT user_name, device_id, sender_user, count(*), "
            f"coalesce(sum(length(ciphertext)), 0) {old} {_GROUP_BY_SHARE}"
        ),
        (before_ms,),
    )
    removed: dict[DeviceRef, dict[str, Usage]] = {}
    for user, device_id, sender, entries, size in _rows(rows):
        removed.setdefault(DeviceRef(user, device_id), {})[sender] = Usage(int(entries), int(size))
    if not removed:
        return 0
    yield Many(d.sql("DELETE FROM mailbox WHERE sent_at_ms < ?"), [(before_ms,)])
    yield from _take_off(d, removed)
    return sum(u.entries for by in removed.values() for u in by.values())


def prune_sent(d: Dialect, before_ms: int, keep_per_device: int) -> Tx[int]:
    """Forget send records older than ``before_ms`` and all but each sending device's
    ``keep_per_device`` most recent; the number forgotten."""
    old = yield Query(
        d.sql("DELETE FROM sent_messages WHERE sent_at_ms < ? RETURNING 1"), (before_ms,)
    )
    extra = yield Query(
        d.sql(
            "DELETE FROM sent_messages WHERE (sender_user, sender_device, client_message_id) IN "
            "(SELECT sender_user, sender_device, client_message_id FROM (SELECT sender_user, "
            "sender_device, client_message_id, row_number() OVER (PARTITION BY sender_user, "
            "sender_device ORDER BY sent_at_ms DESC, client_message_id DESC) AS rank "
            "FROM sent_messages) AS ranked WHERE rank > ?) RETURNING 1"
        ),
        (keep_per_device,),
    )
    return len(_rows(old)) + len(_rows(extra))


def usage_of(d: Dialect, device: DeviceRef) -> Tx[Usage]:
    found = yield from read_totals(d, [device])
    return found.get(device, (ZERO, False))[0]
