"""Password-hashing floods against a real `securechat-server` process at the real bcrypt cost:
one account repeating its own correct login, many addresses guessing, registrations from
changing addresses. An honest login and an honest delivery still complete within a generous
bound while the flood runs (issue 13). Before the fair queue, the honest login waited behind
the whole flood (20-38 s measured by hand)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest

from securechat.pki import DevPki
from securechat_proto.v1 import auth_pb2
from tests.support.chat import ChatClient, room_send
from tests.support.net import PASSWORD, Api, secure_channel
from tests.support.process import ServerProcess
from tests.support.sources import SourceProxy

pytestmark = pytest.mark.e2e

#: Generous: a calm login takes well under a second; a starved one took tens of seconds.
HONEST_BOUND_S = 8.0
FLOOD_CONCURRENCY = 60
REAL_COST = {"SECURECHAT_AUTH_BCRYPT_COST": "12", "SECURECHAT_AUTH_BCRYPT_WORKERS": "1"}


@pytest.fixture
async def server(pki: DevPki, tmp_path: Path) -> AsyncIterator[ServerProcess]:
    process = ServerProcess(pki.directory, tmp_path / "data", env=REAL_COST)
    yield process
    process.terminate()


class Flood:
    """Keeps ``concurrency`` calls in flight until stopped; counts how they ended."""

    def __init__(self, call: Callable[[int], Awaitable[object]], concurrency: int) -> None:
        self.call = call
        self.outcomes: dict[str, int] = {}
        self._stop = asyncio.Event()
        self._tasks = [asyncio.create_task(self._loop(i)) for i in range(concurrency)]

    async def _loop(self, worker: int) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            try:
                await self.call(worker * 100_000 + n)
                outcome = "OK"
            except grpc.aio.AioRpcError as error:
                outcome = error.code().name
                if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    await asyncio.sleep(0.05)  # an attacker ignores retry-after; no busy loop
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    async def running(self) -> None:
        """Until the flood has made the server work (its first answers are in)."""
        while sum(self.outcomes.values()) < 3:
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def timed_login(api: Api, user: str, device_id: int = 0) -> float:
    started = time.perf_counter()
    await asyncio.wait_for(api.login(user, device_id=device_id), 60)
    return time.perf_counter() - started


async def honest_delivery(alice: Api, bob: Api) -> None:
    """alice -> bob in the lobby over real streams."""
    bob_stream, alice_stream = ChatClient(bob), ChatClient(alice)
    try:
        await bob_stream.wait_until(lambda: bool(bob_stream.events))
        await alice_stream.wait_until(lambda: bool(alice_stream.events))
        assert (await room_send(alice_stream, "lobby", b"during the flood")).accepted
        await bob_stream.wait_until(lambda: b"during the flood" in bob_stream.texts())
    finally:
        await alice_stream.close()
        await bob_stream.close()


async def test_one_account_repeating_its_correct_login_does_not_starve_others(
    server: ServerProcess, pki: DevPki
) -> None:
    alice = Api(secure_channel(pki, server.port))
    bob = Api(secure_channel(pki, server.port))
    mallory = Api(secure_channel(pki, server.port))
    await alice.register("alice")
    await bob.register("bob")
    await mallory.register("mallory")
    await alice.login("alice")  # alice has logged in before (the usual case)
    await bob.login("bob")
    await mallory.login("mallory")  # the flood reuses this device: the room's devices stay put
    login = auth_pb2.LoginRequest(
        username="mallory", password=PASSWORD, device_id=mallory.device_id
    )

    async def mallory_login(_: int) -> object:
        return await mallory.auth.Login(login)

    flood = Flood(mallory_login, FLOOD_CONCURRENCY)
    try:
        await flood.running()
        seconds = await timed_login(alice, "alice", alice.device_id)
        await asyncio.wait_for(honest_delivery(alice, bob), HONEST_BOUND_S)
    finally:
        await flood.stop()
    assert seconds < HONEST_BOUND_S, (seconds, flood.outcomes)
    # The flood was refused cheaply (before hashing), not served without end.
    assert flood.outcomes.get("RESOURCE_EXHAUSTED", 0) > 0, flood.outcomes
    for api in (alice, bob, mallory):
        await api.channel.close()


async def test_guesses_from_many_addresses_do_not_starve_an_honest_login(
    server: ServerProcess, pki: DevPki
) -> None:
    alice = Api(secure_channel(pki, server.port))
    bob = Api(secure_channel(pki, server.port))
    await alice.register("alice")
    await bob.register("bob")
    await alice.login("alice")
    await bob.login("bob")
    proxies = [await SourceProxy(server.port, f"127.0.0.{i}").start() for i in range(2, 18)]
    guessers = [proxy.api(pki) for proxy in proxies]

    async def guess(n: int) -> object:
        api = guessers[n % len(guessers)]
        wrong = auth_pb2.LoginRequest(username=f"guess{n % 997}", password=f"wrong {n}")
        return await api.auth.Login(wrong)

    flood = Flood(guess, FLOOD_CONCURRENCY)
    try:
        await flood.running()
        seconds = await timed_login(alice, "alice", alice.device_id)
        await asyncio.wait_for(honest_delivery(alice, bob), HONEST_BOUND_S)
    finally:
        await flood.stop()
        for api in guessers:
            await api.channel.close()
        for proxy in proxies:
            await proxy.close()
    assert seconds < HONEST_BOUND_S, (seconds, flood.outcomes)
    assert flood.outcomes.get("UNAUTHENTICATED", 0) > 0, flood.outcomes  # the guesses ran
    for api in (alice, bob):
        await api.channel.close()


async def test_registrations_from_changing_addresses_meet_a_global_limit(
    pki: DevPki, tmp_path: Path
) -> None:
    process = ServerProcess(
        pki.directory,
        tmp_path / "data",
        env={"SECURECHAT_AUTH_REGISTRATIONS_PER_HOUR": "40"},  # bursts of 10
    )
    proxies = [await SourceProxy(process.port, f"127.0.0.{i}").start() for i in range(2, 22)]
    apis = [proxy.api(pki) for proxy in proxies]
    codes: list[str] = []
    try:
        for i, api in enumerate(apis):  # one registration per address: per-address limits pass
            try:
                await api.register(f"sock{i:02d}")
                codes.append("OK")
            except grpc.aio.AioRpcError as error:
                codes.append(error.code().name)
                assert int(dict(error.trailing_metadata() or ())["retry-after"]) >= 1
    finally:
        for api in apis:
            await api.channel.close()
        for proxy in proxies:
            await proxy.close()
        process.terminate()
    assert codes.count("OK") == 10, codes
    assert codes.count("RESOURCE_EXHAUSTED") == 10, codes
