"""Peer text is neutralised before it reaches the terminal."""

from __future__ import annotations

import pytest

from securechat.client.display import describe, sanitize
from securechat.client.events import MessageEvent, Target


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[31mred\x1b[0m", "red"),  # colour (CSI)
        ("\x1b[2J\x1b[Hwiped", "wiped"),  # clear screen, cursor home
        ("\x1b]0;pwned title\x07hi", "hi"),  # OSC window title, BEL-terminated
        ("\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\", "link"),  # OSC 8 hyperlink, ST
        ("\x1bPq#0;2;0;0;0\x1b\\after", "after"),  # DCS (sixel)
        ("\x9b31mC1 csi", "C1 csi"),  # 8-bit CSI
        ("bell\x07", "bell\\x07"),
        ("back\x08\x08space", "back\\x08\\x08space"),
        ("cr\rover", "cr\\x0dover"),
        ("two\nlines", "two ⏎ lines"),
        ("\u202eevil", "\\u202eevil"),  # right-to-left override
        ("héllo wörld 👋 中文", "héllo wörld 👋 中文"),
        ("👩\u200d💻", "👩\u200d💻"),  # emoji joiner survives
    ],
)
def test_sanitize_neutralises_control_sequences(raw: str, shown: str) -> None:
    assert sanitize(raw) == shown


def test_sanitized_text_contains_no_control_characters() -> None:
    nasty = "".join(chr(c) for c in range(0x00, 0xA0)) + "\x1b[1;1H\x1b]52;c;Zm9v\x07"
    shown = sanitize(nasty)
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in shown)


def test_long_text_is_cut() -> None:
    assert sanitize("x" * 10, limit=4) == "xxxx…"


def test_message_line_sanitises_sender_and_text() -> None:
    event = MessageEvent("id", "bob", 1, Target.room("lobby"), "hi\x1b[2J\nalice: fake", 0)
    line = describe(event, "alice")
    assert "\x1b" not in line and "\n" not in line
    assert line.endswith("#lobby bob: hi ⏎ alice: fake")
