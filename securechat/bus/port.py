"""The Bus port: best-effort live notifications and a shared view of who is online.

Pub/sub is treated as lossy: the mailbox is the source of truth, so a lost Delivered event only
delays delivery (the stream detects the sequence gap and fetches).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from securechat.domain.events import BusEvent, OnlineDevice
from securechat.domain.model import DeviceRef

EventHandler = Callable[[BusEvent], None]


class Bus(Protocol):
    node: str

    async def start(self, handler: EventHandler) -> None:
        """Begin delivering every published event (from any node, this one included)."""

    async def publish(self, event: BusEvent) -> None: ...

    async def close(self) -> None: ...

    async def mark_online(self, device: DeviceRef, since_ms: int) -> bool:
        """Record a connected device on this node; True when its user just came online."""

    async def mark_offline(self, device: DeviceRef) -> bool:
        """Forget a device on this node; True when its user just went offline everywhere."""

    async def online(self) -> list[OnlineDevice]:
        """Every connected device on every node."""
