"""The Chat stream when the server dies: nothing unhandled, a prompt reconnect, a clear reason.

A server killed with SIGKILL (a real process) must read as a lost connection and then as no
server answering, never as a certificate problem; once it is back the client is online again
within the short backoff cap, and the event loop never saw an unhandled exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from securechat.client.events import Target
from securechat.pki import DevPki
from tests.client.conftest import MakeDevice
from tests.client.live import Relay, device
from tests.support.process import ServerProcess


def record_loop_errors() -> list[dict[str, Any]]:
    """Everything that reaches the event loop's exception handler (an unhandled task error)."""
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context))
    return errors


@pytest.fixture
def server_process(pki: DevPki, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    """A real server process (a list, so a test can replace it); every one stopped at the end."""
    started = [ServerProcess(pki.directory, tmp_path / "data")]
    yield started
    for process in started:
        if process.proc.poll() is None:
            process.terminate()


async def test_cutting_the_connection_leaves_nothing_unhandled(
    make_device: MakeDevice, relay: Relay
) -> None:
    errors = record_loop_errors()
    alice, bob = await make_device("alice", port=relay.port), await make_device("bob")
    await bob.start()
    chat = await alice.start()
    for round_ in range(3):
        await chat.send(Target.room("lobby"), f"round {round_}")
        relay.cut()
        await alice.watch.until(lambda n=round_ + 2: alice.watch.onlines() >= n)
    await bob.watch.until(lambda: len(bob.watch.texts()) == 3)
    assert errors == []


async def test_a_killed_server_reads_as_gone_not_as_a_certificate_problem(
    pki: DevPki, tmp_path: Path, server_process: list[ServerProcess]
) -> None:
    errors = record_loop_errors()
    alice = await device(server_process[0].port, pki, tmp_path, "alice")
    try:
        chat = await alice.start()
        server_process[0].kill()
        await alice.watch.until(lambda: len([e for e in alice.watch.states() if e.code]) >= 2)
        reasons = [e.detail for e in alice.watch.states() if e.state == "reconnecting" and e.code]
        assert reasons[0].startswith("lost the connection to the server")
        assert reasons[1].startswith("server unavailable: no server is answering")
        assert not any("certificate" in reason for reason in reasons)
        assert chat.state == "reconnecting"
    finally:
        await alice.stop()
    assert errors == []


async def test_a_restarted_server_is_found_again_within_the_short_cap(
    pki: DevPki, tmp_path: Path, server_process: list[ServerProcess]
) -> None:
    errors = record_loop_errors()
    relay = Relay(server_process[0].port)
    await relay.start()
    alice = await device(relay.port, pki, tmp_path, "alice")
    try:
        chat = await alice.start()
        chat.link.backoff = type(chat.link.backoff)()  # the real default backoff
        server_process[0].kill()
        await alice.watch.until(lambda: chat.state == "reconnecting")
        # Down long enough for the uncapped backoff to have grown past 10 s.
        await alice.watch.until(lambda: chat.link.reconnects >= 5)
        server_process.append(ServerProcess(pki.directory, tmp_path / "data"))
        relay.release(server_process[-1].port)
        await alice.watch.until(lambda: alice.watch.onlines() >= 2)
        waits = [e.retry_in_s for e in alice.watch.states() if e.state == "reconnecting"]
        assert max(waits) <= 3.0  # a countdown to show, never above the brief cap
        assert all(e.detail for e in alice.watch.states() if e.retry_in_s)
    finally:
        await alice.stop()
        await relay.close()
    assert errors == []
