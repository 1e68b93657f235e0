"""Trimming the stored-once room logs (issue 15), shared by every Store adapter.

A room message is stored once; each device's delivery is a position. A row may be deleted once
no device of a *current* member can still be delivered it. Device D (created at time C, whose
user joined when the log's head was J, acked up to A) is delivered the rows after
``max(A, J, the last row sent before C)`` except those D sent itself (stream.py never echoes a
device's own messages). So D may still need a row only if it is after ``max(A, J)``, was sent
at or after C, and was not sent by D: a superset of what it is delivered, so trimming by it is
safe. Devices of users who left, and removed devices, hold nothing back.

Only a *prefix* of each log is deleted: the rows up to the first row some device may still need
(the "bound"). A device's start, which room_starts computes from its position, its join and
the log (the last row sent before the device existed), therefore never comes to mean a
different set of rows: every row at or below it is either deleted or was never to be
delivered. Rows arrive after ``rooms.last_room_seq`` read before the bound, so a message
committed meanwhile is never in range; joins start at the head, acks only move forward and
removals only release rows, so a bound stays safe until it is used.

Work is bounded: at most ``batch`` rows per transaction and ``budget`` rows per call, rooms
visited in name order from where the previous call stopped (one large room cannot starve the
others).
"""

from __future__ import annotations

import heapq
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from securechat.domain.model import DeviceRef
from securechat.errors import InvalidArgument


@dataclass(frozen=True, slots=True)
class Reader:
    """A device of a current member, as the trim sees it."""

    device: DeviceRef
    floor: int  # max(acked position, the log's head when its user joined)
    created_at_ms: int


def check_trim(batch: int, budget: int) -> None:
    if batch < 1 or budget < 1:
        raise InvalidArgument(
            f"a room-log trim needs a batch and a budget of at least 1 row, got {batch} and "
            f"{budget}"
        )


SCAN_WINDOW = 1000  # positions of the log one query looks through for one reader

FirstNeeded = Callable[[Reader, int, int], Awaitable[int | None]]


async def trim_bound(
    readers: Iterable[Reader],
    head: int,
    first_needed: FirstNeeded,
    *,
    lowest: int = 1,
    window: int = SCAN_WINDOW,
) -> int:
    """The highest position up to which no reader needs a row of the log (``head``: none);
    ``lowest`` is the log's lowest row (the rows below it are gone already).

    ``first_needed(reader, after, upto)`` is the first row in ``(after, upto]`` sent at or
    after the reader's creation by another device, or None. The log is looked through a window
    at a time, always for the reader looked through least far, and only below the bound found
    so far: a caught-up room costs no query, a lagging reader one, and a long run of a
    sender's own messages is not read through again and again while another reader lower
    down holds the bound anyway."""
    bound = head
    queue = [(max(reader.floor, lowest - 1), reader.device, reader) for reader in readers]
    heapq.heapify(queue)
    while queue and queue[0][0] < bound:
        after, device, reader = heapq.heappop(queue)
        upto = min(bound, after + window)
        found = await first_needed(reader, after, upto)
        if found is not None:
            bound = found - 1  # below every bound before: found <= upto <= bound
        else:
            heapq.heappush(queue, (upto, device, reader))
    return bound


class RoomTrimmer:
    """The per-store cursor of the trim: where the last call stopped (rooms by name)."""

    def __init__(self) -> None:
        self.after = ""

    async def run(
        self,
        rooms_after: Callable[[str], Awaitable[list[str]]],
        bound_of: Callable[[str], Awaitable[int]],
        delete: Callable[[str, int, int], Awaitable[int]],
        batch: int,
        budget: int,
    ) -> int:
        """Trim the rooms after the cursor (``rooms_after(name)``: the next page of names of
        rooms with a log, in order), each up to its bound, ``delete(room, bound, limit)``
        removing at most ``limit`` rows per transaction; stop when ``budget`` rows are gone
        (the next call resumes at the room it stopped in) or every room was seen (the next
        call starts over). The number of rows deleted."""
        check_trim(batch, budget)
        deleted = 0
        while page := await rooms_after(self.after):
            for room in page:
                bound = await bound_of(room)
                while True:
                    step = min(batch, budget - deleted)
                    if step == 0:
                        return deleted
                    done = await delete(room, bound, step)
                    deleted += done
                    if done < step:
                        break
                self.after = room
        self.after = ""
        return deleted
