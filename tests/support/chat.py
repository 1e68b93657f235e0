"""A scripted Chat-stream client for tests: records every event, acks, sends by room or user."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable

import grpc

from securechat_proto.v1 import chat_pb2, common_pb2, rooms_pb2
from tests.support.net import Api

_ids = itertools.count(1)


class ChatClient:
    def __init__(
        self,
        api: Api,
        *,
        resume_after: int = 0,
        auto_ack: bool = True,
        resume_rooms: dict[str, int] | None = None,
    ) -> None:
        self.api = api
        self.auto_ack = auto_ack
        self.resume_after = resume_after
        self.resume_rooms = resume_rooms or {}
        self.outbox: asyncio.Queue[chat_pb2.ClientFrame | None] = asyncio.Queue()
        self.events: list[chat_pb2.ServerEvent] = []
        self.deliveries: list[chat_pb2.Delivery] = []
        self.results: dict[str, chat_pb2.SendResult] = {}
        self.frames = 0
        self.error: grpc.aio.AioRpcError | None = None
        self.changed = asyncio.Condition()
        self.call = api.chat.Chat(self._requests(), metadata=api.md)
        self.reader = asyncio.create_task(self._read())

    async def _requests(self) -> AsyncIterator[chat_pb2.ClientFrame]:
        yield chat_pb2.ClientFrame(
            open=chat_pb2.OpenStream(
                device_id=self.api.device_id,
                resume_after_seq=self.resume_after,
                resume_rooms=[
                    chat_pb2.RoomPosition(room=room, room_seq=seq)
                    for room, seq in self.resume_rooms.items()
                ],
            )
        )
        while (frame := await self.outbox.get()) is not None:
            yield frame

    async def _read(self) -> None:
        try:
            async for frame in self.call:
                self.frames += 1
                last_seq = 0
                for event in frame.events:
                    self.events.append(event)
                    kind = event.WhichOneof("event")
                    if kind == "delivery":
                        self.deliveries.append(event.delivery)
                        last_seq = event.delivery.seq
                    elif kind == "send_result":
                        self.results[event.send_result.client_message_id] = event.send_result
                if last_seq and self.auto_ack:
                    self.ack(last_seq)
                async with self.changed:
                    self.changed.notify_all()
        except grpc.aio.AioRpcError as error:
            self.error = error
        finally:
            async with self.changed:
                self.changed.notify_all()

    def ack(self, seq: int, rooms: dict[str, int] | None = None) -> None:
        positions = [chat_pb2.RoomPosition(room=r, room_seq=s) for r, s in (rooms or {}).items()]
        self.outbox.put_nowait(
            chat_pb2.ClientFrame(ack=chat_pb2.AckRequest(seq=seq, rooms=positions))
        )

    def room_deliveries(self, room: str) -> list[chat_pb2.Delivery]:
        return [d for d in self.deliveries if d.room_seq and d.conversation.room == room]

    def roster_events(self, room: str) -> list[chat_pb2.RosterEvent]:
        return [
            e.roster for e in self.events if e.WhichOneof("event") == "roster"
            and e.roster.room == room
        ]  # fmt: skip

    def put(self, frame: chat_pb2.ClientFrame) -> None:
        self.outbox.put_nowait(frame)

    async def wait_until(self, check: Callable[[], bool], timeout: float = 20.0) -> None:
        async def wait() -> None:
            async with self.changed:
                await self.changed.wait_for(lambda: check() or self.reader.done())

        await asyncio.wait_for(wait(), timeout)
        assert check(), f"stream ended first: {self.error!r}"

    async def wait_ended(self, timeout: float = 20.0) -> grpc.aio.AioRpcError | None:
        await asyncio.wait_for(asyncio.shield(self.reader), timeout)
        return self.error

    def texts(self) -> list[bytes]:
        return [d.ciphertext for d in self.deliveries]

    async def send(
        self,
        conversation: common_pb2.Conversation,
        ciphertexts: dict[tuple[str, int], bytes],
        client_id: str | None = None,
    ) -> chat_pb2.SendResult:
        cid = client_id or f"c{next(_ids)}"
        request = chat_pb2.SendRequest(
            conversation=conversation,
            client_message_id=cid,
            ciphertexts=[
                chat_pb2.RecipientCiphertext(
                    device=common_pb2.DeviceAddress(user=u, device_id=d), ciphertext=c
                )
                for (u, d), c in ciphertexts.items()
            ],
        )
        self.put(chat_pb2.ClientFrame(send=request))
        await self.wait_until(lambda: cid in self.results)
        return self.results[cid]

    async def kill(self) -> None:
        """Drop the connection abruptly, as a crashed client would."""
        self.call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader

    async def close(self) -> None:
        self.outbox.put_nowait(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self.reader), 5)
        self.call.cancel()
        self.reader.cancel()
        with contextlib.suppress(BaseException):
            await self.reader


def direct(to: str, body: bytes, client_id: str, device_id: int = 1) -> chat_pb2.SendRequest:
    """A private message to one device of ``to`` (a user with one device)."""
    return chat_pb2.SendRequest(
        conversation=common_pb2.Conversation(user=to),
        client_message_id=client_id,
        ciphertexts=[
            chat_pb2.RecipientCiphertext(
                device=common_pb2.DeviceAddress(user=to, device_id=device_id), ciphertext=body
            )
        ],
    )


async def room_devices(api: Api, room: str) -> list[tuple[str, int]]:
    members = await api.rooms.ListMembers(rooms_pb2.ListMembersRequest(name=room), metadata=api.md)
    return [(m.user, d) for m in members.members for d in m.device_ids]


async def room_send(
    client: ChatClient, room: str, body: bytes, client_id: str | None = None
) -> chat_pb2.SendResult:
    """One ciphertext per member device except the sender's own (the body, tagged per device)."""
    me = (client.api.user, client.api.device_id)
    devices = [d for d in await room_devices(client.api, room) if d != me]
    return await client.send(
        common_pb2.Conversation(room=room), {d: body for d in devices}, client_id
    )
