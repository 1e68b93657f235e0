"""Logging this device in again when its session expires, from memory only: the chat goes on.

A session token expires (a day by default); the server then ends the Chat stream with
``session_expired`` and refuses the token. The interactive chat keeps the :class:`Credential`
it unlocked the keystore with, in memory only for the life of the process (never written
anywhere), and :func:`log_in_again` uses it; when that fails (the password was changed
elsewhere) :class:`Renewal` asks for the password in place, through the UI's secret prompt.

:func:`log_in_again` is the one place that turns the credential into a login: when login moves
to an authenticator derived from the password, only it and :class:`Credential` change.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from securechat.client.account import Client
from securechat.client.events import Event, NoticeEvent
from securechat.client.profile import SessionToken
from securechat.errors import (
    Kicked,
    LoggedOut,
    SessionExpired,
    Unauthenticated,
    Unavailable,
)

RETRY_S = 3.0
ASK_TRIES = 3

Ask = Callable[[str], Awaitable[str | None]]
"""Asks the user for a secret in place (None: they gave up)."""


@dataclass(frozen=True)
class Credential:
    """What logs this device in again, held in memory only (today: the account password)."""

    user: str
    secret: str = field(repr=False)


async def log_in_again(client: Client, credential: Credential) -> SessionToken:
    """Log this device in again: the new token is used by every later call and saved."""
    device_id = client.session.device_id if client.session is not None else 0
    result = await client.api.login(credential.user, credential.secret, device_id)
    client.session = SessionToken(
        result.token, result.expires_at_ms, credential.user, result.device_id, result.role
    )
    client.profile.save_session(client.session)
    return client.session


def is_expiry(error: Unauthenticated, session: SessionToken | None, now_ms: int) -> bool:
    """Whether the session was refused because it ran out (not a logout, a kick or a revoke)."""
    if isinstance(error, LoggedOut | Kicked):
        return False
    if isinstance(error, SessionExpired):
        return True
    return session is not None and session.expires_at_ms <= now_ms


class Renewal:
    """The chat session's ``renew`` hook: the in-memory credential, else ask in place."""

    def __init__(
        self,
        client: Client,
        credential: Credential | None,
        ask: Ask,
        notify: Callable[[Event], None],
        *,
        retry_s: float = RETRY_S,
    ) -> None:
        self.client = client
        self.credential = credential
        self.ask = ask
        self.notify = notify
        self.retry_s = retry_s

    async def __call__(self, error: Unauthenticated) -> bool:
        if not is_expiry(error, self.client.session, int(time.time() * 1000)):
            return False
        self.notify(NoticeEvent("the session expired: logging in again"))
        if self.credential is not None and await self._try(self.credential):
            return True
        user = self.client.user
        for _ in range(ASK_TRIES):
            typed = await self.ask(f"session expired: password of {user} to log in again")
            if typed is None:
                return False
            if await self._try(Credential(user, typed)):
                return True
            self.notify(NoticeEvent("wrong password: try again", warning=True))
        return False

    async def _try(self, credential: Credential) -> bool:
        """Log in with ``credential`` (waiting out a server that is away); False if refused."""
        while True:
            try:
                await log_in_again(self.client, credential)
            except Unauthenticated:
                return False
            except Unavailable as exc:
                self.notify(NoticeEvent(f"could not log in again: {exc.message}", warning=True))
                await asyncio.sleep(self.retry_s)
                continue
            self.credential = credential
            self.notify(NoticeEvent("logged in again"))
            return True
