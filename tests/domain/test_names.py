"""Username, room-name and password rules, without a server."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from securechat.domain import names
from securechat.errors import InvalidArgument


@pytest.mark.parametrize("name", ["abc", "alice", "a" * 32, "b0b", "x_y-z.w", "carol.99"])
def test_good_names(name: str) -> None:
    assert names.check_new_username(name) == name


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("", "empty"),
        ("ab", "too short"),
        ("a" * 33, "too long"),
        ("Alice", "not allowed"),
        ("1abc", "start with a letter"),
        ("_abc", "start with a letter"),
        ("al ice", "not allowed"),
        ("al\x00ice", "not allowed"),
        ("al\u200bice", "not allowed"),  # zero-width space
        ("аlice", "not allowed"),  # Cyrillic a: no look-alikes
        ("bob'--", "not allowed"),
        ("x;drop", "not allowed"),
    ],
)
def test_bad_names_say_which_rule(name: str, words: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        names.check_new_username(name)
    assert words in info.value.message


@pytest.mark.parametrize("name", sorted(n for n in names.RESERVED_NAMES if len(n) >= 3))
def test_reserved_names_are_refused_for_registration(name: str) -> None:
    with pytest.raises(InvalidArgument, match="reserved"):
        names.check_new_username(name)


def test_messages_do_not_echo_control_characters() -> None:
    with pytest.raises(InvalidArgument) as info:
        names.check_name("ab\x1b[31mc")
    assert "\x1b" not in info.value.message


@given(st.text(max_size=40))
def test_accepted_names_always_match_the_rule(name: str) -> None:
    try:
        names.check_name(name)
    except InvalidArgument:
        return
    assert 3 <= len(name) <= 32 and name[0].isascii() and name[0].islower()
    assert all(c.isascii() and (c.islower() or c.isdigit() or c in "_-.") for c in name)


@pytest.mark.parametrize("password", ["12345678", "a" * 72, "é" * 36, "€" * 24])
def test_good_passwords_become_utf8_bytes(password: str) -> None:
    assert names.check_password(password) == password.encode("utf-8")


@pytest.mark.parametrize(
    ("password", "words"),
    [
        ("", "too short"),
        ("1234567", "too short"),
        ("a" * 73, "73 bytes"),
        ("é" * 37, "74 bytes"),
        ("€" * 25, "75 bytes"),
        ("abc\x00defgh", "NUL"),
    ],
)
def test_bad_passwords(password: str, words: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        names.check_password(password)
    assert words in info.value.message
    if len(password) > 8:
        assert "72 bytes" in info.value.message or "NUL" in info.value.message
