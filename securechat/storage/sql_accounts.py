"""Accounts own devices: account keys, device lists, removals and the link relay (SQL adapters).

The statements (certificates, removals, signed lists) are opaque bytes here: the service checks
them before they are stored, and clients verify them again. What the store guarantees is
atomicity: a device change is applied only on top of the version it was signed against.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from securechat.domain.model import (
    AccountRecord,
    Certification,
    Device,
    DeviceRef,
    LinkSlot,
    Removal,
)
from securechat.storage import rules
from securechat.storage.schema import (
    accounts,
    device_removals,
    devices,
    kem_prekeys,
    link_messages,
    mailbox,
    mailbox_senders,
    mailbox_totals,
    one_time_prekeys,
    room_members,
    room_positions,
    sent_messages,
    sessions,
    signed_prekeys,
)
from securechat.storage.sql_core import SqlCore


def _account(row: Row[Any]) -> AccountRecord:
    return AccountRecord(row.user_name, row.account_key, row.list_version, row.device_list)


def _account_values(account: AccountRecord, now_ms: int) -> dict[str, Any]:
    return {
        "account_key": account.account_key,
        "list_version": account.list_version,
        "device_list": account.device_list,
        "updated_at_ms": now_ms,
    }


def device_from_row(row: Row[Any]) -> Device:
    return Device(
        row.user_name,
        row.device_id,
        row.created_at_ms,
        row.last_seen_ms,
        row.identity_key,
        row.certificate,
        row.binding,
    )


class AccountsSql(SqlCore):
    """Store methods of accounts, device changes and the link relay."""

    async def _delete_device(self, conn: AsyncConnection, device: DeviceRef) -> bool:
        """Delete a device with its keys, mailbox (and its counts), sessions and the records of
        its sends, inside ``conn``'s transaction."""
        owned = (mailbox, mailbox_totals, mailbox_senders, one_time_prekeys, kem_prekeys,
                 signed_prekeys, sessions, room_positions)  # fmt: skip
        for table in owned:
            await conn.execute(
                delete(table).where(
                    (table.c.user_name == device.user) & (table.c.device_id == device.device_id)
                )
            )
        await conn.execute(
            delete(sent_messages).where(
                (sent_messages.c.sender_user == device.user)
                & (sent_messages.c.sender_device == device.device_id)
            )
        )
        result = await conn.execute(
            delete(devices).where(
                (devices.c.user_name == device.user) & (devices.c.device_id == device.device_id)
            )
        )
        return bool(result.rowcount)

    async def _set_certificate(
        self,
        conn: AsyncConnection,
        device: DeviceRef,
        certificate: bytes,
        binding: bytes | None = None,
    ) -> None:
        values: dict[str, Any] = {"certificate": certificate}
        if binding is not None:
            values["binding"] = binding
        result = await conn.execute(
            update(devices)
            .where((devices.c.user_name == device.user) & (devices.c.device_id == device.device_id))
            .values(values)
        )
        if result.rowcount == 0:
            raise rules.device_not_found(device)

    async def get_account(self, user: str) -> AccountRecord | None:
        async with self._read() as conn:
            row = (await conn.execute(select(accounts).where(accounts.c.user_name == user))).first()
        return None if row is None else _account(row)

    async def get_accounts(self, users: Sequence[str]) -> list[AccountRecord]:
        if not users:
            return []
        found: list[AccountRecord] = []
        names = sorted(set(users))
        async with self._read() as conn:
            for start in range(0, len(names), 500):
                query = (
                    select(accounts)
                    .where(accounts.c.user_name.in_(names[start : start + 500]))
                    .order_by(accounts.c.user_name)
                )
                found.extend(_account(row) for row in await conn.execute(query))
        return found

    async def create_account(
        self,
        account: AccountRecord,
        device: DeviceRef,
        certificate: bytes,
        binding: bytes,
        now_ms: int,
        *,
        reset: bool = False,
    ) -> list[DeviceRef]:
        user = account.user
        async with self._write() as conn:
            existing = await conn.scalar(
                select(accounts.c.user_name).where(accounts.c.user_name == user)
            )
            if existing is not None and not reset:
                raise rules.account_exists(user)
            await self._set_certificate(conn, device, certificate, binding)
            removed: list[DeviceRef] = []
            if reset:
                others = await conn.scalars(
                    select(devices.c.device_id)
                    .where(
                        (devices.c.user_name == user) & (devices.c.device_id != device.device_id)
                    )
                    .order_by(devices.c.device_id)
                )
                for device_id in list(others):
                    removed.append(DeviceRef(user, device_id))
                for gone in removed:
                    await self._delete_device(conn, gone)
                await conn.execute(
                    delete(device_removals).where(device_removals.c.user_name == user)
                )
                await conn.execute(delete(accounts).where(accounts.c.user_name == user))
            await conn.execute(
                accounts.insert().values(user_name=user, **_account_values(account, now_ms))
            )
            return removed

    async def change_devices(
        self,
        user: str,
        expected_version: int,
        account: AccountRecord,
        certified: Certification | None,
        removed: Removal | None,
        now_ms: int,
    ) -> bool:
        async with self._write() as conn:
            result = await conn.execute(
                update(accounts)
                .where(
                    (accounts.c.user_name == user)
                    & (accounts.c.list_version == expected_version)
                    & (accounts.c.account_key == account.account_key)
                )
                .values(**_account_values(account, now_ms))
            )
            if result.rowcount == 0:
                return False
            if certified is not None:
                await self._set_certificate(
                    conn, DeviceRef(user, certified.device_id), certified.certificate
                )
            if removed is not None:
                await conn.execute(
                    self._insert_ignoring_conflicts(device_removals).values(
                        user_name=user,
                        device_id=removed.device_id,
                        identity_digest=removed.identity_digest,
                        removal=removed.statement,
                        removed_at_ms=now_ms,
                    )
                )
                await self._delete_device(conn, DeviceRef(user, removed.device_id))
            return True

    async def list_removals(self, user: str) -> list[bytes]:
        async with self._read() as conn:
            result = await conn.scalars(
                select(device_removals.c.removal)
                .where(device_removals.c.user_name == user)
                .order_by(device_removals.c.removed_at_ms, device_removals.c.device_id)
            )
            return list(result)

    async def list_room_device_records(self, room: str) -> list[Device]:
        query = (
            select(devices)
            .join(room_members, room_members.c.user_name == devices.c.user_name)
            .where(room_members.c.room_name == room)
            .order_by(devices.c.user_name, devices.c.device_id)
        )
        async with self._read() as conn:
            return [device_from_row(row) for row in await conn.execute(query)]

    # ---- the link relay ------------------------------------------------------------------
    def _slot(self, user: str, relay_id: str, slot: LinkSlot) -> Any:
        return (
            (link_messages.c.user_name == user)
            & (link_messages.c.relay_id == relay_id)
            & (link_messages.c.slot == slot.value)
        )

    async def put_link_message(
        self, user: str, relay_id: str, slot: LinkSlot, data: bytes, now_ms: int, expires_at_ms: int
    ) -> bool:
        async with self._write() as conn:
            await conn.execute(
                delete(link_messages).where(
                    self._slot(user, relay_id, slot) & (link_messages.c.expires_at_ms <= now_ms)
                )
            )
            inserted = await conn.scalar(
                self._insert_ignoring_conflicts(link_messages)
                .values(
                    user_name=user,
                    relay_id=relay_id,
                    slot=slot.value,
                    message=data,
                    expires_at_ms=expires_at_ms,
                )
                .returning(link_messages.c.relay_id)
            )
            return inserted is not None

    async def get_link_message(
        self, user: str, relay_id: str, slot: LinkSlot, now_ms: int
    ) -> bytes | None:
        async with self._read() as conn:
            found: bytes | None = await conn.scalar(
                select(link_messages.c.message).where(
                    self._slot(user, relay_id, slot) & (link_messages.c.expires_at_ms > now_ms)
                )
            )
            return found

    async def purge_link_messages(self, now_ms: int) -> int:
        async with self._write() as conn:
            result = await conn.execute(
                delete(link_messages).where(link_messages.c.expires_at_ms <= now_ms)
            )
            return int(result.rowcount)
