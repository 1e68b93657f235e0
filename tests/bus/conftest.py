"""Fixtures for the Bus contract suite: ``nodes`` builds started buses of one adapter.

The same tests run on the in-process MemoryBus and on RedisBus (the shared Redis on
127.0.0.1:6379, a fresh key prefix per test). MemoryBus is one node by design: tests that need
two nodes skip it, saying so.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from securechat.bus.memory import MemoryBus
from securechat.bus.port import Bus
from securechat.bus.redis import RedisBus
from securechat.domain.events import BusEvent
from tests.bus.redis_server import shared_redis_url


@dataclass
class Node:
    bus: Bus
    events: list[BusEvent] = field(default_factory=list)


NodeFactory = Callable[..., Awaitable[Node]]


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll until check() holds (the bus is asynchronous across nodes)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def bus_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def nodes(bus_kind: str) -> AsyncIterator[NodeFactory]:
    """nodes(name, url=None) -> a started Node; every node of a test shares one channel."""
    url = shared_redis_url() if bus_kind == "redis" else "memory:"
    made: list[Node] = []

    async def make(name: str = "n1", *, url_override: str | None = None) -> Node:
        if bus_kind == "memory":
            if made:
                pytest.skip("MemoryBus is a single in-process node: no second node to reach")
            bus: Bus = MemoryBus(name)
        else:
            bus = RedisBus(url_override or url, name)
        node = Node(bus)
        await bus.start(node.events.append)
        made.append(node)
        return node

    yield make
    for node in made:
        await node.bus.close()
