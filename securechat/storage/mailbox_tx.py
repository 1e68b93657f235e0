"""The mailbox write transactions: the group commit (sequences, quotas, send deduplication),
acknowledgements, expiry and pruning, as generators of SQL steps (see sql_steps.py) over the
usage kept in mailbox_usage.py. What a commit stores is decided by domain/mailbox.py."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
from securechat.storage import room_log_tx, rules
from securechat.storage.mailbox_usage import (
    GROUP_BY_SHARE,
    SET_TOTALS,
    Shares,
    Totals,
    add_to_totals,
    count_shares,
    read_shares,
    take_off,
    write_shares,
)
from securechat.storage.sql_steps import (
    Dialect,
    Many,
    Query,
    Tx,
    any_of,
    chunks,
    device_params,
    lock,
    rows_of,
)

_MAILBOX_COLUMNS = (
    "user_name", "device_id", "seq", "message_id", "sender_user", "sender_device",
    "conversation_kind", "conversation_name", "ciphertext", "sent_at_ms",
)  # fmt: skip
INSERT_MAILBOX = (
    f"INSERT INTO mailbox ({', '.join(_MAILBOX_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' for _ in _MAILBOX_COLUMNS)})"
)
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
# The same, but only the device's oldest N entries at most: a range up to the Nth oldest entry
# (found through the primary key's index), so as cheap as the plain delete for a small ack.
DELETE_OLDEST_RETURNING = (
    "DELETE FROM mailbox WHERE user_name = ? AND device_id = ? AND seq <= ? AND seq <= "
    "COALESCE((SELECT seq FROM mailbox WHERE user_name = ? AND device_id = ? "
    "ORDER BY seq LIMIT 1 OFFSET ?), ?) "
    "RETURNING sender_user, length(ciphertext)"
)


def _read_sent(
    d: Dialect, keys: Sequence[SendKey], since_ms: int
) -> Tx[dict[SendKey, tuple[str, int]]]:
    found: dict[SendKey, tuple[str, int]] = {}
    term = "(sender_user = ? AND sender_device = ? AND client_message_id = ?)"
    for chunk in chunks(keys):
        params: list[Any] = []
        for key in chunk:
            params += key
        rows = yield Query(
            d.sql(
                "SELECT sender_user, sender_device, client_message_id, message_id, sent_at_ms "  # noqa: S608
                f"FROM sent_messages WHERE {any_of(len(chunk), term)}"
            ),
            tuple(params),
        )
        for user, device_id, client_id, message_id, sent_at_ms in rows_of(rows):
            if int(sent_at_ms) >= since_ms:  # older records wait for pruning: they do not count
                found[(user, int(device_id), client_id)] = (message_id, int(sent_at_ms))
    return found


def reserve_sql(count: int) -> str:
    """UPDATE ... RETURNING that adds one amount to the last_seq of ``count`` devices."""
    return (
        "UPDATE devices SET last_seq = last_seq + ? "  # noqa: S608
        f"WHERE {any_of(count)} RETURNING user_name, device_id, last_seq"
    )


def _reserve(d: Dialect, counts: dict[DeviceRef, int]) -> Tx[dict[DeviceRef, int]]:
    """Bump last_seq of every device; each one's first reserved sequence. One statement per
    distinct amount (usually one: a message per device). NotFound for an unknown device."""
    by_amount: dict[int, list[DeviceRef]] = {}
    for ref, amount in counts.items():
        by_amount.setdefault(amount, []).append(ref)
    first: dict[DeviceRef, int] = {}
    for amount, group in by_amount.items():
        for chunk in chunks(group):
            rows = yield Query(d.sql(reserve_sql(len(chunk))), (amount, *device_params(chunk)))
            for user, device_id, last in rows_of(rows):
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
    after = (yield from add_to_totals(d, upper)) if upper else {}
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
    yield from write_shares(d, by_sender, tracked, entering, shares)
    if decided.records:
        rows = [(*key, message_id, at) for key, message_id, at in decided.records]
        yield Many(d.sql(RECORD_SENT), rows)
    posted = yield from room_log_tx.post(d, decided.stored)
    return decided.outcomes(entries, posted)


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
            shares.update((yield from read_shares(d, kept, senders)))
        if entering:
            shares.update((yield from count_shares(d, entering)))
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


Acks = list[tuple[DeviceRef, int]]


def remove(d: Dialect, acks: Sequence[tuple[DeviceRef, int]], limit: int) -> Tx[tuple[int, Acks]]:
    """Delete each device's entries up to its sequence and take them off its usage, at most
    ``limit`` entries in all (0: no limit; each device's oldest first, the devices in order).
    Returns the number deleted and the acks not done, whole or in part, for a later
    transaction. A device whose mailbox is now empty stops being tracked."""
    marks = sorted(dict(acks).items())
    if not marks:
        return 0, []
    yield from lock(d, [device for device, _ in marks])
    tally: dict[DeviceRef, dict[str, list[int]]] = {}
    rest: Acks = []
    deleted = 0
    for device, seq in marks:
        budget = limit - deleted
        if limit and budget <= 0:
            rest.append((device, seq))
            continue
        # One statement per device: faster than one whose WHERE names them all (SQLite).
        if limit:
            where = (device.user, device.device_id)
            oldest = (*where, seq, *where, budget - 1, seq)
            rows = yield Query(d.sql(DELETE_OLDEST_RETURNING), oldest)
        else:
            rows = yield Query(d.sql(DELETE_RETURNING), (device.user, device.device_id, seq))
        found = rows_of(rows)
        deleted += len(found)
        if limit and len(found) == budget:
            rest.append((device, seq))  # perhaps more up to seq: the next transaction's
        by: dict[str, list[int]] = {}
        for sender, size in found:
            use = by.get(sender)
            if use is None:
                by[sender] = [1, int(size)]
            else:
                use[0] += 1
                use[1] += int(size)
        if by:
            tally[device] = by
    if not tally:
        return 0, rest
    removed = {dev: {s: Usage(*use) for s, use in by.items()} for dev, by in tally.items()}
    yield from take_off(d, removed)
    return deleted, rest


def expire(d: Dialect, before_ms: int) -> Tx[int]:
    """Delete mailbox entries and room messages sent before ``before_ms``; the number deleted."""
    in_rooms = yield from room_log_tx.expire(d, before_ms)
    return in_rooms + (yield from _expire_mailboxes(d, before_ms))


def _expire_mailboxes(d: Dialect, before_ms: int) -> Tx[int]:
    old = "FROM mailbox WHERE sent_at_ms < ?"
    devices = yield Query(d.sql(f"SELECT DISTINCT user_name, device_id {old}"), (before_ms,))
    if not rows_of(devices):
        return 0
    yield from lock(d, [DeviceRef(user, device_id) for user, device_id in rows_of(devices)])
    rows = yield Query(
        d.sql(
            "SELECT user_name, device_id, sender_user, count(*), "
            f"coalesce(sum(length(ciphertext)), 0) {old} {GROUP_BY_SHARE}"
        ),
        (before_ms,),
    )
    removed: dict[DeviceRef, dict[str, Usage]] = {}
    for user, device_id, sender, entries, size in rows_of(rows):
        removed.setdefault(DeviceRef(user, device_id), {})[sender] = Usage(int(entries), int(size))
    if not removed:
        return 0
    yield Many(d.sql("DELETE FROM mailbox WHERE sent_at_ms < ?"), [(before_ms,)])
    yield from take_off(d, removed)
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
    return len(rows_of(old)) + len(rows_of(extra))
