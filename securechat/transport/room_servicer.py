"""RoomService: create, join, leave, list rooms and members."""

from __future__ import annotations

from securechat.bus.port import Bus
from securechat.services.rooms import Rooms
from securechat.storage.port import Store
from securechat.transport.convert import room_to_proto
from securechat.transport.rpc import Call
from securechat_proto.v1 import rooms_pb2


class RoomServicer:
    def __init__(self, rooms: Rooms, store: Store, bus: Bus) -> None:
        self.rooms = rooms
        self.store = store
        self.bus = bus

    async def CreateRoom(
        self, request: rooms_pb2.CreateRoomRequest, call: Call
    ) -> rooms_pb2.CreateRoomResponse:
        room = await self.rooms.create(request.name, request.password, call.user)
        return rooms_pb2.CreateRoomResponse(room=room_to_proto(room))

    async def JoinRoom(
        self, request: rooms_pb2.JoinRoomRequest, call: Call
    ) -> rooms_pb2.JoinRoomResponse:
        room = await self.rooms.join(request.name, request.password, call.user)
        return rooms_pb2.JoinRoomResponse(room=room_to_proto(room))

    async def LeaveRoom(
        self, request: rooms_pb2.LeaveRoomRequest, call: Call
    ) -> rooms_pb2.LeaveRoomResponse:
        await self.rooms.leave(request.name, call.user)
        return rooms_pb2.LeaveRoomResponse()

    async def ListRooms(
        self, request: rooms_pb2.ListRoomsRequest, call: Call
    ) -> rooms_pb2.ListRoomsResponse:
        rooms = await self.rooms.list(call.user)
        return rooms_pb2.ListRoomsResponse(rooms=[room_to_proto(r) for r in rooms])

    async def ListMembers(
        self, request: rooms_pb2.ListMembersRequest, call: Call
    ) -> rooms_pb2.ListMembersResponse:
        await self.rooms.require_member(request.name, call.user)
        directory = self.rooms.directory
        devices = await directory.room_devices(request.name)
        online_users = {d.device.user for d in await self.bus.online()}
        members: dict[str, list[int]] = {u: [] for u in await directory.members(request.name)}
        for device in devices:
            members.setdefault(device.user, []).append(device.device_id)
        return rooms_pb2.ListMembersResponse(
            members=[
                rooms_pb2.Member(user=user, device_ids=ids, online=user in online_users)
                for user, ids in sorted(members.items())
            ]
        )
