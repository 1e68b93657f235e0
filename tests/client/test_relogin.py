"""The chat survives its session expiring: it logs in again from memory and goes on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from securechat.client.events import Target
from securechat.client.profile import SessionToken
from securechat.client.relogin import Credential, Renewal, is_expiry
from securechat.errors import Kicked, LoggedOut, SessionExpired, Unauthenticated
from securechat.node import Node
from securechat.pki import DevPki
from tests.client.live import PASSWORD, device
from tests.client.tui_support import buffer_lines, chat_app, client_for, running, until
from tests.conftest import server_config

# Long enough for the witness below (bob logs in, opens a stream, fetches the lobby's devices and
# keys and sends) to finish on one token even on a loaded 2-core CI machine: with 3 s it timed
# out once at a load average above 10.
TTL_S = 10


@pytest.fixture
async def short_sessions(pki: DevPki, tmp_path: Path) -> AsyncIterator[Node]:
    """A server whose session tokens last a few seconds."""
    node = Node(server_config(pki, tmp_path / "data", **{"auth.token_ttl_s": TTL_S}))
    await node.start()
    yield node
    await node.stop(grace=0.2)


async def test_the_chat_logs_in_again_when_its_session_expires(
    short_sessions: Node, pki: DevPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECURECHAT_KDF_PROFILE", "test")
    alice = await device(short_sessions.port, pki, tmp_path, "alice")
    bob = await device(short_sessions.port, pki, tmp_path, "bob")
    app = chat_app(alice, tmp_path)
    try:
        async with running(app):
            first_token = app.client.api.token
            await until(lambda: app.client.api.token != first_token, timeout=TTL_S * 10)
            await until(lambda: app.status.state == "online")
            assert app.fatal is None
            assert app.client.session is not None
            assert app.client.session.token == app.client.api.token
            assert app.client.profile.load_session() == app.client.session  # saved for `send`
            # bob's own token ran out too: his device logs in again by hand
            secret = bob.vault.login_secret()
            assert secret is not None and secret != PASSWORD
            await bob.api.login("bob", secret, bob.vault.account.address.device_id)
            chat = await bob.start()
            await chat.send(Target.room("lobby"), "still here after the expiry")
            await until(lambda: any("still here after the expiry" in line
                                    for line in buffer_lines(app, "#lobby")))  # fmt: skip
            assert any("logged in again" in line for line in buffer_lines(app, "#lobby"))
    finally:
        await bob.stop()
        await alice.api.close()


async def test_a_password_typed_after_an_expiry_logs_in_with_its_login_secret(
    short_sessions: Node, pki: DevPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No credential in memory: the password asked for in place is turned into the login
    secret (the server takes nothing else), and only that is kept."""
    monkeypatch.setenv("SECURECHAT_KDF_PROFILE", "test")
    alice = await device(short_sessions.port, pki, tmp_path, "alice")
    client = client_for(alice, tmp_path)
    asked: list[str] = []

    async def ask(prompt: str) -> str | None:
        asked.append(prompt)
        return PASSWORD

    renewal = Renewal(client, None, ask, lambda event: None)
    try:
        assert await renewal(SessionExpired())
        assert len(asked) == 1
        assert renewal.credential is not None
        assert renewal.credential.secret == alice.vault.login_secret() != PASSWORD
        assert client.session is not None and client.api.token == client.session.token
        await client.api.count_prekeys()  # the new token is accepted
    finally:
        await alice.api.close()


@pytest.mark.parametrize(
    ("error", "expired"),
    [
        (SessionExpired(), True),
        (LoggedOut(), False),  # the user logged out: never undo it
        (Kicked(), False),  # an admin ended the session
        (Unauthenticated("token not valid"), False),  # not known to have run out
    ],
)
def test_only_an_expiry_is_renewed(error: Unauthenticated, expired: bool) -> None:
    fresh = SessionToken("t", 2_000, "alice", 1)
    assert is_expiry(error, fresh, now_ms=1_000) is expired
    assert is_expiry(Unauthenticated("session expired"), fresh, now_ms=3_000)  # by our clock


def test_the_credential_never_shows_its_secret() -> None:
    assert "hunter2" not in repr(Credential("alice", "hunter2"))
