"""Key-directory queries (bundles, prekeys, exactly-once claims) for the SQL Store adapters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Table, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from securechat.domain.model import (
    Bundle,
    ClaimedBundle,
    DeviceRef,
    KemPreKeyRecord,
    OneTimePreKeyRecord,
    PreKeyCounts,
    SignedPreKeyRecord,
)
from securechat.storage import rules
from securechat.storage.schema import devices, kem_prekeys, one_time_prekeys, signed_prekeys
from securechat.storage.sql_core import SqlCore


def _of(table: Table, device: DeviceRef) -> ColumnElement[bool]:
    return (table.c.user_name == device.user) & (table.c.device_id == device.device_id)


def _signed_row(device: DeviceRef, spk: SignedPreKeyRecord) -> dict[str, Any]:
    return {
        "user_name": device.user,
        "device_id": device.device_id,
        "key_id": spk.key_id,
        "public_key": spk.public_key,
        "created_at": spk.created_at,
        "signature": spk.signature,
    }


def _one_time_rows(device: DeviceRef, keys: Sequence[OneTimePreKeyRecord]) -> list[dict[str, Any]]:
    return [
        {
            "user_name": device.user,
            "device_id": device.device_id,
            "key_id": k.key_id,
            "public_key": k.public_key,
            "signature": k.signature,
        }
        for k in keys
    ]


def _kem_rows(device: DeviceRef, keys: Sequence[KemPreKeyRecord]) -> list[dict[str, Any]]:
    return [
        {
            "user_name": device.user,
            "device_id": device.device_id,
            "key_id": k.key_id,
            "public_key": k.public_key,
            "signature": k.signature,
            "last_resort": k.last_resort,
        }
        for k in keys
    ]


class KeyDirectorySql(SqlCore):
    """Store methods of the key directory."""

    async def _require_device(self, conn: AsyncConnection, device: DeviceRef) -> None:
        found = await conn.scalar(select(devices.c.device_id).where(_of(devices, device)))
        if found is None:
            raise rules.device_not_found(device)

    async def _counts(self, conn: AsyncConnection, device: DeviceRef) -> PreKeyCounts:
        one_time = await conn.scalar(
            select(func.count()).select_from(one_time_prekeys).where(_of(one_time_prekeys, device))
        )
        kem = await conn.scalar(
            select(func.count())
            .select_from(kem_prekeys)
            .where(_of(kem_prekeys, device) & ~kem_prekeys.c.last_resort)
        )
        return PreKeyCounts(one_time=int(one_time or 0), kem_one_time=int(kem or 0))

    async def _insert_keys(
        self,
        conn: AsyncConnection,
        device: DeviceRef,
        one_time: Sequence[OneTimePreKeyRecord],
        kem: Sequence[KemPreKeyRecord],
    ) -> None:
        if one_time:
            await conn.execute(insert(one_time_prekeys), _one_time_rows(device, one_time))
        if kem:
            await conn.execute(insert(kem_prekeys), _kem_rows(device, kem))

    async def publish_bundle(self, device: DeviceRef, bundle: Bundle) -> PreKeyCounts:
        rules.check_bundle(bundle)
        async with self._write() as conn:
            values: dict[str, Any] = {"identity_key": bundle.identity_key}
            if bundle.binding is not None:
                values["binding"] = bundle.binding
            updated = await conn.execute(update(devices).where(_of(devices, device)).values(values))
            if updated.rowcount == 0:
                raise rules.device_not_found(device)
            for table in (signed_prekeys, one_time_prekeys, kem_prekeys):
                await conn.execute(delete(table).where(_of(table, device)))
            await conn.execute(insert(signed_prekeys), [_signed_row(device, bundle.signed_prekey)])
            await self._insert_keys(
                conn, device, bundle.one_time_prekeys, rules.bundle_kem_records(bundle)
            )
            return await self._counts(conn, device)

    async def add_prekeys(
        self,
        device: DeviceRef,
        one_time: Sequence[OneTimePreKeyRecord],
        kem: Sequence[KemPreKeyRecord],
        signed_prekey: SignedPreKeyRecord | None,
    ) -> PreKeyCounts:
        rules.check_prekeys(one_time, kem)
        async with self._write() as conn:
            await self._require_device(conn, device)
            if any(k.last_resort for k in kem):  # a new last-resort key replaces the old one
                await conn.execute(
                    delete(kem_prekeys).where(_of(kem_prekeys, device) & kem_prekeys.c.last_resort)
                )
            for kind, table, ids in (
                ("one-time", one_time_prekeys, [k.key_id for k in one_time]),
                ("KEM", kem_prekeys, [k.key_id for k in kem]),
            ):
                if ids:
                    clash = await conn.scalar(
                        select(table.c.key_id)
                        .where(_of(table, device) & table.c.key_id.in_(ids))
                        .limit(1)
                    )
                    if clash is not None:
                        raise rules.existing_key_conflict(kind, int(clash))
            if signed_prekey is not None:
                await conn.execute(delete(signed_prekeys).where(_of(signed_prekeys, device)))
                await conn.execute(insert(signed_prekeys), [_signed_row(device, signed_prekey)])
            await self._insert_keys(conn, device, one_time, kem)
            return await self._counts(conn, device)

    async def count_prekeys(self, device: DeviceRef) -> PreKeyCounts:
        async with self._read() as conn:
            await self._require_device(conn, device)
            return await self._counts(conn, device)

    async def peek_bundle(self, device: DeviceRef) -> ClaimedBundle | None:
        async with self._read() as conn:
            identity_key = await conn.scalar(
                select(devices.c.identity_key).where(_of(devices, device))
            )
            spk_row = (
                await conn.execute(select(signed_prekeys).where(_of(signed_prekeys, device)))
            ).first()
            kem_row = (
                await conn.execute(
                    select(kem_prekeys)
                    .where(_of(kem_prekeys, device) & kem_prekeys.c.last_resort)
                    .order_by(kem_prekeys.c.key_id.desc())
                    .limit(1)
                )
            ).first()
        if identity_key is None or spk_row is None or kem_row is None:
            return None
        return ClaimedBundle(
            device=device,
            identity_key=identity_key,
            signed_prekey=SignedPreKeyRecord(
                spk_row.key_id, spk_row.public_key, spk_row.created_at, spk_row.signature
            ),
            one_time_prekey=None,
            kem_prekey=KemPreKeyRecord(kem_row.key_id, kem_row.public_key, kem_row.signature, True),
        )

    async def claim_bundle(self, device: DeviceRef) -> ClaimedBundle | None:
        async with self._write() as conn:
            identity_key = await conn.scalar(
                select(devices.c.identity_key).where(_of(devices, device))
            )
            spk_row = (
                await conn.execute(select(signed_prekeys).where(_of(signed_prekeys, device)))
            ).first()
            if identity_key is None or spk_row is None:
                return None
            kem = await self._take_kem(conn, device)
            if kem is None:  # no KEM key at all: the bundle is unusable, consume nothing
                return None
            otk_pick = self._claimable(
                select(one_time_prekeys.c.key_id)
                .where(_of(one_time_prekeys, device))
                .order_by(one_time_prekeys.c.key_id)
                .limit(1)
            )
            otk_row = (
                await conn.execute(
                    delete(one_time_prekeys)
                    .where(
                        _of(one_time_prekeys, device)
                        & (one_time_prekeys.c.key_id == otk_pick.scalar_subquery())
                    )
                    .returning(
                        one_time_prekeys.c.key_id,
                        one_time_prekeys.c.public_key,
                        one_time_prekeys.c.signature,
                    )
                )
            ).first()
            return ClaimedBundle(
                device=device,
                identity_key=identity_key,
                signed_prekey=SignedPreKeyRecord(
                    spk_row.key_id, spk_row.public_key, spk_row.created_at, spk_row.signature
                ),
                one_time_prekey=None
                if otk_row is None
                else OneTimePreKeyRecord(otk_row.key_id, otk_row.public_key, otk_row.signature),
                kem_prekey=kem,
            )

    async def _take_kem(self, conn: AsyncConnection, device: DeviceRef) -> KemPreKeyRecord | None:
        """Delete and return one KEM one-time key, else return (keep) the last-resort key."""
        cols = (
            kem_prekeys.c.key_id,
            kem_prekeys.c.public_key,
            kem_prekeys.c.signature,
            kem_prekeys.c.last_resort,
        )
        pick = self._claimable(
            select(kem_prekeys.c.key_id)
            .where(_of(kem_prekeys, device) & ~kem_prekeys.c.last_resort)
            .order_by(kem_prekeys.c.key_id)
            .limit(1)
        )
        row = (
            await conn.execute(
                delete(kem_prekeys)
                .where(_of(kem_prekeys, device) & (kem_prekeys.c.key_id == pick.scalar_subquery()))
                .returning(*cols)
            )
        ).first()
        if row is None:
            row = (
                await conn.execute(
                    select(*cols)
                    .where(_of(kem_prekeys, device) & kem_prekeys.c.last_resort)
                    .order_by(kem_prekeys.c.key_id.desc())
                    .limit(1)
                )
            ).first()
        if row is None:
            return None
        return KemPreKeyRecord(row.key_id, row.public_key, row.signature, bool(row.last_resort))
