"""Log flood control: lines of one kind beyond a rate are counted, then summed up in one line.

A client can make the server log as fast as it can send requests (failed logins, refused calls,
each with an access line). :class:`RepeatLimiter` is a filter on the log handler: every record has
a kind (logger, level and message template, plus method and status for access lines) and each
kind a token bucket (``rate`` lines per second, bursts of ``2 * rate``). A record without a token
is dropped and counted; the next record of that kind that passes, or any record once the kind has
been quiet for a second, first emits ``N similar lines suppressed`` with the kind. Kinds are
templates from the code, not request data, and at most ``MAX_KINDS`` are tracked (least recently
seen dropped first), so memory stays bounded whatever an attacker sends.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_KINDS = 1024
SWEEP_S = 1.0
SUMMARY_LOGGER = "securechat.log"

Kind = tuple[str, int, str, str, str]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float
    suppressed: int = 0
    first_suppressed: float = 0.0
    example: str = ""


def kind_of(record: logging.LogRecord) -> Kind:
    return (
        record.name,
        record.levelno,
        str(record.msg),
        str(getattr(record, "method", "")),
        str(getattr(record, "code", "")),
    )


class RepeatLimiter(logging.Filter):
    """Passes at most ``rate`` records per second of each kind; counts and reports the rest."""

    def __init__(
        self,
        rate: float,
        emit: Callable[[logging.LogRecord], object],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.rate = rate
        self.burst = max(1.0, 2 * rate)
        self.emit = emit
        self.clock = clock
        self._buckets: OrderedDict[Kind, _Bucket] = OrderedDict()
        self._swept = clock()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.rate <= 0 or getattr(record, "suppressed", None) is not None:
            return True
        now = self.clock()
        if now - self._swept >= SWEEP_S:
            self._swept = now
            self._sweep(now)
        kind = kind_of(record)
        bucket = self._buckets.get(kind)
        if bucket is None:
            bucket = self._buckets[kind] = _Bucket(self.burst, now)
            if len(self._buckets) > MAX_KINDS:
                self._drop_oldest()
        else:
            self._buckets.move_to_end(kind)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        if bucket.tokens < 1:
            if not bucket.suppressed:
                bucket.first_suppressed = now
                bucket.example = record.getMessage()
            bucket.suppressed += 1
            return False
        bucket.tokens -= 1
        if bucket.suppressed:
            self._report(kind, bucket, now)
        return True

    def flush(self) -> None:
        """Report every kind with suppressed lines now."""
        now = self.clock()
        for kind, bucket in list(self._buckets.items()):
            if bucket.suppressed:
                self._report(kind, bucket, now)

    def _sweep(self, now: float) -> None:
        """Report kinds that went quiet while suppressed (no later record would report them)."""
        for kind, bucket in list(self._buckets.items()):
            if bucket.suppressed and now - bucket.updated >= SWEEP_S:
                self._report(kind, bucket, now)

    def _drop_oldest(self) -> None:
        kind, bucket = self._buckets.popitem(last=False)
        if bucket.suppressed:
            self._report(kind, bucket, self.clock())

    def _report(self, kind: Kind, bucket: _Bucket, now: float) -> None:
        count, bucket.suppressed = bucket.suppressed, 0
        name, level, _, method, code = kind
        record = logging.LogRecord(
            SUMMARY_LOGGER, level, __file__, 0,
            "%d similar lines suppressed in %.0f s (%s, like: %s)",
            (count, max(1.0, now - bucket.first_suppressed), name, bucket.example[:200]),
            None,
        )  # fmt: skip
        record.suppressed = count
        if method:
            record.method = method
        if code:
            record.code = code
        self.emit(record)
