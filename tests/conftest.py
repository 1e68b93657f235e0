"""Shared fixtures: a throwaway PKI per test session and a real grpc.aio server per test."""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from securechat.config import Config, load_config
from securechat.node import Node
from securechat.pki import DevPki, make_dev_pki
from tests.support.net import Api, secure_channel
from tests.support.tasks import end_tasks

CLIENTS = ("client", "alice", "bob", "carol", "admin", "revokee")


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return make_dev_pki(
        tmp_path_factory.mktemp("pki"), clients=CLIENTS, expired=("expired",), foreign=("foreign",)
    )


def server_config(pki: DevPki, data_dir: Path, **overrides: object) -> Config:
    base: dict[str, object] = {
        "server.port": 0,
        "server.data_dir": data_dir,
        "server.certs_dir": pki.directory,
        "server.grace_period_s": 1.0,
        "auth.bcrypt_cost": 4,
        "auth.registrations_per_peer_per_hour": 100_000,
        # Abuse limits stay out of the way of tests about other things (tests of the limits
        # set their own).
        "auth.registrations_per_hour": 100_000,
        "auth.logins_per_account_per_hour": 100_000,
        "auth.login_burst": 100_000,
        "limits.rooms_per_user": 100_000,
        "limits.room_creations_per_hour": 100_000,
        "chat.send_rate_per_s": 10_000.0,
        "chat.send_burst": 10_000,
        "status.port": 0,
        "tls.reload_interval_s": 0.0,
    }
    base.update(overrides)
    return load_config(None, base, env={})


@pytest.fixture
async def server(pki: DevPki, tmp_path: Path) -> AsyncIterator[Node]:
    srv = Node(server_config(pki, tmp_path / "data"))
    await srv.start()
    yield srv
    await srv.stop(grace=0.5)


ApiFactory = Callable[..., Awaitable[Api]]


@pytest.fixture
async def apis() -> AsyncIterator[list[Api]]:
    """Apis a test makes itself (on servers of its own), closed after it."""
    made: list[Api] = []
    yield made
    for api in made:
        await api.channel.close()


@pytest.fixture
async def connect(server: Node, pki: DevPki) -> AsyncIterator[ApiFactory]:
    """connect(user, register=True, cert="client") -> a logged-in Api."""
    apis: list[Api] = []

    async def make(user: str = "", *, register: bool = True, cert: str = "client") -> Api:
        api = Api(secure_channel(pki, server.port, cert))
        apis.append(api)
        if user:
            if register:
                await api.register(user)
            await api.login(user)
        return api

    yield make
    for api in apis:
        await api.channel.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """In CI (SECURECHAT_REQUIRE_SERVICES=1) a PostgreSQL or Redis test may not skip."""
    outcome = yield
    report = outcome.get_result()
    needs_service = item.get_closest_marker("postgres") or item.get_closest_marker("redis")
    if report.skipped and needs_service and os.environ.get("SECURECHAT_REQUIRE_SERVICES") == "1":
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where PostgreSQL and Redis must run: {report.longrepr}"


LEAK_WAIT_S = 30.0


@pytest.fixture
async def _tasks_end_with_their_test() -> AsyncIterator[None]:
    """A task still running after a test's fixtures are torn down is cancelled here, where a
    failure names it, not in the loop's close, where one that ignores its cancellation (a gRPC
    call cut from a closed channel) hangs until the global timeout with no name. The loop's
    close cancels only once; :func:`end_tasks` cancels again what a single cancellation does
    not end (aiosqlite's close, see there)."""
    yield
    me = asyncio.current_task()
    left = await end_tasks((t for t in asyncio.all_tasks() if t is not me), LEAK_WAIT_S)
    assert not left, f"tasks ignored their cancellation: {[t.get_coro() for t in left]}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj):
            item.fixturenames.insert(0, "_tasks_end_with_their_test")
