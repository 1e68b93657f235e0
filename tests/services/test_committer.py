"""Group commit: concurrent sends share a transaction; one bad send fails alone."""

from __future__ import annotations

import asyncio

import pytest

from securechat.domain.model import (
    Conversation,
    ConversationKind,
    DeviceRef,
    OutgoingCiphertext,
    PendingSend,
    Role,
)
from securechat.errors import NotFound
from securechat.services.committer import GroupCommitter
from securechat.storage.memory import MemoryStore

ROOM = Conversation(ConversationKind.ROOM, "lobby")


def send(message_id: str, recipient: DeviceRef) -> PendingSend:
    item = OutgoingCiphertext(recipient, message_id.encode(), ROOM)
    return PendingSend(message_id, DeviceRef("alice", 1), 1, (item,))


@pytest.fixture
async def store() -> MemoryStore:
    store = MemoryStore()
    await store.open()
    for user in ("alice", "bob"):
        await store.create_user(user, b"$2b$hash", Role.USER, 1)
        await store.add_device(user, 1)
    return store


async def test_concurrent_sends_are_committed_together_in_order(store: MemoryStore) -> None:
    committer = GroupCommitter(store)
    bob = DeviceRef("bob", 1)
    futures = [committer.submit(send(f"m{i}", bob)) for i in range(10)]
    results = await asyncio.gather(*futures)
    assert [r.entries[0].seq for r in results] == list(range(1, 11))
    # All ten were queued before the commit task first ran: one transaction for all of them.
    assert committer.commits == 1
    assert committer.sends == 10


async def test_a_failing_send_does_not_fail_the_others(store: MemoryStore) -> None:
    committer = GroupCommitter(store)
    bob, ghost = DeviceRef("bob", 1), DeviceRef("ghost", 1)
    first = committer.submit(send("m0", bob))
    good = committer.submit(send("m1", bob))
    bad = committer.submit(send("m2", ghost))
    also_good = committer.submit(send("m3", bob))
    assert (await first).entries[0].seq == 1
    assert (await good).entries[0].seq == 2
    with pytest.raises(NotFound):
        await bad
    assert (await also_good).entries[0].seq == 3
    stored = await store.fetch(bob, 0, 10)
    assert [e.message_id for e in stored] == ["m0", "m1", "m3"]
