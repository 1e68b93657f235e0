"""Acks from many streams are written together; a later ack supersedes an earlier one."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from securechat.domain.model import (
    Conversation,
    ConversationKind,
    DeviceRef,
    OutgoingCiphertext,
    Role,
)
from securechat.services.acks import AckBatcher
from securechat.storage.memory import MemoryStore

ROOM = Conversation(ConversationKind.ROOM, "lobby")


async def _three_devices() -> tuple[MemoryStore, list[DeviceRef]]:
    """A store with alice, bob and carol, one device each."""
    store = MemoryStore()
    await store.open()
    devices = []
    for user in ("alice", "bob", "carol"):
        await store.create_user(user, b"$2b$x", Role.USER, 1)
        devices.append(DeviceRef(user, await store.add_device(user, 1)))
    return store, devices


async def test_acks_of_many_devices_go_in_one_round() -> None:
    store, devices = await _three_devices()
    for i in range(4):
        items = [OutgoingCiphertext(d, b"x", ROOM) for d in devices]
        await store.enqueue(f"m{i}", devices[0], 1, items)
    batcher = AckBatcher(store)
    batcher.ack(devices[1], 2)
    batcher.ack(devices[1], 3)
    batcher.ack(devices[1], 1)  # an older ack never moves the mark back
    batcher.ack(devices[2], 4)
    await batcher.drain()
    assert batcher.rounds == 1
    assert [e.seq for e in await store.fetch(devices[1], 0, 10)] == [4]
    assert await store.fetch(devices[2], 0, 10) == []
    assert len(await store.fetch(devices[0], 0, 10)) == 4


async def test_acks_that_keep_coming_wait_for_the_next_round() -> None:
    loop = asyncio.get_running_loop()
    rounds: list[tuple[float, list[tuple[DeviceRef, int]]]] = []

    class Recording(MemoryStore):
        async def ack_many(
            self, acks: Sequence[tuple[DeviceRef, int]], limit: int = 0
        ) -> list[tuple[DeviceRef, int]]:
            rounds.append((loop.time(), list(acks)))
            return []

    batcher = AckBatcher(Recording(), interval_s=0.05)
    bob, carol = DeviceRef("bob", 1), DeviceRef("carol", 1)
    batcher.ack(bob, 1)  # a first ack is written at once
    await asyncio.sleep(0)
    batcher.ack(bob, 2)  # these two arrive during the round: one more round, not two
    batcher.ack(carol, 5)
    await batcher.drain()

    assert [acks for _, acks in rounds] == [[(bob, 1)], [(bob, 2), (carol, 5)]]
    assert rounds[1][0] - rounds[0][0] >= 0.05
    started = loop.time()
    batcher.ack(carol, 6)  # right after a round: waits for the next one
    await batcher.drain()
    assert rounds[2][0] - rounds[1][0] >= 0.05 and rounds[2][0] > started


async def test_a_round_deletes_at_most_round_rows_and_the_rest_waits_for_the_next() -> None:
    """A device that acks a whole mailbox at once does not hold the store's writer for one long
    delete: each round deletes at most ``round_rows`` entries, the rest of the ack waits for
    the next round (with the other devices' acks), until all of it is deleted."""
    store, devices = await _three_devices()
    alice, bob, carol = devices
    for i in range(7):
        await store.enqueue(f"m{i}", alice, 1, [OutgoingCiphertext(bob, b"x", ROOM)])
    await store.enqueue("c", alice, 1, [OutgoingCiphertext(carol, b"x", ROOM)])
    deleted: list[int] = []
    ack_many = store.ack_many

    async def counted(
        acks: Sequence[tuple[DeviceRef, int]], limit: int = 0
    ) -> list[tuple[DeviceRef, int]]:
        before = await store.pending_count(bob, 0) + await store.pending_count(carol, 0)
        rest = await ack_many(acks, limit)
        deleted.append(
            before - await store.pending_count(bob, 0) - await store.pending_count(carol, 0)
        )
        return rest

    store.ack_many = counted  # type: ignore[method-assign]
    batcher = AckBatcher(store, interval_s=0.01, round_rows=3)
    batcher.ack(bob, 7)
    batcher.ack(carol, 1)
    await batcher.drain()
    assert deleted == [3, 3, 2]  # bob's 3, bob's next 3, bob's last and carol's
    assert batcher.rounds == 3
    assert await store.fetch(bob, 0, 10) == [] and await store.fetch(carol, 0, 10) == []
