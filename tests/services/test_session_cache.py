"""The session cache keeps one token per device: a client that logs in again and again (the
churn soak) does not grow the server's memory by one cached session per login (issue 18)."""

from __future__ import annotations

import time

from securechat.bus.memory import MemoryBus
from securechat.config import AuthConfig
from securechat.domain.model import Role, Session
from securechat.services.accounts import Accounts, hash_token
from securechat.services.acks import LastSeen
from securechat.services.clock import SystemClock
from securechat.services.passwords import PasswordHasher
from securechat.storage.memory import MemoryStore


def session(token: str, user: str, device_id: int) -> Session:
    now = int(time.time() * 1000)
    return Session(hash_token(token), user, device_id, Role.USER, now + 3_600_000, now, "", "", "")


async def test_a_device_that_logs_in_again_replaces_its_cached_session() -> None:
    store = MemoryStore()
    await store.open()
    await store.create_user("bob", b"$2b$x", Role.USER, 1)
    accounts = Accounts(
        store, MemoryBus(), PasswordHasher(4, 1, queue_bound=2, per_source=2, per_account=2),
        AuthConfig(), SystemClock(), LastSeen(store), default_room="",
    )  # fmt: skip
    for index in range(50):  # fifty logins of one device, each with its own token
        await store.create_session(session(f"token{index}", "bob", 1))
        assert (await accounts.authenticate(f"token{index}")).device_id == 1
    await store.create_session(session("other", "bob", 2))
    await accounts.authenticate("other")

    assert len(accounts._sessions) == 2  # one per device
    # an older token still works (looked up again), and is then the cached one
    assert (await accounts.authenticate("token3")).token_hash == hash_token("token3")
    assert hash_token("token49") not in accounts._sessions
    assert len(accounts._sessions) == 2
