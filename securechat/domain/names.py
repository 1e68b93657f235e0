"""Rules for usernames, room names and passwords, checked before anything is stored."""

from __future__ import annotations

import re

from securechat.errors import InvalidArgument

NAME_RE = re.compile(r"[a-z][a-z0-9_.\-]{2,31}")
RESERVED_NAMES = frozenset(
    {
        "admin",
        "administrator",
        "root",
        "server",
        "system",
        "securechat",
        "support",
        "moderator",
        "operator",
        "nobody",
        "everyone",
        "all",
        "here",
        "me",
        "you",
    }
)
PASSWORD_MIN_CHARS = 8
BCRYPT_MAX_BYTES = 72


def _describe(value: str) -> str:
    printable = "".join(ch if ch.isprintable() else "?" for ch in value[:40])
    return repr(printable)


def check_name(value: str, *, what: str = "username") -> str:
    """Return the name if it follows the rules, else InvalidArgument saying which rule."""
    if not value:
        raise InvalidArgument(f"{what} is empty: use 3-32 lowercase letters, digits, _ - .")
    if len(value) > 32:
        raise InvalidArgument(f"{what} is too long ({len(value)} characters, at most 32)")
    if len(value) < 3:
        raise InvalidArgument(f"{what} {_describe(value)} is too short (at least 3 characters)")
    if NAME_RE.fullmatch(value) is None:
        raise InvalidArgument(
            f"{what} {_describe(value)} is not allowed: use lowercase letters, digits, _ - . "
            "and start with a letter"
        )
    return value


def check_new_username(value: str) -> str:
    check_name(value)
    if value in RESERVED_NAMES:
        raise InvalidArgument(f"username {value!r} is reserved: choose another")
    return value


def check_password(value: str, *, what: str = "password") -> bytes:
    """Return the password's UTF-8 bytes if acceptable for bcrypt."""
    if len(value) < PASSWORD_MIN_CHARS:
        raise InvalidArgument(f"{what} is too short: use at least {PASSWORD_MIN_CHARS} characters")
    encoded = value.encode("utf-8")
    if len(encoded) > BCRYPT_MAX_BYTES:
        raise InvalidArgument(
            f"{what} is {len(encoded)} bytes long: at most {BCRYPT_MAX_BYTES} bytes are allowed "
            "(bcrypt's limit); choose a shorter one"
        )
    if "\x00" in value:
        raise InvalidArgument(f"{what} must not contain NUL characters")
    return encoded
