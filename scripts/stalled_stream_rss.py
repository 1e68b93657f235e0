"""How much server memory one Chat stream that never reads can hold (issue 13).

Starts a real `securechat-server` (throwaway PKI and data folder, embedded SQLite), then:

1. fills carol's mailbox with MAILBOX_MIB of 64 KiB messages while she is offline (from several
   senders, so the per-sender quota does not stop the fill);
2. opens carol's Chat stream on a connection with a small HTTP/2 window and never reads it:
   the server replays her mailbox into it;
3. opens dave's stream (an empty mailbox) the same way and sends him LIVE_MIB of 64 KiB
   messages, live, while it does not read; then reads it to its end, to see how it ended.

After each step it prints the server's VmRSS (/proc/PID/status) and whether the stream is still
open. Run it against another checkout with PYTHONPATH pointing there:

    .venv/bin/python scripts/stalled_stream_rss.py
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from securechat.client.bundles import publish_request
from securechat.crypto.account import CryptoAccount
from securechat.pki import make_dev_pki
from securechat_proto.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    chat_pb2,
    chat_pb2_grpc,
    common_pb2,
    keys_pb2_grpc,
)

MAILBOX_MIB = 30
LIVE_MIB = 36
BIG = 64 * 1024
PASSWORD = "correct horse battery"  # noqa: S105 - throwaway accounts
SMALL_WINDOW = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1024)]
Metadata = tuple[tuple[str, str]]


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match is not None
    return int(match.group(1)) / 1024


async def login(channel: grpc.aio.Channel, user: str, *, keys: bool = False) -> Metadata:
    """Register (a legacy password account) and log in a new device; with ``keys`` it publishes
    a key bundle too, since only devices with keys receive messages."""
    auth = auth_pb2_grpc.AuthServiceStub(channel)
    with contextlib.suppress(grpc.aio.AioRpcError):
        await auth.Register(auth_pb2.RegisterRequest(username=user, password=PASSWORD))
    reply = await auth.Login(auth_pb2.LoginRequest(username=user, password=PASSWORD))
    md = (("authorization", f"Bearer {reply.token}"),)
    if keys:
        account = CryptoAccount.create(user, reply.device_id, now=int(time.time()))
        bundle = publish_request(account.upload_bundle())
        await keys_pb2_grpc.KeyServiceStub(channel).PublishBundle(bundle, metadata=md)
    return md


async def fill(channel: grpc.aio.Channel, to: str, mib: int, per_sender: int, tag: str) -> None:
    """``mib`` of 64 KiB messages to ``to``, ``per_sender`` from each new account."""
    chat = chat_pb2_grpc.ChatServiceStub(channel)
    for s in range(mib * 16 // per_sender):
        md = await login(channel, f"{tag}{s}")
        for n in range(per_sender):
            request = chat_pb2.SendRequest(
                conversation=common_pb2.Conversation(user=to),
                client_message_id=f"{tag}{s}-{n}",
                ciphertexts=[
                    chat_pb2.RecipientCiphertext(
                        device=common_pb2.DeviceAddress(user=to, device_id=1),
                        ciphertext=bytes([n % 256]) * BIG,
                    )
                ],
            )
            await chat.Send(request, metadata=md)


async def frames() -> AsyncIterator[chat_pb2.ClientFrame]:
    yield chat_pb2.ClientFrame(open=chat_pb2.OpenStream(device_id=1))
    await asyncio.Event().wait()  # never reads, never closes


def never_read(channel: grpc.aio.Channel, md: Metadata) -> grpc.aio.StreamStreamCall:
    return chat_pb2_grpc.ChatServiceStub(channel).Chat(frames(), metadata=md)


async def ending(call: grpc.aio.StreamStreamCall) -> str:
    """Read the stream to its end: how many deliveries it still gave, and how it ended."""
    received = 0
    try:
        async with asyncio.timeout(30):
            async for frame in call:
                received += sum(1 for e in frame.events if e.WhichOneof("event") == "delivery")
    except grpc.aio.AioRpcError as error:
        code = dict(error.trailing_metadata() or ()).get("securechat-error", "")
        return f"{received} deliveries, then {error.code().name} {code}"
    except TimeoutError:
        call.cancel()
        return f"{received} deliveries and still open"
    return f"{received} deliveries, then OK"


async def measure(port: int, credentials: grpc.ChannelCredentials, pid: int) -> None:
    def open_channel(*options: tuple[str, int]) -> grpc.aio.Channel:
        return grpc.aio.secure_channel(f"localhost:{port}", credentials, list(options))

    async with open_channel() as channel, open_channel(*SMALL_WINDOW) as slow:
        print(f"started:                        RSS {rss_mib(pid):6.1f} MiB")
        carol = await login(slow, "carol", keys=True)
        await fill(channel, "carol", MAILBOX_MIB, 160, "filler")  # 10 MiB per sender
        print(f"{MAILBOX_MIB} MiB waiting for carol:       RSS {rss_mib(pid):6.1f} MiB")
        replaying = never_read(slow, carol)
        await asyncio.sleep(5)
        print(f"carol's stream, never read:     RSS {rss_mib(pid):6.1f} MiB")
        async with open_channel(*SMALL_WINDOW) as slow2:
            live = never_read(slow2, await login(slow2, "dave", keys=True))
            await asyncio.sleep(1)
            await fill(channel, "dave", LIVE_MIB, 192, "live")  # 12 MiB per sender
            await asyncio.sleep(2)
            print(f"dave's stream, {LIVE_MIB} MiB sent live: RSS {rss_mib(pid):6.1f} MiB")
            print(f"  dave's stream then gave {await ending(live)}")
        replaying.cancel()


async def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="stalled-"))
    pki = make_dev_pki(root / "pki", clients=("client",))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECURECHAT_")}
    env.update(
        SECURECHAT_AUTH_BCRYPT_COST="4",
        SECURECHAT_STATUS_PORT="0",
        SECURECHAT_CHAT_SEND_RATE_PER_S="100000",
        SECURECHAT_CHAT_SEND_BURST="100000",
    )
    server = subprocess.Popen(  # noqa: ASYNC220 - once, before anything else runs
        [str(Path(sys.executable).parent / "securechat-server"), "--port", "0",
         "--data-dir", str(root / "data"), "--certs-dir", str(pki.directory)],
        stdout=subprocess.PIPE, stderr=(root / "server.log").open("w"), env=env, text=True,
    )  # fmt: skip
    assert server.stdout is not None
    port = int(server.stdout.readline().rsplit(":", 1)[1].split()[0])
    paths = pki.client("client")
    credentials = grpc.ssl_channel_credentials(
        pki.ca_cert.read_bytes(), paths.key.read_bytes(), paths.cert.read_bytes()
    )
    try:
        await measure(port, credentials, server.pid)
    finally:
        server.terminate()
        server.wait(20)


if __name__ == "__main__":
    asyncio.run(main())
