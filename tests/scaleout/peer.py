"""A small test client that survives node failures: it fails over between server ports.

It keeps a Chat stream open (acking every delivery, resuming after the last processed sequence)
and sends with the unary Send, retrying on another node when one is unreachable. Only sends
whose SendResult came back accepted count as acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

import grpc

from securechat.pki import DevPki
from securechat_proto.v1 import chat_pb2, common_pb2
from tests.support.net import Api, credentials

RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.ABORTED,
}


def channel(pki: DevPki, port: int, cert: str = "client") -> grpc.aio.Channel:
    """A channel with its own TCP connection (no subchannel sharing between channels)."""
    paths = pki.client(cert)
    return grpc.aio.secure_channel(
        f"localhost:{port}",
        credentials(pki.ca_cert, paths.cert, paths.key),
        options=[("grpc.use_local_subchannel_pool", 1)],
    )


class Peer:
    def __init__(self, pki: DevPki, user: str, ports: list[int], cert: str = "client") -> None:
        self.pki, self.user, self.ports, self.cert = pki, user, list(ports), cert
        self.index = 0
        self.api = Api(channel(pki, self.ports[0], cert))
        self.processed = 0
        self.received: Counter[str] = Counter()
        self.presence: list[tuple[str, bool]] = []
        self.acknowledged: set[str] = set()
        self.reconnects = 0
        self.ended: grpc.StatusCode | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return self.ports[self.index]

    async def failover(self, from_port: int) -> None:
        """Move to the next node (once per failed node, however many callers notice)."""
        if self.port != from_port:
            return
        self.index = (self.index + 1) % len(self.ports)
        old, token, device, user = self.api.channel, self.api.token, self.api.device_id, self.user
        self.api = Api(channel(self.pki, self.port, self.cert), token, device, user)
        self.reconnects += 1
        with contextlib.suppress(Exception):
            await old.close(grace=0)

    async def start(self, *, register: bool = True) -> None:
        if register:
            await self.api.register(self.user)
        await self.api.login(self.user)
        self._task = asyncio.create_task(self._stream_loop(), name=f"peer-{self.user}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.api.channel.close(grace=0)

    async def _stream_loop(self) -> None:
        while True:
            api, port = self.api, self.port
            call = api.chat.Chat(metadata=api.md)
            try:
                opened = chat_pb2.OpenStream(
                    device_id=api.device_id, resume_after_seq=self.processed
                )
                await call.write(chat_pb2.ClientFrame(open=opened))
                while (frame := await call.read()) is not grpc.aio.EOF:
                    assert isinstance(frame, chat_pb2.ServerFrame)
                    self._process(frame)
                    await call.write(
                        chat_pb2.ClientFrame(ack=chat_pb2.AckRequest(seq=self.processed))
                    )
            except grpc.aio.AioRpcError as error:
                if error.code() not in RETRYABLE:
                    self.ended = error.code()
                    return
            except asyncio.CancelledError:
                call.cancel()
                raise
            if await self._node_down(port):
                await self.failover(port)
            await asyncio.sleep(0.1)

    async def _node_down(self, port: int) -> bool:
        probe = channel(self.pki, port, self.cert)
        try:
            await asyncio.wait_for(probe.channel_ready(), 1.0)
            return False
        except TimeoutError:
            return True
        finally:
            await probe.close(grace=0)

    def _process(self, frame: chat_pb2.ServerFrame) -> None:
        for event in frame.events:
            kind = event.WhichOneof("event")
            if kind == "delivery":
                delivery = event.delivery
                assert delivery.seq == self.processed + 1, (self.user, delivery.seq, self.processed)
                self.processed = delivery.seq
                self.received[delivery.message_id] += 1
            elif kind == "presence":
                self.presence.append((event.presence.user, event.presence.online))

    async def send(
        self, conversation: common_pb2.Conversation, recipients: list[tuple[str, int]], body: bytes
    ) -> str:
        """One message, retried on another node while unreachable; its id once acknowledged."""
        for _attempt in range(50):
            api, port = self.api, self.port
            request = chat_pb2.SendRequest(
                conversation=conversation,
                ciphertexts=[
                    chat_pb2.RecipientCiphertext(
                        device=common_pb2.DeviceAddress(user=user, device_id=device),
                        ciphertext=body,
                    )
                    for user, device in recipients
                ],
            )
            try:
                result = await api.chat.Send(request, metadata=api.md, timeout=5)
            except grpc.aio.AioRpcError as error:
                if error.code() not in RETRYABLE:
                    raise
                await self.failover(port)
                await asyncio.sleep(0.05)
                continue
            if result.accepted:
                self.acknowledged.add(result.message_id)
                return str(result.message_id)
            assert result.error_code == "stale_devices", result
            recipients = [(d.user, d.device_id) for d in result.current_devices]
        raise AssertionError(f"{self.user} could not send after 50 attempts")
