"""Structured logging: plain or JSON lines, a request id on every record, secrets redacted.

Access lines carry their facts as fields (``method``, ``code``, ``duration_ms``, ``user``,
``peer``, passed with ``extra=``): JSON lines have them as keys, plain lines end with
``key=value`` pairs. Floods of one kind of line are summed up (:mod:`securechat.ops.lograte`).
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
import time
from pathlib import Path

from securechat.ops.lograte import RepeatLimiter

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_opened: list[logging.Handler] = []

# Structured fields a record may carry (``log.info(..., extra={...})``), in output order.
FIELDS = ("method", "code", "duration_ms", "user", "peer", "suppressed")

# Anything that looks like a secret is masked even if a careless log call passes one.
_REDACT = [
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1[REDACTED]"),
    (
        re.compile(r"(?i)\b(password|passwd|token|secret|authorization)(\s*[=:]\s*)\S+"),
        r"\1\2[REDACTED]",
    ),
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
        "[REDACTED PRIVATE KEY]",
    ),
]


def redact(text: str) -> str:
    for pattern, repl in _REDACT:
        text = pattern.sub(repl, text)
    return text


class ContextFilter(logging.Filter):
    """Adds the request id and redacts the rendered message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        message = redact(record.getMessage())
        record.msg, record.args = message, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "msg": record.getMessage(),
        }
        entry.update(fields(record))
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def fields(record: logging.LogRecord) -> dict[str, object]:
    """The structured fields a record carries (user and peer redacted like the message)."""
    found: dict[str, object] = {}
    for name in FIELDS:
        value = getattr(record, name, None)
        if value is not None:
            found[name] = redact(value) if isinstance(value, str) else value
    return found


class PlainFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        pairs = "".join(f" {k}={v}" for k, v in fields(record).items() if k != "suppressed")
        return super().formatMessage(record) + pairs

    def formatException(self, ei: object) -> str:
        return redact(super().formatException(ei))  # type: ignore[arg-type]


def flush_suppressed() -> None:
    """Write the pending ``N similar lines suppressed`` summaries now (at shutdown)."""
    for handler in logging.getLogger().handlers:
        for candidate in handler.filters:
            if isinstance(candidate, RepeatLimiter):
                candidate.flush()


def configure_logging(
    fmt: str = "plain",
    level: str = "INFO",
    stream: object = None,
    *,
    file: str | Path | None = None,
    repeat_limit_per_s: float = 0.0,
) -> None:
    """Log to ``file`` (appended, 0600) or ``stream`` (default stderr), one line per record."""
    if file:
        path = Path(file)
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        handler: logging.Handler = logging.StreamHandler(
            os.fdopen(descriptor, "a", encoding="utf-8", buffering=1)
        )
    else:
        handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    if repeat_limit_per_s > 0:  # first: it keys on the message template, before redaction
        handler.addFilter(RepeatLimiter(repeat_limit_per_s, handler.handle))
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else PlainFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        if old in _opened:  # a log file this module opened (never a stream it was given)
            _opened.remove(old)
            old.close()
            old.stream.close()  # type: ignore[attr-defined]
    if file:
        _opened.append(handler)
    root.addHandler(handler)
    root.setLevel(level)
    # grpc and asyncio chatter is not ours to show at INFO.
    logging.getLogger("asyncio").setLevel(logging.WARNING)
    # Driver chatter (one line per SQLite call, grpc's event-loop set-up) even at DEBUG.
    for noisy in ("aiosqlite", "grpc._cython", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.INFO)
