"""Mailbox usage kept without a COUNT per send: each device's undelivered entries and bytes
(``mailbox_totals``), changed by the same transactions that insert and delete mailbox rows, and
each sending user's share of a device's mailbox (``mailbox_senders``).

A share only matters once the device holds more than the per-sender quota, so shares are
counted from the mailbox the first time a batch could pass it (the device becomes *tracked*),
kept up to date from then on, and dropped when the device's mailbox is empty again. An online
device, which acknowledges what it gets, costs one totals row per commit and per ack.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from securechat.domain.mailbox import ZERO, Usage
from securechat.domain.model import DeviceRef
from securechat.storage.sql_steps import Dialect, Many, Query, Tx, chunks, per_device, rows_of

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
DROP_SHARES = "DELETE FROM mailbox_senders WHERE user_name = ? AND device_id = ?"
DROP_EMPTY_SHARES = (
    "DELETE FROM mailbox_senders WHERE user_name = ? AND device_id = ? AND entries <= 0"
)
Totals = dict[DeviceRef, tuple[Usage, bool]]
Shares = dict[tuple[DeviceRef, str], Usage]
GROUP_BY_SHARE = "GROUP BY user_name, device_id, sender_user"


def read_totals(d: Dialect, devices: Sequence[DeviceRef]) -> Tx[Totals]:
    """Each device's usage and whether its shares are kept (absent: never had mail)."""
    select = "SELECT user_name, device_id, entries, bytes, tracked FROM mailbox_totals"
    rows = yield from per_device(d, devices, select)
    return {DeviceRef(u, i): (Usage(int(n), int(b)), bool(on)) for u, i, n, b, on in rows}


def add_to_totals(d: Dialect, added: dict[DeviceRef, Usage]) -> Tx[Totals]:
    """Add to each device's totals (negative: take off, never below 0) in one statement per
    chunk; each device's totals after it, and whether its shares are kept."""
    found: Totals = {}
    greatest = d.greatest
    devices = sorted(added)
    for chunk in chunks(devices):
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
        for user, device_id, entries, size, on in rows_of(rows):
            found[DeviceRef(user, device_id)] = (Usage(int(entries), int(size)), bool(on))
    return found


def _shares(rows: list[tuple[Any, ...]]) -> Shares:
    return {(DeviceRef(u, i), s): Usage(int(n), int(b)) for u, i, s, n, b in rows}


def count_shares(d: Dialect, devices: Sequence[DeviceRef]) -> Tx[Shares]:
    """Each sending user's share of these devices' mailboxes, counted from the mailbox."""
    select = (
        "SELECT user_name, device_id, sender_user, count(*), "
        "coalesce(sum(length(ciphertext)), 0) FROM mailbox"
    )
    return _shares((yield from per_device(d, devices, select, tail=GROUP_BY_SHARE)))


def read_shares(d: Dialect, devices: Sequence[DeviceRef], senders: Sequence[str]) -> Tx[Shares]:
    """The kept shares of these senders in these (tracked) devices' mailboxes."""
    select = "SELECT user_name, device_id, sender_user, entries, bytes FROM mailbox_senders"
    where = f"AND sender_user IN ({', '.join('?' for _ in senders)})"
    return _shares((yield from per_device(d, devices, select, where, extra=tuple(senders))))


def write_shares(
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


def take_off(d: Dialect, removed: dict[DeviceRef, dict[str, Usage]]) -> Tx[None]:
    """Subtract deleted entries from the devices' totals (and shares, while tracked); a device
    whose mailbox is now empty stops being tracked."""
    gone = {
        device: Usage(-sum(u.entries for u in by.values()), -sum(u.bytes for u in by.values()))
        for device, by in removed.items()
    }
    after = yield from add_to_totals(d, gone)
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


def usage_of(d: Dialect, device: DeviceRef) -> Tx[Usage]:
    found = yield from read_totals(d, [device])
    return found.get(device, (ZERO, False))[0]
