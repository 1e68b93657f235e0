"""The live hub of one node: which devices have a stream here, and routing bus events to them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from securechat.bus.port import Bus
from securechat.domain.events import (
    BusEvent,
    CertificateRevoked,
    Delivered,
    DeviceRemoved,
    MembershipChanged,
    MembershipKind,
    PresenceChanged,
    Resync,
    RoomPosted,
    RosterAppended,
    SessionEnded,
    UserKicked,
)
from securechat.domain.model import DeviceRef
from securechat.errors import Kicked, LoggedOut, RevokedCertificate, ShuttingDown, StreamReplaced
from securechat.services.clock import Clock
from securechat.services.directory import Directory
from securechat.services.stream import StreamSession
from securechat.services.stream_events import ReconnectHint

log = logging.getLogger("securechat.hub")

DEVICE_REMOVED = (
    "this device was removed from your account (from another of your devices): it receives "
    "nothing any more; link it again to use it"
)


class Hub:
    def __init__(self, bus: Bus, clock: Clock, directory: Directory, room_limit: int) -> None:
        self.bus = bus
        self.clock = clock
        self.directory = directory
        self.room_limit = room_limit
        self.streams: dict[DeviceRef, StreamSession] = {}
        self.by_user: dict[str, set[DeviceRef]] = {}
        # Which local streams follow which room's log (room messages are routed by room).
        self.by_room: dict[str, set[DeviceRef]] = {}
        self._finishing: set[asyncio.Task[None]] = set()  # attaches and detaches left to finish

    # ---- streams coming and going -----------------------------------------------------------
    # The Chat handler of a client that goes away is cancelled, also while it attaches or
    # detaches its stream (both await the presence audience's read). Neither is left half done:
    # a cancelled detach finishes on its own (the device's contacts see it go offline), and a
    # stream whose attach was cancelled is detached once registered (its caller never will).
    async def attach(self, stream: StreamSession) -> None:
        """Register a stream; a previous stream of the same device ends (StreamReplaced)."""
        await self._whole(self._attach(stream), "attach", then=lambda: self._undo(stream))

    async def detach(self, stream: StreamSession) -> None:
        if self.streams.get(stream.device) is stream:
            await self._whole(self._forget(stream), "detach")

    async def _whole(
        self,
        work: Coroutine[Any, Any, None],
        what: str,
        then: Callable[[], None] | None = None,
    ) -> None:
        """Run ``work`` in its own task: a cancelled caller leaves it to finish alone."""
        task = asyncio.ensure_future(work)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            self._finish_alone(task, what, then)
            raise

    async def drain(self) -> None:
        """Wait for the attaches and detaches left to finish on their own (at shutdown, before
        the bus and the store close under them)."""
        while self._finishing:
            await asyncio.gather(*self._finishing, return_exceptions=True)

    def _undo(self, stream: StreamSession) -> None:
        self._finish_alone(asyncio.ensure_future(self.detach(stream)), "undone attach")

    def _finish_alone(
        self, task: asyncio.Task[None], what: str, then: Callable[[], None] | None = None
    ) -> None:
        """Hold a task its caller stopped waiting for until it ends, log its failure, then run
        ``then``."""
        self._finishing.add(task)

        def done(_: asyncio.Task[None]) -> None:
            self._finishing.discard(task)
            if not task.cancelled() and (failure := task.exception()) is not None:
                log.error("a stream's %s failed", what, exc_info=failure)
            if then is not None:
                then()

        task.add_done_callback(done)

    async def _attach(self, stream: StreamSession) -> None:
        previous = self.streams.get(stream.device)
        if previous is not None:
            previous.end(StreamReplaced())
            await self._forget(previous)
        self.streams[stream.device] = stream
        self.by_user.setdefault(stream.device.user, set()).add(stream.device)
        for room in stream.rooms:
            self.by_room.setdefault(room, set()).add(stream.device)
        if await self.bus.mark_online(stream.device, stream.connected_ms):
            await self._presence(stream.device.user, online=True)

    async def _forget(self, stream: StreamSession) -> None:
        del self.streams[stream.device]
        for room in stream.followed_rooms():
            self._unroute(room, stream.device)
        devices = self.by_user.get(stream.device.user)
        if devices is not None:
            devices.discard(stream.device)
            if not devices:
                del self.by_user[stream.device.user]
        if await self.bus.mark_offline(stream.device):
            await self._presence(stream.device.user, online=False)

    async def _presence(self, user: str, *, online: bool) -> None:
        audience = tuple(sorted(await self.directory.presence_audience(user, self.room_limit)))
        await self.bus.publish(PresenceChanged(user, online, self.clock.now_ms(), audience))

    def _unroute(self, room: str, device: DeviceRef) -> None:
        followers = self.by_room.get(room)
        if followers is not None:
            followers.discard(device)
            if not followers:
                del self.by_room[room]

    def _joined(self, room: str, user: str) -> None:
        for device in self.by_user.get(user, ()):
            self.streams[device].join_room(room)
            self.by_room.setdefault(room, set()).add(device)

    def _left(self, room: str, user: str) -> None:
        for device in self.by_user.get(user, ()):
            self.streams[device].leave_room(room)
            self._unroute(room, device)

    def _roster(self, event: RosterAppended) -> None:
        for user in event.joined:
            self._joined(event.room, user)
        for user in event.left:
            self._left(event.room, user)
        for user in event.audience:
            for device in self.by_user.get(user, ()):
                self.streams[device].notify(event)

    # ---- bus events -----------------------------------------------------------------------
    def handle(self, event: BusEvent) -> None:
        """Route one bus event to the local streams it concerns (never blocks)."""
        if isinstance(event, Delivered):
            for entry in event.entries:
                stream = self.streams.get(entry.recipient)
                if stream is not None:
                    stream.deliver(entry)
        elif isinstance(event, RoomPosted):
            for device in self.by_room.get(event.entry.room, ()):
                self.streams[device].deliver_room(event.entry)
        elif isinstance(event, RosterAppended):
            self._roster(event)
        elif isinstance(event, PresenceChanged | MembershipChanged):
            if isinstance(event, MembershipChanged) and event.room:
                if event.kind is MembershipKind.JOINED:
                    self._joined(event.room, event.user)
                elif event.kind is MembershipKind.LEFT:
                    self._left(event.room, event.user)
            for user in event.audience:
                if isinstance(event, PresenceChanged) and user == event.user:
                    continue
                for device in self.by_user.get(user, ()):
                    self.streams[device].notify(event)
        elif isinstance(event, UserKicked):
            for device in list(self.by_user.get(event.user, ())):
                self.streams[device].end(Kicked(event.reason))
        elif isinstance(event, DeviceRemoved):
            stream = self.streams.get(event.device)
            if stream is not None:
                stream.end(Kicked(DEVICE_REMOVED))
        elif isinstance(event, SessionEnded):
            for stream in list(self.streams.values()):
                if stream.session.token_hash == event.token_hash:
                    stream.end(LoggedOut())
        elif isinstance(event, CertificateRevoked):
            self.end_revoked({event.fingerprint} - {""}, {event.serial_hex} - {""})
        elif isinstance(event, Resync):
            for stream in self.streams.values():
                stream.catch_up()

    def end_revoked(self, fingerprints: set[str], serials: set[str]) -> int:
        ended = 0
        for stream in list(self.streams.values()):
            cert = stream.certificate
            if cert.fingerprint in fingerprints or cert.serial_hex in serials:
                stream.end(RevokedCertificate())
                ended += 1
        return ended

    def reconnect_all(self, retry_after_ms: int, reason: str) -> None:
        """Graceful shutdown: every stream gets a reconnect hint, then ends with ShuttingDown
        (its writer still flushes the hint)."""
        hint = ReconnectHint(retry_after_ms, reason)
        for stream in list(self.streams.values()):
            stream.notify(hint)
            stream.end(ShuttingDown(reason, retry_after=retry_after_ms / 1000))
