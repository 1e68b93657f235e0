"""Reading secrets without ever taking them from the command line: env, stdin or a hidden prompt."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TextIO

from securechat.errors import InvalidArgument

PASSWORD_ENV = "SECURECHAT_PASSWORD"  # noqa: S105 - the variable's name, not a secret
ROOM_PASSWORD_ENV = "SECURECHAT_ROOM_PASSWORD"  # noqa: S105


@dataclass
class SecretSource:
    """Where the account and room passwords come from, read at most once each.

    ``password_env`` names the variable holding the account password (securechat-admin reads
    SECURECHAT_ADMIN_PASSWORD); ``prompt`` is what the hidden prompt says."""

    password_stdin: bool = False
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)
    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    password_env: str = PASSWORD_ENV
    prompt: str = "Password: "
    _account: str | None = None

    def _interactive(self) -> bool:
        return self.stdin.isatty()

    def account_password(self, *, confirm: bool = False) -> str:
        """SECURECHAT_PASSWORD, else one line of stdin (--password-stdin), else a prompt."""
        if self._account is not None:
            return self._account
        value = self.env.get(self.password_env)
        if value is None and self.password_stdin:
            value = self.stdin.readline().rstrip("\r\n")
            if not value:
                raise InvalidArgument("--password-stdin was given but stdin held no password")
        if value is None:
            if not self._interactive():
                raise InvalidArgument(
                    f"a password is needed: set {self.password_env} or pipe it with "
                    "--password-stdin"
                )
            value = getpass.getpass(self.prompt)
            if confirm and getpass.getpass("Repeat password: ") != value:
                raise InvalidArgument("the two passwords differ: try again")
        self._account = value
        return value

    def room_password(self, room: str, *, confirm: bool = False) -> str:
        """SECURECHAT_ROOM_PASSWORD, else a hidden prompt (asked twice with ``confirm``)."""
        value = self.env.get(ROOM_PASSWORD_ENV)
        if value is not None:
            return value
        if not self._interactive():
            raise InvalidArgument(f"room {room} needs a password: set {ROOM_PASSWORD_ENV}")
        value = getpass.getpass(f"Password for room {room}: ")
        if confirm and getpass.getpass(f"Repeat the password for room {room}: ") != value:
            raise InvalidArgument("the two passwords differ: try again")
        return value
