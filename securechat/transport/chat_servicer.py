"""ChatService: the Chat stream's frames to and from the service (services/chat.py), and the
unary calls."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Iterable

from securechat.errors import InvalidArgument
from securechat.services.chat import ChatService
from securechat.services.stream import StreamSession
from securechat.services.stream_events import OutEvent, SendRejected
from securechat.transport import convert, fields
from securechat.transport.rpc import Call
from securechat_proto.v1 import chat_pb2


def _positions(positions: Iterable[chat_pb2.RoomPosition], field: str) -> list[tuple[str, int]]:
    """Room positions as (room, room_seq); a room named twice or without a name is refused."""
    found: list[tuple[str, int]] = []
    named: set[str] = set()
    for position in positions:
        if not position.room or position.room in named:
            raise InvalidArgument(f"{field}: every position names a room, each room once")
        named.add(position.room)
        found.append((position.room, fields.seq(position.room_seq, f"{field}.room_seq")))
    return found


class ChatServicer:
    """Also the stream's FrameCodec: it reads client frames and encodes server frames."""

    def __init__(self, chat: ChatService) -> None:
        self.chat = chat

    async def Chat(self, requests: AsyncIterator[chat_pb2.ClientFrame], call: Call) -> None:
        assert call.session is not None
        await self.chat.serve(
            call.session, call.peer, call.certificate, requests, self, call.context.write
        )

    # ---- the stream's frames (services.chat.FrameCodec) -----------------------------------
    def opening(self, frame: chat_pb2.ClientFrame) -> tuple[int, int, dict[str, int]]:
        if frame.WhichOneof("frame") != "open":
            raise InvalidArgument("the first frame of a Chat stream must be `open`")
        opening = frame.open
        return (
            fields.device_id(opening.device_id, "open.device_id"),
            fields.seq(opening.resume_after_seq, "open.resume_after_seq"),
            dict(_positions(opening.resume_rooms, "open.resume_rooms")),
        )

    def handle(self, stream: StreamSession, frame: chat_pb2.ClientFrame) -> Awaitable[None] | None:
        kind = frame.WhichOneof("frame")
        if kind == "send":
            try:
                send = convert.send_from_proto(frame.send)
            except InvalidArgument as error:  # refused like any bad send: the stream goes on
                stream.notify(SendRejected(frame.send.client_message_id, error))
                return None
            return self.chat.send_on(stream, *send)
        if kind == "ack":
            rooms = _positions(frame.ack.rooms, "ack.rooms")
            self.chat.ack_on(stream, fields.seq(frame.ack.seq, "ack.seq"), rooms)
        elif kind == "ping":
            self.chat.ping(stream, frame.ping.client_time_ms)
        elif kind == "open":
            raise InvalidArgument("the stream is already open: send `open` only once")
        else:
            raise InvalidArgument("empty frame: set one of open, send, ack or ping")
        return None

    def encode(self, batch: list[OutEvent]) -> bytes:
        return convert.encode_frame(batch)

    # ---- unary calls ----------------------------------------------------------------------
    async def Send(self, request: chat_pb2.SendRequest, call: Call) -> chat_pb2.SendResult:
        outcome = await self.chat.send(call.device, *convert.send_from_proto(request))
        return convert.send_result(outcome)

    async def Fetch(self, request: chat_pb2.FetchRequest, call: Call) -> chat_pb2.FetchResponse:
        after_seq = fields.seq(request.after_seq, "after_seq")
        entries = await self.chat.fetch(call.device, after_seq, request.limit)
        return chat_pb2.FetchResponse(
            deliveries=[convert.any_delivery_to_proto(e) for e in entries]
        )

    async def Ack(self, request: chat_pb2.AckRequest, call: Call) -> chat_pb2.AckResponse:
        rooms = _positions(request.rooms, "rooms")
        await self.chat.ack(call.device, fields.seq(request.seq, "seq"), rooms)
        return chat_pb2.AckResponse()

    async def ListOnline(
        self, request: chat_pb2.ListOnlineRequest, call: Call
    ) -> chat_pb2.ListOnlineResponse:
        assert call.session is not None
        online = await self.chat.online(call.session)
        return chat_pb2.ListOnlineResponse(
            users=[
                chat_pb2.OnlineUser(user=u.user, since_ms=u.since_ms, device_ids=u.device_ids)
                for u in online
            ]
        )
