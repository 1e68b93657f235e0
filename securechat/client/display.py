"""Safe, plain-text rendering of what other users send and of client events.

Peer text can never drive the terminal: ANSI/VT escape sequences (CSI, OSC, DCS, single-char
escapes, their 8-bit C1 forms) are removed, every other control character and the Unicode
direction overrides are shown as visible ``\\xNN``/``\\u....`` escapes, and a newline becomes a
visible ``⏎`` so one message can never pose as several lines from someone else.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata

from securechat.client.events import (
    ConnectionEvent,
    Event,
    IdentityEvent,
    MembershipEvent,
    MessageEvent,
    NoticeEvent,
    PresenceEvent,
    Target,
    UndecryptableEvent,
)
from securechat.client.key_change import blocked_hint

MAX_TEXT = 4000

# ESC-introduced sequences: CSI (ESC [ ... final), OSC/DCS/SOS/PM/APC strings (terminated by
# BEL or ST), and two-character escapes. The 8-bit forms start with U+009B / U+009D etc.
_ANSI = re.compile(
    r"""
    (?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?            # CSI ... final byte
  | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])      # OSC, DCS, SOS, PM, APC
    .*?(?:\x07|\x1b\\|\x9c|$)                    # ... up to BEL or ST (or the end)
  | \x1b[ -/]*[0-~]?                              # other escapes (ESC c, ESC ( B, ...)
    """,
    re.VERBOSE | re.DOTALL,
)
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F)}
_JOINERS = {"\u200c", "\u200d"}  # zero-width (non-)joiners: part of emoji and scripts


def _visible(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def sanitize(text: str, *, limit: int | None = MAX_TEXT) -> str:
    """Neutralise ``text`` from another user (or the server) for display on one terminal line.

    Longer than ``limit`` (None: no limit) it is cut with a visible "…"."""
    text = _ANSI.sub("", text)
    out: list[str] = []
    for ch in text:
        if ch == "\n":
            out.append(" ⏎ ")
        elif ch == "\t":
            out.append("    ")
        elif ch in _BIDI or (unicodedata.category(ch) in ("Cc", "Cf", "Cs") and ch not in _JOINERS):
            out.append(_visible(ch))
        else:
            out.append(ch)
    result = "".join(out)
    return result if limit is None or len(result) <= limit else result[:limit] + "…"


def sanitize_lines(text: str) -> list[str]:
    """``text`` neutralised line by line, uncut (for a UI that shows a message as a block)."""
    return [sanitize(line, limit=None) for line in text.split("\n")]


def name(text: str) -> str:
    """A user or room name from the server, safe to print (they are checked, but trust none)."""
    return sanitize(text, limit=64)


def clock(ms: int) -> str:
    """Local wall-clock time of an epoch-ms timestamp, HH:MM."""
    return time.strftime("%H:%M", time.localtime(ms / 1000))


def stamp(ms: int) -> str:
    """An ISO 8601 UTC timestamp of an epoch-ms time."""
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def describe(event: Event, me: str = "", ui: str = "cli") -> str:
    """One line of plain, sanitised text for any event (``ui``: "cli" or "chat", for hints)."""
    if isinstance(event, MessageEvent):
        where = "" if event.target.kind == "user" else f"{_where(event.target)} "
        marker = ""
        if event.target.kind == "user":
            own = event.sender == me
            marker = f"(to {name(event.target.name)}) " if own else "(private) "
        if event.certified is False:
            marker += f"(UNVERIFIED DEVICE {event.device_id}) "
        sender = sanitize(event.sender, limit=40)
        return f"[{clock(event.sent_at_ms)}] {where}{marker}{sender}: {sanitize(event.text)}"
    if isinstance(event, UndecryptableEvent):
        return (
            f"[{clock(event.sent_at_ms)}] ! a message from {name(event.sender)} in "
            f"{_where(event.target)} could not be decrypted"
        )
    if isinstance(event, IdentityEvent):
        return "!! " + blocked_hint(name(event.user), event.verified, ui)
    if isinstance(event, PresenceEvent):
        return f"* {name(event.user)} is {'online' if event.online else 'offline'}"
    if isinstance(event, MembershipEvent):
        return f"* {membership(event)}"
    if isinstance(event, NoticeEvent):
        return f"{'! ' if event.warning else '- '}{sanitize(event.text)}"
    if isinstance(event, ConnectionEvent):
        detail = f": {sanitize(event.detail)}" if event.detail else ""
        retry = f" (retrying in {event.retry_in_s:.1f}s)" if event.retry_in_s else ""
        return f"- {event.state}{detail}{retry}"
    raise TypeError(event)


VERBS = {
    "joined": "joined",
    "left": "left",
    "device_added": "added a device",
    "identity_changed": "has a new identity key",
}


def membership(event: MembershipEvent) -> str:
    """``carol joined #dev``; a change that concerns no room names none (not ``in #``)."""
    verb = VERBS.get(event.kind, sanitize(event.kind, limit=40))
    if not event.room:
        return f"{name(event.user)} {verb}"
    joiner = "" if event.kind in ("joined", "left") else " in"
    return f"{name(event.user)} {verb}{joiner} #{name(event.room)}"


def _where(target: Target) -> str:
    return f"@{name(target.name)}" if target.kind == "user" else f"#{name(target.name)}"


def message_json(event: MessageEvent) -> str:
    """The `inbox --json` line of one message."""
    return json.dumps(
        {
            "id": event.message_id,
            "sender": event.sender,
            "conversation": str(event.target),
            "text": event.text,
            "sent_at": stamp(event.sent_at_ms),
            "sent_at_ms": event.sent_at_ms,
            "device": event.device_id,
            "device_certified": event.certified,
        },
        ensure_ascii=False,
    )


def undecryptable_json(event: UndecryptableEvent) -> str:
    return json.dumps(
        {
            "id": event.message_id,
            "sender": event.sender,
            "conversation": str(event.target),
            "error": "message could not be decrypted",
            "sent_at": stamp(event.sent_at_ms),
            "sent_at_ms": event.sent_at_ms,
        }
    )
