"""The hub when the Chat handler that attaches or detaches a stream is cancelled (the client
went away): the registration is neither left behind nor half undone."""

from __future__ import annotations

import asyncio
import logging

import pytest

from securechat.bus.memory import MemoryBus
from securechat.domain.events import BusEvent, PresenceChanged
from securechat.domain.model import DeviceRef, Role
from securechat.services.clock import SystemClock
from securechat.services.directory import Directory
from securechat.services.hub import Hub
from securechat.services.stream import StreamSession
from securechat.storage.memory import MemoryStore
from tests.services.test_stream import BOB, stream


class GatedStore(MemoryStore):
    """The presence audience's read waits for a gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.reads = 0

    async def private_contacts_of(self, user: str) -> set[str]:
        self.reads += 1
        await self.gate.wait()
        return await super().private_contacts_of(user)


async def hub_on(store: GatedStore) -> tuple[Hub, MemoryBus, list[BusEvent]]:
    bus = MemoryBus()
    hub = Hub(bus, SystemClock(), Directory(store), room_limit=50)
    published: list[BusEvent] = []
    await bus.start(published.append)
    await store.create_user("bob", b"h", Role.USER, 1)
    return hub, bus, published


async def attached(store: GatedStore) -> tuple[Hub, MemoryBus, list[BusEvent], StreamSession]:
    """A hub with bob's stream attached; the next presence read waits for the gate."""
    hub, bus, published = await hub_on(store)
    store.gate.set()
    session = stream(store)
    await hub.attach(session)
    store.gate.clear()
    return hub, bus, published, session


async def cancel_in_the_read(store: GatedStore, call: asyncio.Task[None]) -> None:
    reads = store.reads
    while store.reads == reads:
        await asyncio.sleep(0)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call


async def cancelled_in_the_read(store: GatedStore, call: asyncio.Task[None]) -> None:
    await cancel_in_the_read(store, call)
    store.gate.set()
    for _ in range(10):
        await asyncio.sleep(0)


async def test_a_detach_cancelled_in_its_presence_read_still_tells_the_contacts() -> None:
    store = GatedStore()
    hub, bus, published, session = await attached(store)
    await cancelled_in_the_read(store, asyncio.create_task(hub.detach(session)))
    assert BOB not in hub.streams and not await bus.online()
    offline = [e for e in published if isinstance(e, PresenceChanged) and not e.online]
    assert [e.user for e in offline] == ["bob"]


async def test_an_attach_cancelled_in_its_presence_read_is_undone() -> None:
    store = GatedStore()
    hub, bus, published = await hub_on(store)
    session = stream(store)
    await cancelled_in_the_read(store, asyncio.create_task(hub.attach(session)))
    assert BOB not in hub.streams and "bob" not in hub.by_user
    assert DeviceRef("bob", 1) not in {entry.device for entry in await bus.online()}
    changes = [(e.user, e.online) for e in published if isinstance(e, PresenceChanged)]
    assert changes == [("bob", True), ("bob", False)]  # its contacts saw it come and go


async def test_a_detach_left_to_finish_alone_logs_its_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = GatedStore()
    hub, bus, _, session = await attached(store)

    async def failing_publish(event: BusEvent) -> None:
        raise RuntimeError("the bus is down")

    bus.publish = failing_publish  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="securechat.hub"):
        await cancelled_in_the_read(store, asyncio.create_task(hub.detach(session)))
    assert BOB not in hub.streams
    assert [r.getMessage() for r in caplog.records] == ["a stream's detach failed"]
    assert not hub._finishing  # nothing held once it ended


async def test_drain_waits_for_a_detach_left_to_finish_alone() -> None:
    """At shutdown the node drains the hub before it closes the bus and the store."""
    store = GatedStore()
    hub, _, published, session = await attached(store)
    await cancel_in_the_read(store, asyncio.create_task(hub.detach(session)))
    draining = asyncio.create_task(hub.drain())
    for _ in range(10):
        await asyncio.sleep(0)
    assert not draining.done()  # the presence read still waits
    store.gate.set()
    await asyncio.wait_for(draining, 5)
    assert not hub._finishing
    assert [(e.user, e.online) for e in published if isinstance(e, PresenceChanged)] == [
        ("bob", True),
        ("bob", False),
    ]
