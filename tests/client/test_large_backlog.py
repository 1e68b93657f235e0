"""A backlog large in bytes reaches the chat client and `securechat inbox` (issue 13): against a
real server process, the victim's own clients, with their 4 MiB receive limit."""

from __future__ import annotations

import asyncio
import json

import pytest

from securechat.client.events import UndecryptableEvent
from securechat.pki import DevPki
from tests.client.conftest import ServerProcess, User
from tests.client.live import device
from tests.support.chat import ChatClient, direct
from tests.support.net import Api, secure_channel

pytestmark = pytest.mark.e2e

SERVER_ENV = {"SECURECHAT_CHAT_SEND_RATE_PER_S": "100000", "SECURECHAT_CHAT_SEND_BURST": "100000"}
BIG = 64 * 1024  # chat.max_message_bytes: the largest message anyone may send


async def flood(pki: DevPki, port: int, sender: str, to: str, count: int) -> None:
    """``count`` private messages of the maximum size from a new account to ``to``'s device 1
    (opaque bytes: the server cannot tell them from real ones)."""
    async with secure_channel(pki, port) as channel:
        api = Api(channel)
        await api.register(sender)
        await api.login(sender)
        for n in range(count):
            request = direct(to, bytes([n % 256]) * BIG, f"{sender}-{n}")
            assert (await api.chat.Send(request, metadata=api.md, timeout=20)).accepted


async def stream_all(pki: DevPki, user: User, secret: str, expected: int) -> list[int]:
    """Open the user's Chat stream (device 1) over a channel with grpc's default 4 MiB receive
    limit, as the client's, logged in with ``secret`` (the authenticator the client derives
    from the password), and read every delivery without acknowledging."""
    async with secure_channel(pki, user.server.port) as channel:
        api = Api(channel)
        await api.login(user.name, secret, device_id=1)
        stream = ChatClient(api, auto_ack=False)
        try:
            await stream.wait_until(lambda: len(stream.deliveries) >= expected, timeout=60)
            assert stream.error is None
            return [d.seq for d in stream.deliveries]
        finally:
            await stream.close()


def inbox(user: User) -> list[dict[str, object]]:
    output = user.run("inbox", "--json").stdout
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_a_mailbox_poisoned_with_large_messages_still_delivers(
    make_user,
    server_process: ServerProcess,
    pki: DevPki,  # type: ignore[no-untyped-def]
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    alice.run("register", "alice")
    bob.run("register", "bob")
    # 70 messages of 64 KiB: 4.4 MiB, over the client's 4 MiB receive limit in one batch.
    asyncio.run(flood(pki, server_process.port, "mallory", "bob", 70))
    alice.run("send", "--to", "bob", "hello after the flood")
    secret = bob.run("auth-key", "bob").stdout.strip()
    assert asyncio.run(stream_all(pki, bob, secret, 71)) == list(range(1, 72))
    received = inbox(bob)
    assert len(received) == 71
    assert all(m["error"] == "message could not be decrypted" for m in received[:70])
    assert (received[70]["sender"], received[70]["text"]) == ("alice", "hello after the flood")
    assert inbox(bob) == []  # everything was acknowledged


def test_a_backlog_of_over_20_mib_is_delivered(
    make_user,
    server_process: ServerProcess,
    pki: DevPki,
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    carol = make_user("carol")
    carol.run("register", "carol")

    async def scenario() -> None:
        dave = await device(server_process.port, pki, tmp_path, "dave")  # the chat client
        try:
            # 21 MiB each for carol and dave, from two senders (each within its share of the
            # mailbox quota): over the server's 16 MiB send limit, five times the client's.
            for sender in ("flood1", "flood2"):
                await flood(pki, server_process.port, sender, "carol", 168)
            for sender in ("flood3", "flood4"):
                await flood(pki, server_process.port, sender, "dave", 168)
            session = await dave.start()
            watch = dave.watch
            undecryptable = lambda: sum(isinstance(e, UndecryptableEvent) for e in watch.events)  # noqa: E731
            await watch.until(lambda: undecryptable() == 336, timeout=120)
            assert session.state == "online"
            await watch.until(lambda: dave.vault.state.last_ack == 336)
        finally:
            await dave.stop()

    asyncio.run(scenario())
    received = inbox(carol)
    assert len(received) == 336
    assert inbox(carol) == []
