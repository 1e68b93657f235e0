"""The in-process Bus: one node, events delivered synchronously to the local handler."""

from __future__ import annotations

from securechat.bus.local_presence import LocalPresence
from securechat.bus.port import EventHandler
from securechat.domain.events import BusEvent, OnlineDevice
from securechat.domain.model import DeviceRef


class MemoryBus:
    def __init__(self, node: str = "local") -> None:
        self.node = node
        self._handler: EventHandler | None = None
        self._presence = LocalPresence()

    async def start(self, handler: EventHandler) -> None:
        self._handler = handler

    async def publish(self, event: BusEvent) -> None:
        if self._handler is not None:
            self._handler(event)

    async def close(self) -> None:
        self._handler = None

    async def mark_online(self, device: DeviceRef, since_ms: int) -> bool:
        return self._presence.add(device, since_ms)[1]

    async def mark_offline(self, device: DeviceRef) -> bool:
        return self._presence.remove(device)[1]

    async def online(self) -> list[OnlineDevice]:
        return [OnlineDevice(d, self.node, since) for d, since in self._presence.since.items()]
