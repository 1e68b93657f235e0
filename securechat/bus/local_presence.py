"""Who is connected to this node: per-device connection counts and per-user device counts.

Both Bus adapters keep this; the in-process bus answers from it alone, the Redis bus uses it
to re-register its devices after a reconnect and to answer while Redis is away.
"""

from __future__ import annotations

from securechat.domain.model import DeviceRef


class LocalPresence:
    def __init__(self) -> None:
        self._connections: dict[DeviceRef, int] = {}
        self.since: dict[DeviceRef, int] = {}
        self._devices_of: dict[str, int] = {}

    def add(self, device: DeviceRef, since_ms: int) -> tuple[bool, bool]:
        """Count a connection; (device newly online here, user newly online here)."""
        count = self._connections.get(device, 0)
        self._connections[device] = count + 1
        if count:
            return False, False
        self.since[device] = since_ms
        devices = self._devices_of.get(device.user, 0)
        self._devices_of[device.user] = devices + 1
        return True, devices == 0

    def remove(self, device: DeviceRef) -> tuple[bool, bool]:
        """Drop a connection; (device now offline here, user now offline here)."""
        count = self._connections.get(device, 0)
        if count > 1:
            self._connections[device] = count - 1
            return False, False
        if count == 0:
            return False, False
        del self._connections[device]
        del self.since[device]
        devices = self._devices_of[device.user] - 1
        if devices:
            self._devices_of[device.user] = devices
            return True, False
        del self._devices_of[device.user]
        return True, True
