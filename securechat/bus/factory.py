"""Pick the Bus adapter from its URL."""

from __future__ import annotations

from securechat.bus.memory import MemoryBus
from securechat.bus.port import Bus
from securechat.errors import ConfigError


def open_bus(url: str, node: str) -> Bus:
    if url == "memory:":
        return MemoryBus(node)
    if url.startswith(("redis://", "rediss://")):
        from securechat.bus.redis import RedisBus  # type: ignore[import-not-found,import-untyped,unused-ignore]

        return RedisBus(url, node)  # type: ignore[no-any-return,unused-ignore]
    raise ConfigError("bus.url", f"unsupported bus {url!r}: use memory: or redis://HOST:PORT")
