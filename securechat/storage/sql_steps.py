"""Database transactions written once as generators of SQL steps, for the SQLite writer thread
and the async SQL adapters alike.

A transaction yields :class:`Query` steps (the driver sends back the rows) and :class:`Many`
steps (one ``executemany``); its return value is the result. The SQLite writer runs one on its
own connection in a single thread hop (sqlite_writer.py), the async adapters statement by
statement (sql_mailbox.py). The statements are plain SQL with ``?`` placeholders, rewritten to
``$n`` for asyncpg: they are the hottest of the server, and SQLAlchemy's expression building cost
more CPU than they do. Device lookups are ``(a = ? AND b = ?) OR ...``: SQLite searches its index
for each term, where a row-value ``IN`` list made it scan the table.

Row locks (PostgreSQL): every transaction that changes a device's mailbox or usage first locks
the device rows in (user, device_id) order (:func:`lock`), so concurrent nodes neither deadlock
nor interleave.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from securechat.domain.model import DeviceRef

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
DEVICE_TERM = "(user_name = ? AND device_id = ?)"


@functools.lru_cache(maxsize=256)
def any_of(count: int, term: str = DEVICE_TERM) -> str:
    """``term OR term ...``: unlike a row-value IN list, SQLite searches its index for each
    term (``MULTI-INDEX OR``) instead of scanning the table."""
    return " OR ".join([term] * count)


def device_params(devices: Sequence[DeviceRef]) -> list[Any]:
    params: list[Any] = []
    for device in devices:
        params += [device.user, device.device_id]
    return params


def chunks(items: Sequence[T]) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def rows_of(result: list[tuple[Any, ...]] | None) -> list[tuple[Any, ...]]:
    assert result is not None, "a Query step gets rows back"
    return result


def per_device(
    d: Dialect, devices: Sequence[DeviceRef], select: str, where: str = "", tail: str = "",
    extra: tuple[Any, ...] = (),
) -> Tx[list[tuple[Any, ...]]]:  # fmt: skip
    """``select ... WHERE (one of the devices) where tail``, chunked: every row."""
    found: list[tuple[Any, ...]] = []
    for chunk in chunks(devices):
        rows = yield Query(
            d.sql(f"{select} WHERE ({any_of(len(chunk))}) {where} {tail}"),
            (*device_params(chunk), *extra),
        )
        found += rows_of(rows)
    return found


def lock(d: Dialect, devices: Sequence[DeviceRef]) -> Tx[None]:
    """Lock the device rows in sorted order (PostgreSQL): concurrent commits queue up."""
    if d.lock_rows:
        select = "SELECT device_id FROM devices"
        order = "ORDER BY user_name, device_id FOR UPDATE"
        yield from per_device(d, sorted(set(devices)), select, tail=order)
