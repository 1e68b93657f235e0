"""RoomService: create, join, leave, list rooms and members, change and read signed rosters."""

from __future__ import annotations

from securechat.domain import names
from securechat.domain.sources import source_key
from securechat.services.rooms import Rooms
from securechat.transport import fields
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
            request.name,
            request.password,
            call.user,
            source_key(call.peer),
            request.listed,
            request.create_event,
        )
        return rooms_pb2.CreateRoomResponse(room=room_to_proto(room))

    async def JoinRoom(
        self, request: rooms_pb2.JoinRoomRequest, call: Call
    ) -> rooms_pb2.JoinRoomResponse:
        room = await self.rooms.join(
            request.name, request.password, call.user, source_key(call.peer), request.join_event
        )
        return rooms_pb2.JoinRoomResponse(room=room_to_proto(room))

    async def LeaveRoom(
        self, request: rooms_pb2.LeaveRoomRequest, call: Call
    ) -> rooms_pb2.LeaveRoomResponse:
        await self.rooms.leave(request.name, call.user, request.leave_event)
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

    async def ChangeRoster(
        self, request: rooms_pb2.ChangeRosterRequest, call: Call
    ) -> rooms_pb2.ChangeRosterResponse:
        sequence = await self.rooms.change_roster(
            request.name, request.event, call.user, request.password, source_key(call.peer)
        )
        return rooms_pb2.ChangeRosterResponse(sequence=sequence)

    async def GetRoster(
        self, request: rooms_pb2.GetRosterRequest, call: Call
    ) -> rooms_pb2.GetRosterResponse:
        names.check_name(request.name, what="room name")
        start = fields.seq(request.from_sequence, "from_sequence")
        events, length = await self.rooms.roster(request.name, start, request.limit)
        return rooms_pb2.GetRosterResponse(events=events, next_sequence=length)
