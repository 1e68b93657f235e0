"""Mailbox quotas and send deduplication: which sends of one group commit are stored, for which
recipient devices, and which are answered with the result of an earlier copy.

Pure rules over the usage a Store adapter read inside its transaction, so every adapter (memory,
SQLite, PostgreSQL) decides the same way:

- A recipient device takes an entry only while its undelivered entries stay within
  ``max_entries`` and ``max_bytes``, and the sending *user's* share of them within
  ``sender_max_entries`` and ``sender_max_bytes`` (one sender cannot fill a mailbox others need).
  A device over a quota is skipped and named in :attr:`Committed.full`.
- A send is refused whole (nothing stored, :attr:`Committed.refused`) when every device of the
  other users it addresses is full (or, for a send to the sender's own devices only, every one).
- A send whose ``(sender device, client_message_id)`` was stored before (within the window the
  caller chose) is not stored again: its result is the first one (:attr:`Committed.duplicate`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from securechat.domain.model import (
    DeviceRef,
    MailboxEntry,
    OutgoingCiphertext,
    PendingSend,
    RoomEntry,
)


class Usage(NamedTuple):
    """Undelivered entries and their ciphertext bytes."""

    entries: int = 0
    bytes: int = 0

    def plus(self, entries: int, size: int) -> Usage:
        return Usage(self.entries + entries, self.bytes + size)


ZERO = Usage()

# The most mailbox entries one acknowledgement transaction deletes. An ack deletes everything up
# to its sequence, which can be a whole mailbox (20,000 entries at the default quota); on
# SQLite's one writer such a delete held every send's commit behind it. A bigger ack is written
# in several transactions (docs/performance.md, issue 18, stop 24).
ACK_ROWS_PER_TRANSACTION = 1000


@dataclass(frozen=True, slots=True)
class MailboxLimits:
    """Quotas on undelivered entries (0: no limit)."""

    max_entries: int = 0  # per recipient device
    max_bytes: int = 0
    sender_max_entries: int = 0  # of one sending user, per recipient device
    sender_max_bytes: int = 0

    def device_fits(self, usage: Usage) -> bool:
        return _within(usage, self.max_entries, self.max_bytes)

    def share_fits(self, usage: Usage) -> bool:
        return _within(usage, self.sender_max_entries, self.sender_max_bytes)

    @property
    def limits_senders(self) -> bool:
        return bool(self.sender_max_entries or self.sender_max_bytes)

    def untracked_below(self, usage: Usage) -> bool:
        """Whether per-sender shares may be forgotten: the device's whole mailbox is under half
        of the per-sender quota (so no share can reach it before shares are counted again)."""
        return _within(usage, self.sender_max_entries // 2, self.sender_max_bytes // 2)


NO_LIMITS = MailboxLimits()


def _within(usage: Usage, entries: int, size: int) -> bool:
    return (not entries or usage.entries <= entries) and (not size or usage.bytes <= size)


class Committed(NamedTuple):
    """The outcome of one send of a group commit."""

    entries: list[MailboxEntry]  # stored now, in item order ([] for a duplicate or a refusal)
    message_id: str  # the send's id (the first copy's id for a duplicate)
    sent_at_ms: int
    duplicate: bool = False
    full: tuple[DeviceRef, ...] = ()  # recipients skipped: over a quota
    refused: bool = False  # nothing stored: every recipient that mattered was full
    room_entry: RoomEntry | None = None  # the room message stored once (a sender-key send)


SendKey = tuple[str, int, str]
"""(sender user, sender device id, client_message_id): what a retried send is known by."""


def send_key(send: PendingSend) -> SendKey | None:
    if not send.client_message_id:
        return None
    return (send.sender.user, send.sender.device_id, send.client_message_id)


@dataclass
class Plan:
    """What a group commit stores: ``stored`` (the sends with the items that fit, in order) and
    per send either a decided outcome (duplicate or refused) or None (stored, filled in once
    sequences are reserved)."""

    decided: list[Committed | None] = field(default_factory=list)
    # What the stored sends add per device, when known already (everything was stored).
    totals: dict[DeviceRef, Usage] | None = None
    full: list[tuple[DeviceRef, ...]] = field(default_factory=list)
    stored: list[PendingSend] = field(default_factory=list)
    # New dedup records: (key, message_id, sent_at_ms).
    records: list[tuple[SendKey, str, int]] = field(default_factory=list)

    def outcomes(
        self,
        stored_entries: Sequence[list[MailboxEntry]],
        room_entries: Sequence[RoomEntry | None] = (),
    ) -> list[Committed]:
        """Every send's outcome, given the entries of ``stored`` (same order) and the room
        message each stored (None or missing: none)."""
        entries = iter(stored_entries)
        posted = iter(room_entries)
        stored = iter(self.stored)
        result: list[Committed] = []
        for decided, full in zip(self.decided, self.full, strict=True):
            if decided is not None:
                result.append(decided)
                continue
            send = next(stored)
            room_entry = next(posted, None)
            result.append(
                Committed(
                    next(entries), send.message_id, send.sent_at_ms, full=full,
                    room_entry=room_entry,
                )
            )  # fmt: skip
        return result

    def device_totals(self) -> dict[DeviceRef, Usage]:
        """What the stored sends add to each recipient device."""
        return incoming(self.stored) if self.totals is None else self.totals

    def shares_added(self, devices: set[DeviceRef]) -> dict[DeviceRef, dict[str, Usage]]:
        """What the stored sends add to each sending user's share of these devices."""
        return _by_sender(self.stored, devices) if devices else {}


def incoming(sends: Sequence[PendingSend]) -> dict[DeviceRef, Usage]:
    """Everything the batch would add per recipient if all of it were stored (an upper bound)."""
    return {device: Usage(*use) for device, use in _tally(sends).items()}


def _tally(sends: Iterable[PendingSend]) -> dict[DeviceRef, list[int]]:
    found: dict[DeviceRef, list[int]] = {}
    for send in sends:
        for item in send.items:
            use = found.get(item.recipient)
            if use is None:
                found[item.recipient] = [1, len(item.ciphertext)]
            else:
                use[0] += 1
                use[1] += len(item.ciphertext)
    return found


def _by_sender(
    sends: Iterable[PendingSend], devices: set[DeviceRef]
) -> dict[DeviceRef, dict[str, Usage]]:
    found: dict[DeviceRef, dict[str, list[int]]] = {}
    for send in sends:
        user = send.sender.user
        for item in send.items:
            if item.recipient not in devices:
                continue
            by = found.setdefault(item.recipient, {})
            use = by.get(user)
            if use is None:
                by[user] = [1, len(item.ciphertext)]
            else:
                use[0] += 1
                use[1] += len(item.ciphertext)
    return {d: {u: Usage(*use) for u, use in by.items()} for d, by in found.items()}


def fits_whole(totals: Iterable[Usage], limits: MailboxLimits) -> bool:
    """Whether these device totals (with a whole batch counted in) are within every quota and
    within the per-sender quota as well (so no sender's share can pass it): the usual case,
    where nothing needs checking item by item."""
    entries = min((c for c in (limits.max_entries, limits.sender_max_entries) if c), default=0)
    size = min((c for c in (limits.max_bytes, limits.sender_max_bytes) if c), default=0)
    for total in totals:
        if (entries and total.entries > entries) or (size and total.bytes > size):
            return False
    return True


def whole(sends: Sequence[PendingSend], upper: dict[DeviceRef, Usage]) -> Plan | None:
    """Every send stored whole, or None when one of them repeats another's client message id
    (the plan must then decide send by send)."""
    keys = [key for send in sends if (key := send_key(send)) is not None]
    if len(set(keys)) != len(keys):
        return None
    result = Plan(
        decided=[None] * len(sends), full=[()] * len(sends), stored=list(sends), totals=upper
    )
    result.records = [(key, send.message_id, send.sent_at_ms) for send, key in
                      ((send, send_key(send)) for send in sends) if key is not None]  # fmt: skip
    return result


def plan(
    sends: Sequence[PendingSend],
    limits: MailboxLimits,
    usage: Mapping[DeviceRef, Usage],
    shares: Mapping[tuple[DeviceRef, str], Usage],
    seen: Mapping[SendKey, tuple[str, int]],
    upper: dict[DeviceRef, Usage] | None = None,
) -> Plan:
    """Decide a group commit.

    ``usage`` is each recipient device's undelivered total before the batch (missing: none);
    ``shares`` each (device, sending user)'s part of it, which must be complete for every device
    whose total may pass the per-sender quota in this batch; ``seen`` the dedup records found
    for the batch's keys: (message_id, sent_at_ms); ``upper`` the batch's ``incoming`` when the
    caller has it already."""
    known = dict(seen)
    if upper is None:
        upper = incoming(sends)
    if not known:
        after = (usage.get(d, ZERO).plus(*use) for d, use in upper.items())
        if fits_whole(after, limits) and (everything := whole(sends, upper)) is not None:
            return everything
    totals = dict(usage)
    parts = dict(shares)
    result = Plan()
    for send in sends:
        key = send_key(send)
        if key is not None and key in known:
            message_id, sent_at_ms = known[key]
            result.decided.append(Committed([], message_id, sent_at_ms, duplicate=True))
            result.full.append(())
            continue
        kept, full = _admit(send, limits, totals, parts)
        if _refused(send, kept):
            result.decided.append(Committed([], send.message_id, send.sent_at_ms, full=full,
                                            refused=True))  # fmt: skip
            result.full.append(full)
            continue
        for item in kept:
            size = len(item.ciphertext)
            device = item.recipient
            totals[device] = totals.get(device, ZERO).plus(1, size)
            share = (device, send.sender.user)
            parts[share] = parts.get(share, ZERO).plus(1, size)
        result.decided.append(None)
        result.full.append(full)
        result.stored.append(send if not full else replace(send, items=tuple(kept)))
        if key is not None:
            known[key] = (send.message_id, send.sent_at_ms)
            result.records.append((key, send.message_id, send.sent_at_ms))
    return result


def _admit(
    send: PendingSend,
    limits: MailboxLimits,
    totals: Mapping[DeviceRef, Usage],
    parts: Mapping[tuple[DeviceRef, str], Usage],
) -> tuple[list[OutgoingCiphertext], tuple[DeviceRef, ...]]:
    """The items whose recipients can take them, and the recipients that cannot."""
    kept: list[OutgoingCiphertext] = []
    full: list[DeviceRef] = []
    pending: dict[DeviceRef, Usage] = {}  # a send may (in tests) address one device twice
    for item in send.items:
        device = item.recipient
        size = len(item.ciphertext)
        mine = pending.get(device, ZERO).plus(1, size)
        after = totals.get(device, ZERO).plus(mine.entries, mine.bytes)
        fits = limits.device_fits(after)
        if fits and limits.limits_senders and not limits.share_fits(after):
            # The whole mailbox is over the per-sender quota: look at this sender's share.
            share = parts.get((device, send.sender.user), ZERO).plus(mine.entries, mine.bytes)
            fits = limits.share_fits(share)
        if fits:
            kept.append(item)
            pending[device] = mine
        elif device not in full:
            full.append(device)
    return kept, tuple(full)


def _refused(send: PendingSend, kept: Sequence[OutgoingCiphertext]) -> bool:
    """Nothing is stored when no device of another user (for a send to one's own devices only:
    no device at all) can take the message."""
    if not send.items or send.room_post is not None:
        return False  # a room message is stored once, whoever's mailbox is full
    others = [i for i in send.items if i.recipient.user != send.sender.user]
    if others:
        return not any(i.recipient.user != send.sender.user for i in kept)
    return not kept
