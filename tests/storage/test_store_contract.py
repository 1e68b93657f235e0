"""The Store contract: every adapter (memory, SQLite, PostgreSQL) must pass every test here."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from securechat.domain.mailbox import Usage
from securechat.domain.model import (
    Bundle,
    Conversation,
    ConversationKind,
    DeviceRef,
    KemPreKeyRecord,
    OneTimePreKeyRecord,
    OutgoingCiphertext,
    PendingSend,
    PreKeyCounts,
    Role,
    Session,
    SignedPreKeyRecord,
    StoreStats,
)
from securechat.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from securechat.storage import mailbox_tx, sql_mailbox
from securechat.storage.memory import MemoryStore
from securechat.storage.migrations import LATEST_VERSION
from securechat.storage.port import Store
from securechat.storage.sql_steps import Dialect

if TYPE_CHECKING:
    from conftest import Backend

EVIL = "'; DROP TABLE users; --"
ALICE1, BOB1, BOB2, CAROL1 = (
    DeviceRef("alice", 1),
    DeviceRef("bob", 1),
    DeviceRef("bob", 2),
    DeviceRef("carol", 1),
)
DIRECT = Conversation(ConversationKind.DIRECT, "alice")


async def _people(store: Store, *names: str) -> None:
    """Create users with one device each (bob gets two)."""
    for name in names:
        await store.create_user(name, f"hash-{name}".encode(), Role.USER, 1_000)
        await store.add_device(name, 1_000)
        if name == "bob":
            await store.add_device(name, 1_000)


def _item(to: DeviceRef, body: bytes = b"ct") -> OutgoingCiphertext:
    return OutgoingCiphertext(to, body, DIRECT)


def _bundle(otk: range = range(1, 4), kem: range = range(1, 3), last_resort: int = 100) -> Bundle:
    return Bundle(
        identity_key=b"identity",
        signed_prekey=SignedPreKeyRecord(7, b"spk", 123, b"spk-sig"),
        one_time_prekeys=[OneTimePreKeyRecord(i, b"otk%d" % i, b"sig") for i in otk],
        kem_prekeys=[KemPreKeyRecord(i, b"kem%d" % i, b"sig", last_resort=False) for i in kem],
        last_resort=KemPreKeyRecord(last_resort, b"last", b"sig", last_resort=True),
    )


# ---- accounts ---------------------------------------------------------------------------------
async def test_create_and_get_user(store: Store) -> None:
    created = await store.create_user("alice", b"hash", Role.ADMIN, 42)
    assert await store.get_user("alice") == created
    assert created.role is Role.ADMIN
    assert created.created_at_ms == 42
    assert await store.get_user("Alice") is None
    assert await store.get_user("nobody") is None


async def test_duplicate_user_is_rejected_and_changes_nothing(store: Store) -> None:
    await store.create_user("alice", b"old-hash", Role.USER, 1)
    with pytest.raises(AlreadyExists, match="alice"):
        await store.create_user("alice", b"new-hash", Role.ADMIN, 2)
    user = await store.get_user("alice")
    assert user is not None
    assert (user.password_hash, user.role, user.created_at_ms) == (b"old-hash", Role.USER, 1)


async def test_set_user_password_and_role(store: Store) -> None:
    await store.create_user("admin", b"old", Role.USER, 1)
    await store.set_user_password_and_role("admin", b"new", Role.ADMIN)
    user = await store.get_user("admin")
    assert user is not None
    assert (user.password_hash, user.role) == (b"new", Role.ADMIN)
    with pytest.raises(NotFound):
        await store.set_user_password_and_role("ghost", b"x", Role.USER)


# ---- sessions ---------------------------------------------------------------------------------
def _session(
    token: bytes, user: str = "alice", expires: int = 5_000, device_id: int = 1
) -> Session:
    return Session(token, user, device_id, Role.USER, expires, 1_000, "CN=alice")


async def test_sessions_are_stored_by_token_hash(store: Store) -> None:
    await _people(store, "alice", "bob")
    await store.create_session(_session(b"\x00hash-a", expires=2_000))
    await store.create_session(_session(b"hash-b", expires=9_000))
    await store.create_session(_session(b"hash-c", user="bob"))
    assert await store.get_session(b"\x00hash-a") == _session(b"\x00hash-a", expires=2_000)
    assert await store.get_session(b"unknown") is None
    with pytest.raises(AlreadyExists):
        await store.create_session(_session(b"hash-b", user="bob"))
    with pytest.raises(NotFound):
        await store.create_session(_session(b"hash-x", user="ghost"))

    assert await store.purge_expired_sessions(2_000) == 1  # expired at or before now
    assert await store.get_session(b"\x00hash-a") is None
    assert await store.revoke_session(b"hash-c") is True
    assert await store.revoke_session(b"hash-c") is False
    await store.create_session(_session(b"hash-d"))
    assert await store.revoke_user_sessions("alice") == 2
    assert await store.get_session(b"hash-b") is None


# ---- devices ----------------------------------------------------------------------------------
async def test_device_ids_count_per_user(store: Store) -> None:
    await store.create_user("alice", b"h", Role.USER, 1)
    await store.create_user("bob", b"h", Role.USER, 1)
    assert [await store.add_device("alice", 10) for _ in range(3)] == [1, 2, 3]
    assert await store.add_device("bob", 20) == 1
    device = await store.get_device("alice", 2)
    assert device is not None
    assert (device.created_at_ms, device.last_seen_ms, device.identity_key) == (10, 10, None)
    assert await store.get_device("alice", 9) is None
    assert [d.device_id for d in await store.list_devices("alice")] == [1, 2, 3]
    assert await store.list_devices("ghost") == []
    with pytest.raises(NotFound):
        await store.add_device("ghost", 1)


async def test_touch_devices_moves_last_seen_forward_only(store: Store) -> None:
    await _people(store, "alice", "bob")
    bob1 = DeviceRef("bob", 1)
    # An unknown device is skipped; the others in the same call still move.
    await store.touch_devices([(ALICE1, 3_000), (DeviceRef("alice", 5), 2_000), (bob1, 2_000)])
    await store.touch_devices([(ALICE1, 2_500), (bob1, 500)])  # older than what is stored
    await store.touch_devices([])
    alice = await store.get_device("alice", 1)
    bob = await store.get_device("bob", 1)
    assert alice is not None and bob is not None
    assert (alice.last_seen_ms, bob.last_seen_ms) == (3_000, 2_000)
    assert await store.get_device("alice", 5) is None


# ---- key directory ----------------------------------------------------------------------------
async def test_publish_and_claim_bundle(store: Store) -> None:
    await _people(store, "bob")
    counts = await store.publish_bundle(BOB1, _bundle(otk=range(1, 3), kem=range(1, 2)))
    assert counts == PreKeyCounts(one_time=2, kem_one_time=1)
    device = await store.get_device("bob", 1)
    assert device is not None
    assert device.identity_key == b"identity"

    first = await store.claim_bundle(BOB1)
    assert first is not None
    assert first.device == BOB1
    assert first.identity_key == b"identity"
    assert first.signed_prekey == SignedPreKeyRecord(7, b"spk", 123, b"spk-sig")
    assert first.one_time_prekey == OneTimePreKeyRecord(1, b"otk1", b"sig")
    assert first.kem_prekey == KemPreKeyRecord(1, b"kem1", b"sig", last_resort=False)
    assert await store.count_prekeys(BOB1) == PreKeyCounts(one_time=1, kem_one_time=0)

    second = await store.claim_bundle(BOB1)
    assert second is not None
    assert second.one_time_prekey is not None
    assert second.one_time_prekey.key_id == 2
    assert second.kem_prekey == KemPreKeyRecord(100, b"last", b"sig", last_resort=True)

    third = await store.claim_bundle(BOB1)  # classical keys gone; last resort is never used up
    assert third is not None
    assert third.one_time_prekey is None
    assert third.kem_prekey.key_id == 100
    assert third.kem_prekey.last_resort
    assert await store.count_prekeys(BOB1) == PreKeyCounts(0, 0)


async def test_claim_without_bundle_returns_none(store: Store) -> None:
    await _people(store, "bob")
    assert await store.claim_bundle(BOB1) is None
    assert await store.claim_bundle(DeviceRef("ghost", 1)) is None
    with pytest.raises(NotFound):
        await store.count_prekeys(DeviceRef("ghost", 1))


async def test_publish_replaces_everything(store: Store) -> None:
    await _people(store, "bob")
    await store.publish_bundle(BOB1, _bundle(otk=range(1, 10), kem=range(1, 10)))
    replacement = _bundle(otk=range(50, 51), kem=range(60, 61), last_resort=70)
    replacement.identity_key = b"new-identity"
    assert await store.publish_bundle(BOB1, replacement) == PreKeyCounts(1, 1)
    claimed = await store.claim_bundle(BOB1)
    assert claimed is not None
    assert claimed.identity_key == b"new-identity"
    assert claimed.one_time_prekey is not None
    assert claimed.one_time_prekey.key_id == 50
    assert claimed.kem_prekey.key_id == 60
    again = await store.claim_bundle(BOB1)
    assert again is not None
    assert again.kem_prekey.key_id == 70


@pytest.mark.parametrize(
    "bad",
    [
        _bundle(otk=range(1, 3)).one_time_prekeys * 2,  # one-time id repeated
        "kem-vs-last-resort",
    ],
    ids=["one-time", "kem-last-resort"],
)
async def test_publish_with_duplicate_ids_changes_nothing(store: Store, bad: object) -> None:
    await _people(store, "bob")
    await store.publish_bundle(BOB1, _bundle())
    broken = _bundle(otk=range(10, 12))
    broken.identity_key = b"other"
    if isinstance(bad, list):
        broken.one_time_prekeys = bad
    else:
        broken.last_resort = KemPreKeyRecord(1, b"x", b"sig", last_resort=True)
    with pytest.raises(InvalidArgument, match="duplicate"):
        await store.publish_bundle(BOB1, broken)
    device = await store.get_device("bob", 1)
    assert device is not None
    assert device.identity_key == b"identity"
    assert await store.count_prekeys(BOB1) == PreKeyCounts(3, 2)


async def test_publish_for_unknown_device_is_not_found(store: Store) -> None:
    await _people(store, "bob")
    with pytest.raises(NotFound):
        await store.publish_bundle(DeviceRef("bob", 9), _bundle())


async def test_add_prekeys(store: Store) -> None:
    await _people(store, "bob")
    await store.publish_bundle(BOB1, _bundle(otk=range(1, 2), kem=range(1, 2)))
    counts = await store.add_prekeys(
        BOB1,
        [OneTimePreKeyRecord(5, b"otk5", b"s")],
        [
            KemPreKeyRecord(5, b"kem5", b"s", last_resort=False),
            KemPreKeyRecord(100, b"new-last", b"s", last_resort=True),  # replaces the old one
        ],
        SignedPreKeyRecord(8, b"spk8", 456, b"sig8"),
    )
    assert counts == PreKeyCounts(2, 2)
    with pytest.raises(InvalidArgument, match="already published"):
        await store.add_prekeys(
            BOB1,
            [OneTimePreKeyRecord(99, b"a", b"s"), OneTimePreKeyRecord(5, b"again", b"s")],
            [],
            None,
        )
    with pytest.raises(InvalidArgument, match="duplicate"):
        await store.add_prekeys(BOB1, [], [KemPreKeyRecord(9, b"k", b"s", False)] * 2, None)
    with pytest.raises(NotFound):
        await store.add_prekeys(DeviceRef("bob", 9), [], [], None)
    assert await store.count_prekeys(BOB1) == PreKeyCounts(2, 2)  # failed calls changed nothing
    claims = [await store.claim_bundle(BOB1) for _ in range(3)]
    assert all(c is not None and c.signed_prekey.key_id == 8 for c in claims)
    assert [c.kem_prekey.public_key for c in claims if c] == [b"kem1", b"kem5", b"new-last"]


async def test_concurrent_claims_hand_out_each_prekey_exactly_once(store: Store) -> None:
    await _people(store, "bob")
    await store.publish_bundle(BOB1, _bundle(otk=range(1, 13), kem=range(1, 9)))
    claims = await asyncio.gather(*(store.claim_bundle(BOB1) for _ in range(16)))
    assert all(c is not None for c in claims)
    one_time = [c.one_time_prekey.key_id for c in claims if c and c.one_time_prekey]
    kem = [c.kem_prekey.key_id for c in claims if c and not c.kem_prekey.last_resort]
    assert sorted(one_time) == list(range(1, 13))
    assert sorted(kem) == list(range(1, 9))
    assert sum(1 for c in claims if c and c.kem_prekey.last_resort) == 8
    assert await store.count_prekeys(BOB1) == PreKeyCounts(0, 0)


# ---- rooms and contacts -----------------------------------------------------------------------
async def test_rooms_and_membership(store: Store) -> None:
    await _people(store, "carol", "alice", "bob")
    room = await store.create_room("lobby", None, "carol", 5)
    assert not room.protected
    assert await store.get_room("lobby") == room
    secret = await store.create_room("secret", b"room-hash", "alice", 6)
    assert secret.protected
    assert await store.get_room("nowhere") is None
    with pytest.raises(AlreadyExists):
        await store.create_room("lobby", None, "bob", 7)
    with pytest.raises(NotFound):
        await store.create_room("other", None, "ghost", 7)

    assert await store.add_member("lobby", "bob", 8) is True
    assert await store.add_member("lobby", "bob", 9) is False
    assert await store.add_member("lobby", "alice", 9) is True
    with pytest.raises(NotFound):
        await store.add_member("nowhere", "bob", 9)
    with pytest.raises(NotFound):
        await store.add_member("lobby", "ghost", 9)
    assert await store.room_members("lobby") == ["alice", "bob", "carol"]
    assert await store.is_member("lobby", "bob")
    assert not await store.is_member("secret", "bob")
    assert await store.rooms_of("alice") == ["lobby", "secret"]
    assert await store.room_devices("lobby") == [ALICE1, BOB1, BOB2, CAROL1]

    summaries = {s.name: s for s in await store.list_rooms("bob")}
    assert [s for s in summaries] == ["lobby", "secret"]
    assert (summaries["lobby"].member_count, summaries["lobby"].member) == (3, True)
    assert (summaries["secret"].protected, summaries["secret"].member) == (True, False)
    assert summaries["secret"].created_at_ms == 6

    assert await store.remove_member("lobby", "bob") is True
    assert await store.remove_member("lobby", "bob") is False
    assert await store.room_devices("lobby") == [ALICE1, CAROL1]
    assert await store.room_devices("nowhere") == []


async def test_contacts_are_room_comembers_and_private_partners(store: Store) -> None:
    await _people(store, "alice", "bob", "carol", "dave")
    await store.create_room("lobby", None, "alice", 1)
    await store.add_member("lobby", "bob", 1)
    await store.record_contact("carol", "alice", 2)
    await store.record_contact("alice", "carol", 3)  # idempotent, either order
    assert await store.contacts_of("alice") == {"bob", "carol"}
    assert await store.contacts_of("carol") == {"alice"}
    assert await store.contacts_of("dave") == set()
    with pytest.raises(InvalidArgument):
        await store.record_contact("dave", "dave", 1)
    with pytest.raises(NotFound):
        await store.record_contact("dave", "ghost", 1)


# ---- mailboxes --------------------------------------------------------------------------------
async def test_enqueue_assigns_per_device_sequences_and_fetch_orders_them(store: Store) -> None:
    await _people(store, "alice", "bob")
    first = await store.enqueue("m1", ALICE1, 10, [_item(BOB1, b"a"), _item(BOB2, b"b")])
    assert [(e.recipient, e.seq) for e in first] == [(BOB1, 1), (BOB2, 1)]
    await store.enqueue("m2", ALICE1, 11, [_item(BOB1, b"c")])
    await store.enqueue("m3", ALICE1, 12, [_item(BOB1, b"d")])
    fetched = await store.fetch(BOB1, 0, 10)
    assert [(e.seq, e.message_id, e.ciphertext) for e in fetched] == [
        (1, "m1", b"a"),
        (2, "m2", b"c"),
        (3, "m3", b"d"),
    ]
    assert fetched[0] == first[0]
    assert fetched[0].sender == ALICE1
    assert fetched[0].conversation == DIRECT
    assert [e.seq for e in await store.fetch(BOB1, 1, 1)] == [2]
    assert await store.fetch(BOB1, 3, 10) == []
    assert await store.pending_count(BOB1, 1) == 2
    assert (await store.last_seq(BOB1), await store.last_seq(BOB2)) == (3, 1)
    assert await store.last_seq(ALICE1) == 0
    assert await store.enqueue("empty", ALICE1, 1, []) == []


async def test_ack_deletes_and_sequences_are_never_reused(store: Store) -> None:
    await _people(store, "alice", "bob")
    for n in range(3):
        await store.enqueue(f"m{n}", ALICE1, 10, [_item(BOB1)])
    assert await store.ack(BOB1, 2) == 2
    assert [e.seq for e in await store.fetch(BOB1, 0, 10)] == [3]
    assert await store.ack(BOB1, 3) == 1
    assert await store.ack(BOB1, 3) == 0
    again = await store.enqueue("m4", ALICE1, 10, [_item(BOB1)])
    assert again[0].seq == 4
    assert await store.last_seq(BOB1) == 4


async def test_ack_beyond_last_sequence_is_rejected_and_deletes_nothing(store: Store) -> None:
    await _people(store, "alice", "bob")
    await store.enqueue("m1", ALICE1, 10, [_item(BOB1)])
    await store.enqueue("m2", ALICE1, 10, [_item(BOB1)])
    with pytest.raises(
        InvalidArgument, match="cannot acknowledge sequence 3: only 2 were delivered"
    ):
        await store.ack(BOB1, 3)
    assert await store.pending_count(BOB1, 0) == 2
    with pytest.raises(NotFound):
        await store.ack(DeviceRef("ghost", 1), 1)


async def test_enqueue_to_unknown_device_rolls_back_everything(store: Store) -> None:
    await _people(store, "alice", "bob")
    with pytest.raises(NotFound, match="device 7 of user 'bob'"):
        await store.enqueue("m1", ALICE1, 10, [_item(BOB1), _item(DeviceRef("bob", 7))])
    assert await store.fetch(BOB1, 0, 10) == []
    assert await store.last_seq(BOB1) == 0
    assert (await store.enqueue("m2", ALICE1, 10, [_item(BOB1)]))[0].seq == 1


async def test_enqueue_batch_is_one_atomic_group_commit(store: Store) -> None:
    await _people(store, "alice", "bob", "carol")
    sends = [
        PendingSend("m1", ALICE1, 10, (_item(BOB1, b"1"), _item(CAROL1, b"2"))),
        PendingSend("m2", CAROL1, 11, ()),
        PendingSend("m3", CAROL1, 12, (_item(BOB1, b"3"), _item(BOB2, b"4"), _item(BOB1, b"5"))),
    ]
    results = await store.enqueue_batch(sends)
    assert [[(e.message_id, e.recipient, e.seq) for e in r] for r in results] == [
        [("m1", BOB1, 1), ("m1", CAROL1, 1)],
        [],
        [("m3", BOB1, 2), ("m3", BOB2, 1), ("m3", BOB1, 3)],
    ]
    assert [e.ciphertext for e in await store.fetch(BOB1, 0, 10)] == [b"1", b"3", b"5"]
    assert await store.enqueue_batch([]) == []

    bad = [
        PendingSend("m4", ALICE1, 13, (_item(BOB1),)),
        PendingSend("m5", ALICE1, 13, (_item(DeviceRef("ghost", 1)),)),
    ]
    with pytest.raises(NotFound):
        await store.enqueue_batch(bad)
    assert await store.last_seq(BOB1) == 3
    assert await store.pending_count(BOB1, 0) == 3


async def test_concurrent_enqueues_get_distinct_sequences(store: Store) -> None:
    await _people(store, "alice", "bob", "carol")
    forward = [_item(BOB2), _item(BOB1), _item(CAROL1)]
    backward = forward[::-1]  # opposite recipient orders must not deadlock (PostgreSQL)
    results = await asyncio.gather(
        *(store.enqueue(f"m{n}", ALICE1, n, forward if n % 2 else backward) for n in range(12))
    )
    seqs = sorted(e.seq for r in results for e in r if e.recipient == BOB1)
    assert seqs == list(range(1, 13))
    assert await store.last_seq(CAROL1) == 12


async def test_expire_messages_removes_older_entries(store: Store) -> None:
    await _people(store, "alice", "bob")
    await store.enqueue("old", ALICE1, 100, [_item(BOB1), _item(BOB2)])
    await store.enqueue("new", ALICE1, 200, [_item(BOB1)])
    assert await store.expire_messages(200) == 2
    assert [e.message_id for e in await store.fetch(BOB1, 0, 10)] == ["new"]
    assert await store.last_seq(BOB1) == 2


async def test_ciphertext_bytes_round_trip_exactly(store: Store) -> None:
    await _people(store, "alice", "bob")
    body = bytes(range(256)) * 4
    await store.enqueue("m", ALICE1, 1, [_item(BOB1, body)])
    assert (await store.fetch(BOB1, 0, 1))[0].ciphertext == body


# ---- revocations, stats, hostile input --------------------------------------------------------
async def test_revocations(store: Store) -> None:
    await store.add_revocation("0a1b", "fp-1", "CN=alice", 10)
    await store.add_revocation("ff00", "fp-2", "CN=bob", 20)
    await store.add_revocation("0a1b", "fp-1", "CN=alice", 30)  # repeating is harmless
    assert await store.list_revocations() == [("0a1b", "fp-1"), ("ff00", "fp-2")]


async def test_stats(store: Store) -> None:
    assert await store.stats() == StoreStats(0, 0, 0)
    await _people(store, "alice", "bob")
    await store.create_room("lobby", None, "alice", 1)
    await store.enqueue("m", ALICE1, 1, [_item(BOB1), _item(BOB2)])
    assert await store.stats() == StoreStats(users=2, rooms=1, pending_messages=2)


async def test_sql_looking_strings_are_stored_verbatim(store: Store) -> None:
    await store.create_user(EVIL, EVIL.encode(), Role.USER, 1)
    device = DeviceRef(EVIL, await store.add_device(EVIL, 1))
    await store.create_room(EVIL, None, EVIL, 1)
    await store.create_session(Session(EVIL.encode(), EVIL, 1, Role.USER, 9, 1, EVIL))
    conversation = Conversation(ConversationKind.ROOM, EVIL)
    entry = (
        await store.enqueue(EVIL, device, 1, [OutgoingCiphertext(device, b"x", conversation)])
    )[0]
    await store.add_revocation(EVIL, EVIL, EVIL, 1)

    user = await store.get_user(EVIL)
    assert user is not None
    assert user.password_hash == EVIL.encode()
    assert await store.room_members(EVIL) == [EVIL]
    session = await store.get_session(EVIL.encode())
    assert session is not None
    assert session.cert_subject == EVIL
    assert await store.fetch(device, 0, 1) == [entry]
    assert entry.message_id == EVIL
    assert entry.conversation.name == EVIL
    assert await store.list_revocations() == [(EVIL, EVIL)]
    assert (await store.stats()).users == 1


# ---- SQL adapters only: migrations and durability ---------------------------------------------
async def test_migrations_are_recorded_and_applied_once(sql_backend: Backend) -> None:
    first = sql_backend.make()
    await first.open()
    assert getattr(first, "applied_migrations", None) == list(range(1, LATEST_VERSION + 1))
    assert await first.schema_version() == LATEST_VERSION
    await first.close()
    again = sql_backend.make()
    await again.open()
    try:
        assert getattr(again, "applied_migrations", None) == []
        assert await again.schema_version() == LATEST_VERSION
    finally:
        await again.close()


async def test_opening_a_newer_schema_fails_clearly(sql_backend: Backend) -> None:
    store = sql_backend.make()
    await store.open()
    await store.close()
    assert sql_backend.execute_sql is not None
    newer = LATEST_VERSION + 1
    await sql_backend.execute_sql(
        f"INSERT INTO schema_version (version, applied_at_ms) VALUES ({newer}, 0)"  # noqa: S608
    )
    with pytest.raises(FailedPrecondition, match=f"version {newer}.*upgrade securechat"):
        await sql_backend.make().open()


async def test_data_survives_close_and_reopen(sql_backend: Backend) -> None:
    store = sql_backend.make()
    await store.open()
    await _people(store, "alice", "bob")
    await store.publish_bundle(BOB1, _bundle())
    await store.enqueue("m1", ALICE1, 10, [_item(BOB1, b"kept")])
    await store.close()

    reopened = sql_backend.make()
    await reopened.open()
    try:
        user = await reopened.get_user("alice")
        assert user is not None
        assert user.password_hash == b"hash-alice"
        assert [e.ciphertext for e in await reopened.fetch(BOB1, 0, 10)] == [b"kept"]
        assert await reopened.count_prekeys(BOB1) == PreKeyCounts(3, 2)
        assert (await reopened.enqueue("m2", ALICE1, 11, [_item(BOB1)]))[0].seq == 2
        assert await reopened.add_device("bob", 1) == 3
    finally:
        await reopened.close()


async def test_sqlite_creates_its_data_folder(tmp_path: Path) -> None:
    from securechat.storage.sqlite import SqliteStore

    path = tmp_path / "deep" / "folder" / "chat.db"
    store = SqliteStore(path, synchronous="normal")
    await store.open()
    await store.close()
    assert path.is_file()
    with pytest.raises(InvalidArgument, match="synchronous"):
        SqliteStore(path, synchronous="sometimes")


async def test_remove_device_takes_its_keys_mailbox_and_sessions(store: Store) -> None:
    await _people(store, "alice", "bob")
    await store.publish_bundle(BOB2, _bundle())
    await store.enqueue("m1", ALICE1, 10, [_item(BOB1), _item(BOB2)])
    await store.create_session(_session(b"bob-2", user="bob", device_id=2))
    await store.create_session(_session(b"bob-1", user="bob", device_id=1))
    assert await store.remove_device(BOB2) is True
    assert await store.remove_device(BOB2) is False
    assert await store.get_device("bob", 2) is None
    assert await store.claim_bundle(BOB2) is None
    assert await store.fetch(BOB2, 0, 10) == []
    assert await store.get_session(b"bob-2") is None
    # The other device keeps everything, and device ids are never reused.
    assert [e.message_id for e in await store.fetch(BOB1, 0, 10)] == ["m1"]
    assert await store.get_session(b"bob-1") is not None
    assert await store.add_device("bob", 2_000) == 3


async def test_ack_many_deletes_each_devices_entries_in_one_call(store: Store) -> None:
    await _people(store, "alice", "bob", "carol")
    for i in range(3):
        await store.enqueue(f"m{i}", ALICE1, 10, [_item(BOB1), _item(CAROL1)])
    ghost = DeviceRef("ghost", 1)
    await store.ack_many([(BOB1, 2), (CAROL1, 1), (ghost, 5)])
    assert [e.seq for e in await store.fetch(BOB1, 0, 10)] == [3]
    assert [e.seq for e in await store.fetch(CAROL1, 0, 10)] == [2, 3]
    await store.ack_many([])
    assert [e.seq for e in await store.fetch(CAROL1, 0, 10)] == [2, 3]


async def test_ack_many_deletes_at_most_its_limit_and_returns_the_rest(store: Store) -> None:
    """A limit bounds what one transaction deletes (each device's oldest first, devices in
    order); what is left of the acks comes back for a later call, and usage follows."""
    await _people(store, "alice", "bob", "carol")
    for i in range(5):
        await store.enqueue(f"m{i}", ALICE1, 10, [_item(BOB1, b"b" * 3), _item(CAROL1)])
    assert await store.ack_many([(CAROL1, 3), (BOB1, 5)], limit=4) == [(BOB1, 5), (CAROL1, 3)]
    assert [e.seq for e in await store.fetch(BOB1, 0, 10)] == [5]
    assert [e.seq for e in await store.fetch(CAROL1, 0, 10)] == [1, 2, 3, 4, 5]
    assert await store.mailbox_usage(BOB1) == Usage(1, 3)
    # bob's last entry, then carol's three up to her mark: exactly the limit, so carol's ack
    # comes back once more (perhaps more entries up to it) and deletes nothing then
    assert await store.ack_many([(BOB1, 5), (CAROL1, 3)], limit=4) == [(CAROL1, 3)]
    assert await store.fetch(BOB1, 0, 10) == []
    assert [e.seq for e in await store.fetch(CAROL1, 0, 10)] == [4, 5]
    assert await store.ack_many([(CAROL1, 3)], limit=4) == []
    assert await store.mailbox_usage(CAROL1) == Usage(2, 4)
    assert await store.mailbox_usage(BOB1) == Usage(0, 0)
    assert await store.ack_many([(CAROL1, 5)]) == []  # no limit: all of it at once
    assert await store.fetch(CAROL1, 0, 10) == []


async def test_a_big_ack_is_deleted_in_bounded_transactions(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unary Ack of a whole mailbox deletes it all, in transactions of at most
    ACK_ROWS_PER_TRANSACTION entries (SQL stores: each holds the one writer only briefly)."""
    monkeypatch.setattr(sql_mailbox, "ACK_ROWS_PER_TRANSACTION", 2)
    transactions: list[int] = []
    remove = mailbox_tx.remove

    def counted(d: Dialect, acks: Sequence[tuple[DeviceRef, int]], limit: int) -> Any:
        transactions.append(limit)
        return remove(d, acks, limit)

    monkeypatch.setattr(mailbox_tx, "remove", counted)
    await _people(store, "alice", "bob")
    for i in range(5):
        await store.enqueue(f"m{i}", ALICE1, 10, [_item(BOB1)])
    assert await store.ack(BOB1, 5) == 5
    assert await store.fetch(BOB1, 0, 10) == []
    assert await store.mailbox_usage(BOB1) == Usage(0, 0)
    assert transactions in ([], [2, 2, 2])  # the memory store has no writer to hold
    assert isinstance(store, MemoryStore) or transactions == [2, 2, 2]
