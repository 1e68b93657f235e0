"""RoomService: create, join, leave, list rooms and members."""

from __future__ import annotations

from securechat.domain.sources import source_key
from securechat.services.rooms import Rooms
from securechat.transport.convert import room_to_proto
from securechat.transport.rpc import Call
from securechat_proto.v1 import rooms_pb2


class RoomServicer:
    def __init__(self, rooms: Rooms) -> None:
        self.rooms = rooms

    async def CreateRoom(
        self, request: rooms_pb2.CreateRoomRequest, call: Call
    ) -> rooms_pb2.CreateRoomResponse:
        room = await self.rooms.create(
            request.name, request.password, call.user, source_key(call.peer), request.listed
        )
        return rooms_pb2.CreateRoomResponse(room=room_to_proto(room))

    async def JoinRoom(
        self, request: rooms_pb2.JoinRoomRequest, call: Call
    ) -> rooms_pb2.JoinRoomResponse:
        room = await self.rooms.join(
            request.name, request.password, call.user, source_key(call.peer)
        )
        return rooms_pb2.JoinRoomResponse(room=room_to_proto(room))

    async def LeaveRoom(
        self, request: rooms_pb2.LeaveRoomRequest, call: Call
    ) -> rooms_pb2.LeaveRoomResponse:
        await self.rooms.leave(request.name, call.user)
        return rooms_pb2.LeaveRoomResponse()

    async def ListRooms(
        self, request: rooms_pb2.ListRoomsRequest, call: Call
    ) -> rooms_pb2.ListRoomsResponse:
        rooms, next_token = await self.rooms.list(call.user, request.page_size, request.page_token)
        return rooms_pb2.ListRoomsResponse(
            rooms=[room_to_proto(r) for r in rooms], next_page_token=next_token
        )

    async def ListMembers(
        self, request: rooms_pb2.ListMembersRequest, call: Call
    ) -> rooms_pb2.ListMembersResponse:
        members = await self.rooms.members(request.name, call.user)
        return rooms_pb2.ListMembersResponse(
            members=[
                rooms_pb2.Member(user=m.user, device_ids=m.device_ids, online=m.online)
                for m in members
            ]
        )
