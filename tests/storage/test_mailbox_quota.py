"""The Store contract for quotas, usage, send deduplication and byte-bounded pages: every adapter
(memory, SQLite, PostgreSQL) must pass every test here."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from securechat.domain.mailbox import NO_LIMITS, MailboxLimits, Usage
from securechat.domain.model import (
    Conversation,
    ConversationKind,
    DeviceRef,
    OutgoingCiphertext,
    PendingSend,
    Role,
)
from securechat.errors import NotFound
from securechat.storage.migrations import LATEST_VERSION
from securechat.storage.port import Store

if TYPE_CHECKING:
    from conftest import Backend

ALICE1, BOB1, BOB2, CAROL1, DAVE1 = (
    DeviceRef("alice", 1),
    DeviceRef("bob", 1),
    DeviceRef("bob", 2),
    DeviceRef("carol", 1),
    DeviceRef("dave", 1),
)
ROOM = Conversation(ConversationKind.ROOM, "lobby")


async def _people(store: Store, *names: str) -> None:
    for name in names:
        await store.create_user(name, b"hash", Role.USER, 1_000)
        await store.add_device(name, 1_000)
        if name == "bob":
            await store.add_device(name, 1_000)


def _send(
    message_id: str, sender: DeviceRef, to: list[DeviceRef], size: int = 10, client_id: str = ""
) -> PendingSend:
    items = tuple(OutgoingCiphertext(d, b"x" * size, ROOM) for d in to)
    return PendingSend(message_id, sender, 100, items, client_id)


async def _commit(store: Store, *sends: PendingSend, limits: MailboxLimits = NO_LIMITS) -> list:  # type: ignore[type-arg]
    return await store.commit_sends(list(sends), limits, 0)


# ---- usage ------------------------------------------------------------------------------------
async def test_usage_follows_commits_acks_and_expiry(store: Store) -> None:
    await _people(store, "alice", "bob", "carol")
    assert await store.mailbox_usage(BOB1) == Usage(0, 0)
    await _commit(store, _send("m1", ALICE1, [BOB1, BOB2], 10), _send("m2", CAROL1, [BOB1], 5))
    await _commit(store, _send("m3", ALICE1, [BOB1], 7))
    assert await store.mailbox_usage(BOB1) == Usage(3, 22)
    assert await store.mailbox_usage(BOB2) == Usage(1, 10)
    await store.ack(BOB1, 1)
    assert await store.mailbox_usage(BOB1) == Usage(2, 12)
    await store.ack_many([(BOB1, 3), (BOB2, 1), (DeviceRef("ghost", 1), 4)])
    assert await store.mailbox_usage(BOB1) == Usage(0, 0)
    assert await store.mailbox_usage(BOB2) == Usage(0, 0)
    await store.ack_many([(BOB1, 3)])  # nothing left: changes nothing
    assert await store.mailbox_usage(BOB1) == Usage(0, 0)

    await store.enqueue("old", ALICE1, 50, [OutgoingCiphertext(BOB1, b"o" * 4, ROOM)])
    await store.enqueue("new", ALICE1, 500, [OutgoingCiphertext(BOB1, b"n" * 6, ROOM)])
    assert await store.expire_messages(100) == 1
    assert await store.mailbox_usage(BOB1) == Usage(1, 6)


async def test_removing_a_device_forgets_its_usage_and_records(store: Store) -> None:
    await _people(store, "alice", "bob")
    await _commit(store, _send("m1", ALICE1, [BOB2], 10), _send("m2", BOB2, [ALICE1], 3, "b-1"))
    assert await store.remove_device(BOB2)
    assert await store.mailbox_usage(BOB2) == Usage(0, 0)
    assert await store.prune_sent(0, 1000) == 0  # bob/2's record went with the device


# ---- quotas -----------------------------------------------------------------------------------
async def test_a_full_device_is_skipped_and_the_send_goes_to_the_others(store: Store) -> None:
    await _people(store, "alice", "bob", "carol")
    limits = MailboxLimits(max_entries=2, max_bytes=1000)
    for n in range(2):
        await _commit(store, _send(f"fill{n}", CAROL1, [BOB1], 10), limits=limits)
    [done] = await _commit(store, _send("m", ALICE1, [BOB1, BOB2, CAROL1], 10), limits=limits)
    assert done.full == (BOB1,) and not done.refused and not done.duplicate
    assert [e.recipient for e in done.entries] == [BOB2, CAROL1]
    assert [e.message_id for e in await store.fetch(BOB1, 0, 10)] == ["fill0", "fill1"]
    assert await store.mailbox_usage(BOB1) == Usage(2, 20)


async def test_a_send_nobody_else_can_take_is_refused_and_stores_nothing(store: Store) -> None:
    await _people(store, "alice", "bob")
    limits = MailboxLimits(max_bytes=25)
    await _commit(store, _send("fill", DeviceRef("bob", 2), [BOB1], 20), limits=limits)
    # To bob/1 (full) and alice's own... nothing else: refused; the batch's other send is stored.
    refused, stored = await _commit(
        store,
        _send("m1", ALICE1, [BOB1], 10, "a-1"),
        _send("m2", ALICE1, [BOB2], 10, "a-2"),
        limits=limits,
    )
    assert refused.refused and refused.full == (BOB1,) and refused.entries == []
    assert [e.recipient for e in stored.entries] == [BOB2]
    assert await store.mailbox_usage(BOB1) == Usage(1, 20)
    assert await store.last_seq(BOB1) == 1  # no sequence was spent
    # A refused send leaves no record: the same id is stored once there is room.
    await store.ack(BOB1, 1)
    [again] = await _commit(store, _send("m1b", ALICE1, [BOB1], 10, "a-1"), limits=limits)
    assert not again.refused and not again.duplicate and again.message_id == "m1b"


async def test_a_send_to_ones_own_devices_only_is_refused_when_all_are_full(store: Store) -> None:
    await _people(store, "alice", "bob")
    limits = MailboxLimits(max_entries=1)
    await _commit(store, _send("fill", ALICE1, [BOB2], 1), limits=limits)
    [done] = await _commit(store, _send("own", BOB1, [BOB2], 1), limits=limits)
    assert done.refused and done.full == (BOB2,)


async def test_one_sender_cannot_fill_a_mailbox_others_need(store: Store) -> None:
    await _people(store, "alice", "bob", "carol", "dave")
    limits = MailboxLimits(max_entries=100, max_bytes=10_000, sender_max_bytes=300)
    results = await _commit(
        store, *[_send(f"a{n}", ALICE1, [BOB1], 100) for n in range(5)], limits=limits
    )
    assert [r.refused for r in results] == [False, False, False, True, True]
    # Others still get through, in the same batch as a refused flood and in later ones.
    flood, other = await _commit(
        store, _send("a5", ALICE1, [BOB1], 100), _send("c0", CAROL1, [BOB1], 100), limits=limits
    )
    assert flood.refused and not other.refused
    assert not (await _commit(store, _send("d0", DAVE1, [BOB1], 300), limits=limits))[0].refused
    assert (await _commit(store, _send("d1", DAVE1, [BOB1], 1), limits=limits))[0].refused
    assert await store.mailbox_usage(BOB1) == Usage(5, 700)
    # Reading frees the share: after an ack of two of alice's, two more of hers fit.
    await store.ack(BOB1, 2)
    results = await _commit(
        store, *[_send(f"a{n}", ALICE1, [BOB1], 100) for n in range(6, 9)], limits=limits
    )
    assert [r.refused for r in results] == [False, False, True]
    # Emptied, the mailbox starts over; shares are counted again when they matter.
    await store.ack(BOB1, await store.last_seq(BOB1))
    assert await store.mailbox_usage(BOB1) == Usage(0, 0)
    results = await _commit(
        store, *[_send(f"b{n}", ALICE1, [BOB1], 100) for n in range(4)], limits=limits
    )
    assert [r.refused for r in results] == [False, False, False, True]


async def test_shares_are_counted_from_a_mailbox_that_grew_without_limits(store: Store) -> None:
    await _people(store, "alice", "bob", "carol")
    for n in range(4):
        await _commit(store, _send(f"a{n}", ALICE1, [BOB1], 100))  # no limits then
    await _commit(store, _send("c", CAROL1, [BOB1], 100))
    limits = MailboxLimits(sender_max_entries=4)
    assert (await _commit(store, _send("a4", ALICE1, [BOB1], 1), limits=limits))[0].refused
    assert not (await _commit(store, _send("c1", CAROL1, [BOB1], 1), limits=limits))[0].refused


async def test_concurrent_commits_keep_usage_exact(store: Store) -> None:
    await _people(store, "alice", "bob", "carol")
    limits = MailboxLimits(max_entries=1000, sender_max_entries=7)
    senders = [ALICE1, CAROL1]
    results = await asyncio.gather(
        *(
            store.commit_sends([_send(f"m{n}", senders[n % 2], [BOB1, BOB2], 10)], limits, 0)
            for n in range(20)
        )
    )
    stored = sum(1 for [r] in results if not r.refused)
    assert stored == 14  # 7 per sender, whatever the interleaving
    assert await store.mailbox_usage(BOB1) == Usage(14, 140)
    assert len(await store.fetch(BOB1, 0, 100)) == 14


# ---- deduplication ----------------------------------------------------------------------------
async def test_a_retried_send_is_stored_once_and_answered_with_the_first_result(
    store: Store,
) -> None:
    await _people(store, "alice", "bob")
    [first] = await _commit(store, _send("m1", ALICE1, [BOB1, BOB2], client_id="c-1"))
    [again] = await _commit(store, _send("m2", ALICE1, [BOB1], client_id="c-1"))
    assert (again.duplicate, again.message_id, again.sent_at_ms, again.entries) == (
        True, "m1", first.sent_at_ms, [],
    )  # fmt: skip
    # Twice in one batch: the second is the duplicate of the first.
    one, two = await _commit(
        store,
        _send("m3", ALICE1, [BOB1], client_id="c-2"),
        _send("m4", ALICE1, [BOB1], client_id="c-2"),
    )
    assert not one.duplicate and two.duplicate and two.message_id == "m3"
    # The key is the sending device and its id: others are not duplicates.
    [other] = await _commit(store, _send("m5", DeviceRef("bob", 2), [BOB1], client_id="c-1"))
    [plain] = await _commit(store, _send("m6", ALICE1, [BOB1]))
    [plain2] = await _commit(store, _send("m7", ALICE1, [BOB1]))
    assert not other.duplicate and not plain.duplicate and not plain2.duplicate
    assert [e.message_id for e in await store.fetch(BOB1, 0, 10)] == ["m1", "m3", "m5", "m6", "m7"]
    assert await store.mailbox_usage(BOB1) == Usage(5, 50)


async def test_records_older_than_the_window_do_not_count(store: Store) -> None:
    await _people(store, "alice", "bob")
    await _commit(store, _send("m1", ALICE1, [BOB1], client_id="c-1"))  # sent at 100
    [late] = await store.commit_sends(
        [_send("m2", ALICE1, [BOB1], client_id="c-1")], NO_LIMITS, 101
    )
    assert not late.duplicate and late.message_id == "m2"
    [again] = await store.commit_sends([_send("m3", ALICE1, [BOB1], client_id="c-1")], NO_LIMITS, 0)
    assert again.duplicate and again.message_id == "m2"  # the record now names the second copy


async def test_prune_forgets_old_records_and_keeps_the_newest_per_device(store: Store) -> None:
    await _people(store, "alice", "bob")
    for n, at in enumerate((10, 20, 30, 40)):
        send = PendingSend(f"m{n}", ALICE1, at, (OutgoingCiphertext(BOB1, b"x", ROOM),), f"c{n}")
        await _commit(store, send)
    await _commit(store, PendingSend("b", BOB1, 5, (OutgoingCiphertext(ALICE1, b"x", ROOM),), "b0"))
    assert await store.prune_sent(15, 2) == 3  # alice's c0 and bob's b0 by age, c1 by count
    results = await store.commit_sends(
        [_send(f"r{n}", ALICE1, [BOB1], client_id=f"c{n}") for n in range(4)], NO_LIMITS, 0
    )
    assert [r.duplicate for r in results] == [False, False, True, True]


async def test_a_send_to_an_unknown_device_stores_nothing_and_records_nothing(store: Store) -> None:
    await _people(store, "alice", "bob")
    with pytest.raises(NotFound):
        await _commit(store, _send("m1", ALICE1, [BOB1, DeviceRef("bob", 9)], client_id="c-1"))
    assert await store.mailbox_usage(BOB1) == Usage(0, 0)
    [retry] = await _commit(store, _send("m2", ALICE1, [BOB1], client_id="c-1"))
    assert not retry.duplicate


# ---- pages bounded in bytes ---------------------------------------------------------------------
async def test_fetch_pages_are_bounded_in_bytes_and_hold_at_least_one_entry(store: Store) -> None:
    await _people(store, "alice", "bob")
    for n, size in enumerate((400, 400, 400, 1500, 10)):
        await _commit(store, _send(f"m{n}", ALICE1, [BOB1], size))
    sizes = [[len(e.ciphertext) for e in await store.fetch(BOB1, after, 10, 1000)]
             for after in (0, 2, 3, 4)]  # fmt: skip
    assert sizes == [[400, 400], [400], [1500], [10]]
    assert len(await store.fetch(BOB1, 0, 10)) == 5  # no bound: the limit alone
    assert [e.seq for e in await store.fetch(BOB1, 0, 1, 10_000)] == [1]


# ---- SQL adapters only ------------------------------------------------------------------------
async def test_records_and_usage_survive_a_restart(sql_backend: Backend) -> None:
    store = sql_backend.make()
    await store.open()
    await _people(store, "alice", "bob")
    await _commit(store, _send("m1", ALICE1, [BOB1], 10, "c-1"))
    await store.close()
    reopened = sql_backend.make()
    await reopened.open()
    try:
        [again] = await _commit(reopened, _send("m2", ALICE1, [BOB1], 10, "c-1"))
        assert again.duplicate and again.message_id == "m1"
        assert await reopened.mailbox_usage(BOB1) == Usage(1, 10)
    finally:
        await reopened.close()


async def test_migration_3_counts_an_existing_mailbox(sql_backend: Backend) -> None:
    store = sql_backend.make()
    await store.open()
    await _people(store, "alice", "bob", "carol")
    await _commit(store, _send("m1", ALICE1, [BOB1, BOB2], 10), _send("m2", CAROL1, [BOB1], 5))
    await store.close()
    assert sql_backend.execute_sql is not None
    for sql in (
        "DROP TABLE mailbox_totals",
        "DROP TABLE mailbox_senders",
        "DROP TABLE sent_messages",
        "DELETE FROM schema_version WHERE version >= 3",
    ):
        await sql_backend.execute_sql(sql)  # back to a version-2 database with a mailbox
    upgraded = sql_backend.make()
    await upgraded.open()
    try:  # (step 4 finds its columns and table present: it adds only what is missing)
        assert getattr(upgraded, "applied_migrations", None) == list(range(3, LATEST_VERSION + 1))
        assert await upgraded.mailbox_usage(BOB1) == Usage(2, 15)
        assert await upgraded.mailbox_usage(BOB2) == Usage(1, 10)
        limits = MailboxLimits(sender_max_entries=1)
        assert (await _commit(upgraded, _send("m3", ALICE1, [BOB1], 1), limits=limits))[0].refused
    finally:
        await upgraded.close()
