"""Abuse of delivery and storage, against a real server process (issue 13): mailbox quotas,
out-of-range numbers, private data files, and sends retried after the server was killed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from securechat.client.events import Target
from securechat.client.messenger import Messenger
from securechat.client.rpc import Receipt, Sender, UnaryOutlet
from securechat.errors import Unavailable
from securechat.pki import DevPki
from securechat_proto.v1 import chat_pb2, common_pb2
from tests.client.live import device
from tests.support.chat import ChatClient, direct
from tests.support.net import Api, secure_channel
from tests.support.process import ServerProcess

pytestmark = pytest.mark.e2e

FAST_SENDS = {"SECURECHAT_CHAT_SEND_RATE_PER_S": "100000", "SECURECHAT_CHAT_SEND_BURST": "100000"}
BIG = 64 * 1024  # chat.max_message_bytes


@pytest.fixture
def server(pki: DevPki, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(pki.directory, tmp_path / "data", env=FAST_SENDS)
    yield process
    if process.proc.poll() is None:
        process.terminate()


async def user(pki: DevPki, port: int, apis: list[Api], name: str) -> Api:
    api = Api(secure_channel(pki, port, "client"))
    apis.append(api)
    await api.register(name)
    await api.login(name)
    return api


def trailers(error: grpc.aio.AioRpcError) -> dict[str, str]:
    return {k: str(v) for k, v in error.trailing_metadata() or ()}


async def mailbox(api: Api) -> list[chat_pb2.Delivery]:
    """Every entry waiting for ``api``'s device, page after page."""
    found: list[chat_pb2.Delivery] = []
    while True:
        request = chat_pb2.FetchRequest(after_seq=found[-1].seq if found else 0, limit=1000)
        page = (await api.chat.Fetch(request, metadata=api.md)).deliveries
        if not page:
            return found
        found += page


async def test_one_sender_cannot_fill_an_offline_users_mailbox(
    pki: DevPki, server: ServerProcess, apis: list[Api]
) -> None:
    mallory = await user(pki, server.port, apis, "mallory")
    alice = await user(pki, server.port, apis, "alice")
    bob = await user(pki, server.port, apis, "bob")  # logged in once, now offline
    accepted = 0
    refused: grpc.aio.AioRpcError | None = None
    for n in range(300):  # 18.75 MiB if nothing stopped it
        try:
            result = await mallory.chat.Send(direct("bob", bytes([n % 256]) * BIG, f"m{n}"),
                                             metadata=mallory.md)  # fmt: skip
        except grpc.aio.AioRpcError as error:
            refused = error
            break
        assert result.accepted
        accepted += 1
    assert refused is not None, "300 messages of 64 KiB were all stored"
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert trailers(refused)["securechat-error"] == "mailbox_full"
    assert int(trailers(refused)["retry-after"]) >= 1
    assert "bob/1" in (refused.details() or "")
    assert accepted == 256  # the per-sender quota: 16 MiB of bob's mailbox
    # On a stream, the refusal is the send's result and the stream goes on.
    stream = ChatClient(mallory)
    answer = await stream.send(common_pb2.Conversation(user="bob"), {("bob", 1): b"x" * BIG})
    assert (answer.accepted, answer.error_code) == (False, "mailbox_full")
    assert answer.retry_after_s >= 1
    await stream.close()
    # Everyone else still reaches bob, and nothing accepted was lost.
    assert (await alice.chat.Send(direct("bob", b"hello bob", "a1"), metadata=alice.md)).accepted
    stored = await mailbox(bob)
    assert len(stored) == accepted + 1
    assert stored[-1].ciphertext == b"hello bob"


async def test_an_out_of_range_sequence_is_a_clear_error_without_a_traceback(
    pki: DevPki, server: ServerProcess, apis: list[Api]
) -> None:
    bob = await user(pki, server.port, apis, "bob")
    for after_seq in (2**63, 2**64 - 1):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await bob.chat.Fetch(chat_pb2.FetchRequest(after_seq=after_seq), metadata=bob.md)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "after_seq" in (info.value.details() or "")
    assert (await bob.chat.Fetch(chat_pb2.FetchRequest(after_seq=2**63 - 1), metadata=bob.md)) \
        .deliveries == []  # fmt: skip
    server.terminate()
    assert "Traceback" not in server.logs()


@pytest.mark.parametrize("umask", [0o022, 0o000], ids=["umask-022", "umask-000"])
async def test_the_data_folder_and_database_files_are_private(
    pki: DevPki, tmp_path: Path, apis: list[Api], umask: int
) -> None:
    old = os.umask(umask)
    try:
        data = tmp_path / "data"
        process = ServerProcess(pki.directory, data)  # it creates data/ with this umask first
    finally:
        os.umask(old)
    try:
        await user(pki, process.port, apis, "alice")
        db = data / "securechat.db"
        files = [db, db.with_name("securechat.db-wal"), db.with_name("securechat.db-shm")]
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        assert [stat.S_IMODE(f.stat().st_mode) for f in files] == [0o600] * 3
    finally:
        process.terminate()


# ---- sends retried after the server was killed ---------------------------------------------------
async def _until_acknowledged(
    messenger: Messenger, sender: Sender, online: Callable[[], bool], count: int,
    kill: Callable[[], None],
) -> list[Receipt]:  # fmt: skip
    """Submit ``count`` messages in bursts and kill the server (SIGKILL) while a burst is being
    stored and answered; then wait for every answer. A send refused or failed is
    sent again with the same id once the client is online (what a user, or an outbox, does)."""
    target = Target.user("bob")
    answers: dict[str, asyncio.Future[Receipt]] = {}

    async def submit(i: str) -> None:
        try:
            answers[i] = await messenger.submit(sender, target, f"message {i}", message_id=i)
        except Unavailable as error:  # offline: not sent at all
            answers[i] = asyncio.get_running_loop().create_future()
            answers[i].set_exception(error)

    for n in range(count):
        await submit(f"k{n:03d}")
        if n % 30 == 29:  # a burst is written, the server stores it and answers
            await asyncio.sleep(0.01)
            if n == 59:  # ... while it still stores and answers: in flight
                kill()
    receipts: dict[str, Receipt] = {}
    for _ in range(20):
        for i, answer in answers.items():
            if i not in receipts:
                with contextlib.suppress(Unavailable):
                    receipts[i] = await asyncio.wait_for(answer, 30)
        if len(receipts) == count:
            return list(receipts.values())
        while not online():
            await asyncio.sleep(0.05)
        for i in answers:
            if i not in receipts:
                await submit(i)
    raise AssertionError(f"{count - len(receipts)} sends were never acknowledged")


@pytest.mark.parametrize("outlet", ["stream", "unary"])
async def test_sends_in_flight_when_the_server_is_killed_are_stored_once(
    pki: DevPki, tmp_path: Path, outlet: str
) -> None:
    data = tmp_path / "data"
    first = ServerProcess(pki.directory, data, env=FAST_SENDS)
    port = first.port
    servers = [first]
    alice = await device(port, pki, tmp_path, "alice")
    bob = await device(port, pki, tmp_path, "bob")  # offline from now on: his mailbox shows all
    starting: list[asyncio.Task[None]] = []

    async def restart() -> None:
        servers.append(await asyncio.to_thread(
            ServerProcess, pki.directory, data, port=port, env=FAST_SENDS
        ))  # fmt: skip

    def kill() -> None:
        first.kill()
        starting.append(asyncio.create_task(restart()))

    try:
        if outlet == "stream":
            chat = await alice.start()
            sender, messenger = chat.sender, chat.messenger
            online: Callable[[], bool] = lambda: chat.state == "online"  # noqa: E731
        else:
            messenger = Messenger(alice.api, alice.vault)
            sender = Sender(UnaryOutlet(alice.api), messenger.book)
            online = lambda: len(servers) == 2  # noqa: E731
        await (await messenger.submit(sender, Target.user("bob"), "hello", message_id="first"))
        receipts = await _until_acknowledged(messenger, sender, online, 150, kill)
        stored = await bob.api.fetch(0, 1000)
        while page := await bob.api.fetch(stored[-1].seq, 1000):
            stored += page
        ids = [d.message_id for d in stored]
        assert len(ids) == len(set(ids)) == 151  # every message once, none twice
        assert {r.message_id for r in receipts} <= set(ids)
    finally:
        for task in starting:
            with contextlib.suppress(BaseException):
                await task
        await alice.stop()
        await bob.stop()
        for each in servers:
            if each.proc.poll() is None:
                each.terminate()
