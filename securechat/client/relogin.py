"""Logging this device in again when its session expires, from memory only: the chat goes on.

A session token expires (a day by default); the server then ends the Chat stream with
``session_expired`` and refuses the token. The interactive chat keeps a :class:`Credential`:
the login secret (the authenticator of the password split, client/credentials.py) derived when
the keystore was unlocked, in memory only for the life of the process (never written anywhere),
never the password. :func:`log_in_again` logs in with it; when that fails (the password was
changed elsewhere) :class:`Renewal` asks for the password in place, through the UI's secret
prompt, and derives the login secret from it with the server's current salt and costs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from securechat.client.account import Client
from securechat.client.credentials import login_secret
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
    """What logs this device in again, held in memory only: the login secret (the
    authenticator), never the password."""

    user: str
    secret: str = field(repr=False)


async def credential_for(client: Client, password: str) -> Credential:
    """The credential of a password typed now (the server's salt and costs; off the loop)."""
    user = client.user
    return Credential(user, await login_secret(client.api, user, password))


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
            if await self._try(typed):
                return True
            self.notify(NoticeEvent("wrong password: try again", warning=True))
        return False

    async def _try(self, credential: Credential | str) -> bool:
        """Log in with ``credential``, or with the login secret of a typed password (waiting out
        a server that is away); False if refused."""
        while True:
            try:
                if isinstance(credential, str):
                    credential = await credential_for(self.client, credential)
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
