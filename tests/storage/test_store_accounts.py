"""The Store contract for accounts that own devices: login parameters, account keys, device
changes, removals and the link relay (memory, SQLite and PostgreSQL alike), and migration 2."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Connection, inspect

from securechat.domain.model import (
    AccountRecord,
    Bundle,
    Certification,
    Conversation,
    ConversationKind,
    DeviceRef,
    KemPreKeyRecord,
    LinkSlot,
    LoginRecord,
    OutgoingCiphertext,
    Removal,
    Role,
    Session,
    SignedPreKeyRecord,
)
from securechat.errors import AlreadyExists, NotFound
from securechat.storage import schema
from securechat.storage.migrations import LATEST_VERSION
from securechat.storage.port import Store

if TYPE_CHECKING:
    from conftest import Backend

LOGIN = LoginRecord(b"s" * 16, 3, 4, 262_144)
ALICE1, ALICE2, ALICE3 = DeviceRef("alice", 1), DeviceRef("alice", 2), DeviceRef("alice", 3)


def _account(version: int, key: bytes = b"k" * 32) -> AccountRecord:
    return AccountRecord("alice", key, version, b"list-%d" % version)


def _bundle(binding: bytes | None = None) -> Bundle:
    return Bundle(
        identity_key=b"identity",
        signed_prekey=SignedPreKeyRecord(7, b"spk", 123, b"sig"),
        last_resort=KemPreKeyRecord(100, b"last", b"sig", last_resort=True),
        binding=binding,
    )


async def _alice(store: Store, devices: int = 3) -> None:
    await store.create_user("alice", b"hash", Role.USER, 1, LOGIN)
    await store.create_user("bob", b"hash", Role.USER, 1)
    for _ in range(devices):
        await store.add_device("alice", 1)
    await store.add_device("bob", 1)


async def test_login_parameters_are_kept_and_upgrade_once(store: Store) -> None:
    await store.create_user("alice", b"auth-hash", Role.USER, 1, LOGIN)
    await store.create_user("bob", b"password-hash", Role.USER, 1)
    alice, bob = await store.get_user("alice"), await store.get_user("bob")
    assert alice is not None and alice.login == LOGIN and not alice.legacy_password
    assert bob is not None and bob.login is None and bob.legacy_password

    assert await store.set_login("bob", b"new-hash", LOGIN) is True
    upgraded = await store.get_user("bob")
    assert upgraded is not None and upgraded.login == LOGIN
    assert upgraded.password_hash == b"new-hash"
    # Only a legacy account upgrades: a second upgrade changes nothing.
    other = LoginRecord(b"t" * 16, 1, 1, 1024)
    assert await store.set_login("bob", b"other-hash", other) is False
    assert await store.get_user("bob") == upgraded
    with pytest.raises(NotFound):
        await store.set_login("nobody", b"x", LOGIN)

    # The bootstrap admin's password makes a legacy password account again.
    await store.set_user_password_and_role("alice", b"admin-hash", Role.ADMIN)
    admin = await store.get_user("alice")
    assert admin is not None and admin.login is None and admin.role is Role.ADMIN


async def test_a_bundle_keeps_the_binding_it_carries(store: Store) -> None:
    await _alice(store)
    await store.publish_bundle(ALICE1, _bundle(b"binding-1"))
    await store.publish_bundle(ALICE1, _bundle())  # a refresh without one keeps it
    device = await store.get_device("alice", 1)
    assert device is not None
    assert (device.identity_key, device.binding, device.certificate) == (
        b"identity",
        b"binding-1",
        None,
    )


async def test_an_account_key_is_set_once(store: Store) -> None:
    await _alice(store)
    assert await store.get_account("alice") is None
    assert await store.create_account(_account(1), ALICE1, b"cert-1", b"bind-1", 5) == []
    assert await store.get_account("alice") == _account(1)
    device = await store.get_device("alice", 1)
    assert device is not None and (device.certificate, device.binding) == (b"cert-1", b"bind-1")

    with pytest.raises(AlreadyExists, match="link this device"):
        await store.create_account(_account(1, b"x" * 32), ALICE2, b"cert-2", b"bind-2", 6)
    assert await store.get_account("alice") == _account(1)
    second = await store.get_device("alice", 2)
    assert second is not None and second.certificate is None
    with pytest.raises(NotFound):
        await store.create_account(AccountRecord("bob", b"k" * 32, 1, b"l"), DeviceRef("bob", 9),
                                   b"c", b"b", 5)  # fmt: skip
    assert await store.get_account("bob") is None
    assert await store.get_accounts(["bob", "alice", "nobody", "alice"]) == [_account(1)]


async def test_a_reset_replaces_the_key_and_removes_every_other_device(store: Store) -> None:
    await _alice(store)
    await store.create_account(_account(1), ALICE1, b"cert-1", b"bind-1", 5)
    await store.change_devices(
        "alice", 1, _account(2), None, Removal(2, b"d" * 32, b"removal-2"), 6
    )
    await store.enqueue("m1", DeviceRef("bob", 1), 7, [
        OutgoingCiphertext(ALICE1, b"ct", Conversation(ConversationKind.DIRECT, "bob")),
    ])  # fmt: skip
    new = AccountRecord("alice", b"n" * 32, 1, b"new-list")
    removed = await store.create_account(new, ALICE3, b"cert-3", b"bind-3", 8, reset=True)
    assert removed == [ALICE1]
    assert await store.get_account("alice") == new
    assert [d.device_id for d in await store.list_devices("alice")] == [3]
    assert await store.list_removals("alice") == []
    assert await store.fetch(ALICE1, 0, 10) == []


async def test_device_changes_apply_only_on_the_version_they_were_signed_for(
    store: Store,
) -> None:
    await _alice(store)
    await store.create_account(_account(1), ALICE1, b"cert-1", b"bind-1", 5)
    await store.create_session(Session(b"tok-2", "alice", 2, Role.USER, 10**15, 1, "cn"))

    assert await store.change_devices("alice", 1, _account(2), Certification(2, b"cert-2"), None, 6)
    device = await store.get_device("alice", 2)
    assert device is not None and device.certificate == b"cert-2"
    assert await store.get_account("alice") == _account(2)

    # Signed against version 1 again: refused, nothing changes.
    assert not await store.change_devices(
        "alice", 1, _account(2), Certification(3, b"cert-3"), None, 7
    )
    third = await store.get_device("alice", 3)
    assert third is not None and third.certificate is None
    # Another account key cannot move the list either.
    assert not await store.change_devices("alice", 2, _account(3, b"x" * 32), None, None, 7)

    removal = Removal(2, b"d" * 32, b"removal-2")
    assert await store.change_devices("alice", 2, _account(3), None, removal, 8)
    assert await store.get_device("alice", 2) is None
    assert await store.get_session(b"tok-2") is None
    assert await store.list_removals("alice") == [b"removal-2"]
    assert await store.get_account("alice") == _account(3)

    with pytest.raises(NotFound):
        await store.change_devices("alice", 3, _account(4), Certification(9, b"c"), None, 9)
    assert await store.get_account("alice") == _account(3)
    assert not await store.change_devices("bob", 0, _account(1), None, None, 9)


async def test_removals_are_listed_oldest_first_and_kept(store: Store) -> None:
    await _alice(store)
    await store.create_account(_account(1), ALICE1, b"c", b"b", 5)
    assert await store.change_devices(
        "alice", 1, _account(2), None, Removal(3, b"3" * 32, b"r3"), 6
    )
    assert await store.change_devices(
        "alice", 2, _account(3), None, Removal(2, b"2" * 32, b"r2"), 7
    )
    assert await store.list_removals("alice") == [b"r3", b"r2"]
    assert await store.list_removals("bob") == []


async def test_room_device_records_carry_keys_and_certificates(store: Store) -> None:
    await _alice(store, devices=2)
    await store.create_room("ops", None, "alice", 1)
    await store.add_member("ops", "bob", 1)
    await store.publish_bundle(ALICE2, _bundle(b"bind"))
    await store.create_account(_account(1), ALICE2, b"cert", b"bind", 5)
    records = await store.list_room_device_records("ops")
    assert [(d.user, d.device_id) for d in records] == [("alice", 1), ("alice", 2), ("bob", 1)]
    assert records[1].identity_key == b"identity" and records[1].certificate == b"cert"
    assert records[0].identity_key is None and records[0].certificate is None
    assert await store.list_room_device_records("nowhere") == []


async def test_the_link_relay_writes_each_slot_once_until_it_expires(store: Store) -> None:
    await _alice(store)
    relay = "ab" * 9
    assert await store.get_link_message("alice", relay, LinkSlot.OFFER, 0) is None
    assert await store.put_link_message("alice", relay, LinkSlot.OFFER, b"offer", 0, 600)
    assert not await store.put_link_message("alice", relay, LinkSlot.OFFER, b"swap", 1, 601)
    assert await store.get_link_message("alice", relay, LinkSlot.OFFER, 599) == b"offer"
    # Another user, slot or relay id is another slot.
    assert await store.get_link_message("bob", relay, LinkSlot.OFFER, 1) is None
    assert await store.get_link_message("alice", relay, LinkSlot.GRANT, 1) is None
    assert await store.put_link_message("alice", relay, LinkSlot.REQUEST, b"req", 0, 300)
    # Expired: gone for readers, writable again, purged.
    assert await store.get_link_message("alice", relay, LinkSlot.OFFER, 600) is None
    assert await store.put_link_message("alice", relay, LinkSlot.OFFER, b"later", 700, 1300)
    assert await store.purge_link_messages(1000) == 1  # the request
    assert await store.get_link_message("alice", relay, LinkSlot.OFFER, 1000) == b"later"


def _shape(conn: Connection) -> dict[str, object]:
    """Every table's columns (in order, with type, nullability and default), primary key,
    indexes and foreign keys, as the database reports them."""
    inspector = inspect(conn)
    shape: dict[str, object] = {}
    for table in sorted(inspector.get_table_names()):
        columns = [
            (c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
            for c in inspector.get_columns(table)
        ]
        indexes = sorted(
            (str(i["name"]), tuple(i["column_names"]), bool(i["unique"]))
            for i in inspector.get_indexes(table)
        )
        keys = sorted(
            (tuple(f["constrained_columns"]), f["referred_table"])
            for f in inspector.get_foreign_keys(table)
        )
        primary = inspector.get_pk_constraint(table)["constrained_columns"]
        shape[table] = (columns, primary, indexes, keys)
    return shape


async def _shape_of(url: str) -> dict[str, object]:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_shape)
    finally:
        await engine.dispose()


async def test_migration_2_keeps_version_1_data(sql_backend: Backend) -> None:
    """A database written by version 1 opens under the latest version with its accounts as
    legacy, shaped exactly like a fresh database and like schema.py."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from securechat.storage import migrations, schema_v1

    store = sql_backend.make()
    url = getattr(store, "_url", None) or f"sqlite+aiosqlite:///{store.path}"  # type: ignore[attr-defined]
    if hasattr(store, "_prepare"):
        await store._prepare()  # type: ignore[attr-defined]
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:

            def build_v1(sync: object) -> None:
                original = migrations.MIGRATIONS
                migrations.MIGRATIONS = original[:1]
                try:
                    migrations.migrate(sync)  # type: ignore[arg-type]
                finally:
                    migrations.MIGRATIONS = original

            await conn.run_sync(build_v1)
            await conn.execute(
                schema_v1.users.insert().values(
                    name="old", password_hash=b"bcrypt", role="user", created_at_ms=1,
                    last_device_id=1,
                )
            )  # fmt: skip
            await conn.execute(
                schema_v1.devices.insert().values(
                    user_name="old", device_id=1, created_at_ms=1, last_seen_ms=1,
                    identity_key=b"identity",
                )
            )  # fmt: skip
    finally:
        await engine.dispose()
    await store.open()
    try:
        assert getattr(store, "applied_migrations", None) == list(range(2, LATEST_VERSION + 1))
        user = await store.get_user("old")
        assert user is not None and user.legacy_password and user.password_hash == b"bcrypt"
        [device] = await store.list_devices("old")
        assert (device.identity_key, device.certificate, device.binding) == (
            b"identity",
            None,
            None,
        )
        assert await store.get_account("old") is None
        await store.create_account(
            AccountRecord("old", b"k" * 32, 1, b"l"), DeviceRef("old", 1), b"c", b"b", 2
        )
        assert await store.get_account("old") is not None
    finally:
        await store.close()
    upgraded = await _shape_of(url)
    # The same database made fresh: it goes through every step, so it ends up alike.
    if sql_backend.execute_sql is not None and sql_backend.name == "postgres":
        await sql_backend.execute_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    else:
        store.path.unlink()  # type: ignore[attr-defined]
    fresh_store = sql_backend.make()
    await fresh_store.open()
    await fresh_store.close()
    assert await _shape_of(url) == upgraded
    tables = {name: [c[0] for c in shape[0]] for name, shape in upgraded.items()}  # type: ignore[index]
    assert {name: set(columns) for name, columns in tables.items()} == {
        table.name: set(table.c.keys()) for table in schema.metadata.sorted_tables
    }
