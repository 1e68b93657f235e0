"""Numeric request fields, checked in one place before any service sees them.

Protobuf's unsigned fields hold more than the server stores: a mailbox sequence is a signed
64-bit integer in SQLite and PostgreSQL, a device id a signed 32-bit one. A value past those is
refused here with INVALID_ARGUMENT naming the field, instead of reaching a driver (an overflow
became INTERNAL, with a traceback in the log, every time). Every uint64/uint32 the server reads
from a request goes through one of these.
"""

from __future__ import annotations

from securechat.errors import InvalidArgument

MAX_SEQ = 2**63 - 1
MAX_DEVICE_ID = 2**31 - 1


def _at_most(value: int, most: int, field: str) -> int:
    if not 0 <= value <= most:
        raise InvalidArgument(f"{field} {value} is out of range: it must be between 0 and {most}")
    return value


def seq(value: int, field: str) -> int:
    """A mailbox sequence (``after_seq``, ``resume_after_seq``, an ack's ``seq``)."""
    return _at_most(value, MAX_SEQ, field)


def device_id(value: int, field: str) -> int:
    """A device id (0 where the field allows "none" or "this session's device")."""
    return _at_most(value, MAX_DEVICE_ID, field)


def device_ids(values: list[int] | tuple[int, ...], field: str) -> list[int]:
    return [device_id(value, field) for value in values]
