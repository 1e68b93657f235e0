"""The in-process Bus: one node, events delivered synchronously to the local handler."""

from __future__ import annotations

from securechat.bus.port import EventHandler
from securechat.domain.events import BusEvent, OnlineDevice
from securechat.domain.model import DeviceRef


class MemoryBus:
    def __init__(self, node: str = "local") -> None:
        self.node = node
        self._handler: EventHandler | None = None
        self._since: dict[DeviceRef, int] = {}
        self._connections: dict[DeviceRef, int] = {}
        self._devices_online: dict[str, int] = {}  # user -> connected device count

    async def start(self, handler: EventHandler) -> None:
        self._handler = handler

    async def publish(self, event: BusEvent) -> None:
        if self._handler is not None:
            self._handler(event)

    async def close(self) -> None:
        self._handler = None

    async def mark_online(self, device: DeviceRef, since_ms: int) -> bool:
        count = self._connections.get(device, 0)
        self._connections[device] = count + 1
        if count:
            return False
        self._since[device] = since_ms
        devices = self._devices_online.get(device.user, 0)
        self._devices_online[device.user] = devices + 1
        return devices == 0

    async def mark_offline(self, device: DeviceRef) -> bool:
        count = self._connections.get(device, 0)
        if count > 1:
            self._connections[device] = count - 1
            return False
        if count == 0:
            return False
        del self._connections[device]
        del self._since[device]
        devices = self._devices_online[device.user] - 1
        if devices:
            self._devices_online[device.user] = devices
            return False
        del self._devices_online[device.user]
        return True

    async def online(self) -> list[OnlineDevice]:
        return [OnlineDevice(d, self.node, since) for d, since in self._since.items()]
