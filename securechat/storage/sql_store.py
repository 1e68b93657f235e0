"""The SQL Store: accounts, sessions, devices, rooms, contacts and revocations (SQLAlchemy Core).

``SqlStore`` is the one query implementation shared by ``SqliteStore`` and ``PostgresStore``; the
key directory and mailbox queries live in ``sql_keys`` and ``sql_mailbox``, the engine and
transaction plumbing in ``sql_core``. Only the dialect hooks of ``SqlCore`` differ per adapter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Row,
    Select,
    and_,
    bindparam,
    delete,
    func,
    literal,
    or_,
    select,
    union,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from securechat.domain.model import (
    Device,
    DeviceRef,
    Invite,
    LoginRecord,
    Role,
    Room,
    RoomSummary,
    RosterAppend,
    Session,
    StoreStats,
    User,
)
from securechat.storage import rules
from securechat.storage.schema import (
    contacts,
    devices,
    invites,
    mailbox,
    revocations,
    room_members,
    rooms,
    sessions,
    users,
)
from securechat.storage.sql_accounts import AccountsSql, device_from_row
from securechat.storage.sql_keys import KeyDirectorySql
from securechat.storage.sql_mailbox import MailboxSql
from securechat.storage.sql_rooms import RoomLogSql


def _user(row: Row[Any]) -> User:
    login = None
    if row.login_salt is not None:
        login = LoginRecord(
            row.login_salt, row.login_iterations, row.login_lanes, row.login_memory_kib
        )
    return User(row.name, row.password_hash, Role(row.role), row.created_at_ms, login)


def _login_values(login: LoginRecord | None) -> dict[str, Any]:
    if login is None:
        return dict.fromkeys(
            ("login_salt", "login_iterations", "login_lanes", "login_memory_kib"), None
        )
    return {
        "login_salt": login.salt,
        "login_iterations": login.iterations,
        "login_lanes": login.lanes,
        "login_memory_kib": login.memory_kib,
    }


def _session(row: Row[Any]) -> Session:
    return Session(
        token_hash=row.token_hash,
        user=row.user_name,
        device_id=row.device_id,
        role=Role(row.role),
        expires_at_ms=row.expires_at_ms,
        created_at_ms=row.created_at_ms,
        cert_subject=row.cert_subject,
        cert_fingerprint=row.cert_fingerprint,
        cert_serial=row.cert_serial,
    )


def _room(row: Row[Any]) -> Room:
    return Room(
        row.name, row.password_hash, row.created_by, row.created_at_ms, bool(row.listed),
        row.roster_length > 0,
    )  # fmt: skip


class SqlStore(KeyDirectorySql, MailboxSql, AccountsSql, RoomLogSql):
    """Every Store method, written once in SQLAlchemy Core for SQLite and PostgreSQL."""

    async def _require_user(self, conn: AsyncConnection, name: str) -> None:
        if await conn.scalar(select(users.c.name).where(users.c.name == name)) is None:
            raise rules.user_not_found(name)

    async def _require_room(self, conn: AsyncConnection, name: str) -> None:
        if await conn.scalar(select(rooms.c.name).where(rooms.c.name == name)) is None:
            raise rules.room_not_found(name)

    # ---- accounts -------------------------------------------------------------------------
    async def create_user(
        self,
        name: str,
        password_hash: bytes,
        role: Role,
        now_ms: int,
        login: LoginRecord | None = None,
    ) -> User:
        async with self._write() as conn:
            inserted = await conn.scalar(
                self._insert_ignoring_conflicts(users)
                .values(
                    name=name,
                    password_hash=password_hash,
                    role=role.value,
                    created_at_ms=now_ms,
                    **_login_values(login),
                )
                .returning(users.c.name)
            )
        if inserted is None:
            raise rules.user_taken(name)
        return User(name, password_hash, role, now_ms, login)

    async def get_user(self, name: str) -> User | None:
        async with self._read() as conn:
            row = (await conn.execute(select(users).where(users.c.name == name))).first()
        return None if row is None else _user(row)

    async def set_user_password_and_role(self, name: str, password_hash: bytes, role: Role) -> None:
        async with self._write() as conn:
            result = await conn.execute(
                update(users)
                .where(users.c.name == name)
                .values(password_hash=password_hash, role=role.value, **_login_values(None))
            )
            if result.rowcount == 0:
                raise rules.user_not_found(name)

    async def set_login(self, name: str, password_hash: bytes, login: LoginRecord) -> bool:
        async with self._write() as conn:
            await self._require_user(conn, name)
            result = await conn.execute(
                update(users)
                .where((users.c.name == name) & users.c.login_salt.is_(None))
                .values(password_hash=password_hash, **_login_values(login))
            )
            return bool(result.rowcount)

    # ---- sessions -------------------------------------------------------------------------
    async def create_session(self, session: Session) -> None:
        async with self._write() as conn:
            await self._require_user(conn, session.user)
            inserted = await conn.scalar(
                self._insert_ignoring_conflicts(sessions)
                .values(
                    token_hash=session.token_hash,
                    user_name=session.user,
                    device_id=session.device_id,
                    role=session.role.value,
                    expires_at_ms=session.expires_at_ms,
                    created_at_ms=session.created_at_ms,
                    cert_subject=session.cert_subject,
                    cert_fingerprint=session.cert_fingerprint,
                    cert_serial=session.cert_serial,
                )
                .returning(sessions.c.user_name)
            )
            if inserted is None:
                raise rules.session_exists()

    async def get_session(self, token_hash: bytes) -> Session | None:
        async with self._read() as conn:
            row = (
                await conn.execute(select(sessions).where(sessions.c.token_hash == token_hash))
            ).first()
        return None if row is None else _session(row)

    async def revoke_session(self, token_hash: bytes) -> bool:
        async with self._write() as conn:
            result = await conn.execute(delete(sessions).where(sessions.c.token_hash == token_hash))
            return bool(result.rowcount)

    async def revoke_user_sessions(self, user: str) -> int:
        async with self._write() as conn:
            result = await conn.execute(delete(sessions).where(sessions.c.user_name == user))
            return int(result.rowcount)

    async def purge_expired_sessions(self, now_ms: int) -> int:
        async with self._write() as conn:
            result = await conn.execute(delete(sessions).where(sessions.c.expires_at_ms <= now_ms))
            return int(result.rowcount)

    async def revoke_certificate_sessions(self, fingerprint: str, serial_hex: str) -> list[bytes]:
        matches = [
            column == value
            for column, value in (
                (sessions.c.cert_fingerprint, fingerprint),
                (sessions.c.cert_serial, serial_hex),
            )
            if value
        ]
        if not matches:
            return []
        async with self._write() as conn:
            result = await conn.scalars(
                delete(sessions).where(or_(*matches)).returning(sessions.c.token_hash)
            )
            return [bytes(token_hash) for token_hash in result]

    # ---- registration invites -------------------------------------------------------------
    async def create_invite(self, invite: Invite) -> None:
        async with self._write() as conn:
            inserted = await conn.scalar(
                self._insert_ignoring_conflicts(invites)
                .values(
                    code_hash=invite.code_hash,
                    created_by=invite.created_by,
                    created_at_ms=invite.created_at_ms,
                    expires_at_ms=invite.expires_at_ms,
                )
                .returning(invites.c.code_hash)
            )
        if inserted is None:
            raise rules.invite_taken()

    async def redeem_invite(self, code_hash: bytes, user: str, now_ms: int) -> bool:
        async with self._write() as conn:
            result = await conn.execute(
                update(invites)
                .where(
                    (invites.c.code_hash == code_hash)
                    & invites.c.used_by.is_(None)
                    & (invites.c.expires_at_ms > now_ms)
                )
                .values(used_by=user, used_at_ms=now_ms)
            )
            return bool(result.rowcount)

    async def release_invite(self, code_hash: bytes) -> None:
        async with self._write() as conn:
            await conn.execute(
                update(invites)
                .where(invites.c.code_hash == code_hash)
                .values(used_by=None, used_at_ms=None)
            )

    # ---- devices --------------------------------------------------------------------------
    async def add_device(self, user: str, now_ms: int) -> int:
        async with self._write() as conn:
            device_id = await conn.scalar(
                update(users)
                .where(users.c.name == user)
                .values(last_device_id=users.c.last_device_id + 1)
                .returning(users.c.last_device_id)
            )
            if device_id is None:
                raise rules.user_not_found(user)
            await conn.execute(
                devices.insert().values(
                    user_name=user, device_id=device_id, created_at_ms=now_ms, last_seen_ms=now_ms
                )
            )
            return int(device_id)

    async def remove_device(self, device: DeviceRef) -> bool:
        async with self._write() as conn:
            return await self._delete_device(conn, device)

    async def get_device(self, user: str, device_id: int) -> Device | None:
        async with self._read() as conn:
            row = (
                await conn.execute(
                    select(devices).where(
                        (devices.c.user_name == user) & (devices.c.device_id == device_id)
                    )
                )
            ).first()
        return None if row is None else device_from_row(row)

    async def list_devices(self, user: str) -> list[Device]:
        async with self._read() as conn:
            result = await conn.execute(
                select(devices).where(devices.c.user_name == user).order_by(devices.c.device_id)
            )
            return [device_from_row(row) for row in result]

    async def touch_devices(self, seen: Sequence[tuple[DeviceRef, int]]) -> None:
        if not seen:
            return
        statement = (
            update(devices)
            .where(
                (devices.c.user_name == bindparam("u"))
                & (devices.c.device_id == bindparam("d"))
                & (devices.c.last_seen_ms < bindparam("t"))
            )
            .values(last_seen_ms=bindparam("t"))
        )
        async with self._write() as conn:
            await conn.execute(
                statement, [{"u": d.user, "d": d.device_id, "t": now_ms} for d, now_ms in seen]
            )

    # ---- rooms ----------------------------------------------------------------------------
    async def create_room(
        self,
        name: str,
        password_hash: bytes | None,
        creator: str,
        now_ms: int,
        listed: bool = False,
        roster: RosterAppend | None = None,
    ) -> Room:
        head: dict[str, object] = {}
        if roster is not None:
            head = {"roster_length": 1, "roster_head": roster.event_hash,
                    "roster_state": roster.state}  # fmt: skip
        async with self._write() as conn:
            await self._require_user(conn, creator)
            inserted = await conn.scalar(
                self._insert_ignoring_conflicts(rooms)
                .values(
                    name=name,
                    password_hash=password_hash,
                    created_by=creator,
                    created_at_ms=now_ms,
                    listed=listed,
                    **head,
                )
                .returning(rooms.c.name)
            )
            if inserted is None:
                raise rules.room_taken(name)
            await conn.execute(
                room_members.insert().values(room_name=name, user_name=creator, joined_at_ms=now_ms)
            )
            if roster is not None:
                await self._insert_event(conn, roster)
        return Room(name, password_hash, creator, now_ms, listed, roster is not None)

    async def get_room(self, name: str) -> Room | None:
        async with self._read() as conn:
            row = (await conn.execute(select(rooms).where(rooms.c.name == name))).first()
        return None if row is None else _room(row)

    @staticmethod
    def _summaries(for_user: str) -> Select[Any]:
        member_count = (
            select(func.count()).where(room_members.c.room_name == rooms.c.name).scalar_subquery()
        )
        is_member = (
            select(room_members.c.user_name)
            .where(
                (room_members.c.room_name == rooms.c.name) & (room_members.c.user_name == for_user)
            )
            .exists()
        )
        return select(rooms, member_count.label("members"), is_member.label("member")).order_by(
            rooms.c.name
        )

    @staticmethod
    def _summary(row: Row[Any]) -> RoomSummary:
        return RoomSummary(
            row.name,
            int(row.members),
            row.password_hash is not None,
            bool(row.member),
            row.created_at_ms,
        )

    async def list_rooms(self, for_user: str) -> list[RoomSummary]:
        async with self._read() as conn:
            return [self._summary(row) for row in await conn.execute(self._summaries(for_user))]

    async def list_visible_rooms(self, user: str, after: str, limit: int) -> list[RoomSummary]:
        rules.check_page(limit)
        mine = (
            select(room_members.c.user_name)
            .where((room_members.c.room_name == rooms.c.name) & (room_members.c.user_name == user))
            .exists()
        )
        query = (
            self._summaries(user)
            .where(
                (rooms.c.name > after) & (rooms.c.password_hash.is_(None) | rooms.c.listed | mine)
            )
            .limit(limit)
        )
        async with self._read() as conn:
            return [self._summary(row) for row in await conn.execute(query)]

    async def room_summary(self, name: str, user: str) -> RoomSummary | None:
        async with self._read() as conn:
            row = (await conn.execute(self._summaries(user).where(rooms.c.name == name))).first()
        return None if row is None else self._summary(row)

    async def count_rooms_created_by(self, user: str) -> int:
        async with self._read() as conn:
            found = await conn.scalar(
                select(func.count()).select_from(rooms).where(rooms.c.created_by == user)
            )
        return int(found or 0)

    async def add_member(self, room: str, user: str, now_ms: int) -> bool:
        async with self._write() as conn:
            await self._require_room(conn, room)
            await self._require_user(conn, user)
            head = select(rooms.c.last_room_seq).where(rooms.c.name == room).scalar_subquery()
            inserted = await conn.scalar(
                self._insert_ignoring_conflicts(room_members)
                .values(room_name=room, user_name=user, joined_at_ms=now_ms, joined_room_seq=head)
                .returning(room_members.c.user_name)
            )
            return inserted is not None

    async def remove_member(self, room: str, user: str) -> bool:
        """The member's room positions go with them (as with a signed removal): a later
        rejoin starts at the log's head, and they no longer hold back the log's trim."""
        async with self._write() as conn:
            return await self._leave(conn, room, user)

    async def is_member(self, room: str, user: str) -> bool:
        async with self._read() as conn:
            found = await conn.scalar(
                select(literal(1)).where(
                    (room_members.c.room_name == room) & (room_members.c.user_name == user)
                )
            )
            return found is not None

    async def room_members(self, room: str) -> list[str]:
        async with self._read() as conn:
            result = await conn.scalars(
                select(room_members.c.user_name)
                .where(room_members.c.room_name == room)
                .order_by(room_members.c.user_name)
            )
            return list(result)

    async def room_devices(self, room: str) -> list[DeviceRef]:
        query = (
            select(devices.c.user_name, devices.c.device_id)
            .join(room_members, room_members.c.user_name == devices.c.user_name)
            .where(room_members.c.room_name == room)
            .order_by(devices.c.user_name, devices.c.device_id)
        )
        async with self._read() as conn:
            return [DeviceRef(user, device_id) for user, device_id in await conn.execute(query)]

    async def rooms_of(self, user: str) -> list[str]:
        async with self._read() as conn:
            result = await conn.scalars(
                select(room_members.c.room_name)
                .where(room_members.c.user_name == user)
                .order_by(room_members.c.room_name)
            )
            return list(result)

    async def record_contact(self, a: str, b: str, now_ms: int) -> None:
        first, second = rules.contact_pair(a, b)
        async with self._write() as conn:
            await self._require_user(conn, first)
            await self._require_user(conn, second)
            await conn.execute(
                self._insert_ignoring_conflicts(contacts).values(
                    user_a=first, user_b=second, created_at_ms=now_ms
                )
            )

    async def private_contacts_of(self, user: str) -> set[str]:
        query = union(
            select(contacts.c.user_b).where(contacts.c.user_a == user),
            select(contacts.c.user_a).where(contacts.c.user_b == user),
        )
        async with self._read() as conn:
            return set((await conn.scalars(query)).all())

    async def contacts_of(self, user: str) -> set[str]:
        mine = room_members.alias("mine")
        theirs = room_members.alias("theirs")
        query = union(
            select(theirs.c.user_name.label("name")).join(
                mine, and_(mine.c.room_name == theirs.c.room_name, mine.c.user_name == user)
            ),
            select(contacts.c.user_b).where(contacts.c.user_a == user),
            select(contacts.c.user_a).where(contacts.c.user_b == user),
        )
        async with self._read() as conn:
            found = set((await conn.scalars(query)).all())
        found.discard(user)
        return found

    # ---- revocations and stats ------------------------------------------------------------
    async def add_revocation(
        self, serial_hex: str, fingerprint: str, subject: str, now_ms: int
    ) -> None:
        async with self._write() as conn:
            await conn.execute(
                self._insert_ignoring_conflicts(revocations).values(
                    serial_hex=serial_hex,
                    fingerprint=fingerprint,
                    subject=subject,
                    revoked_at_ms=now_ms,
                )
            )

    async def list_revocations(self) -> list[tuple[str, str]]:
        query = select(revocations.c.serial_hex, revocations.c.fingerprint).order_by(
            revocations.c.revoked_at_ms, revocations.c.serial_hex
        )
        async with self._read() as conn:
            return [(serial, fingerprint) for serial, fingerprint in await conn.execute(query)]

    async def stats(self) -> StoreStats:
        def count(table: Any) -> Any:
            return select(func.count()).select_from(table).scalar_subquery()

        async with self._read() as conn:
            row = (await conn.execute(select(count(users), count(rooms), count(mailbox)))).one()
        return StoreStats(users=int(row[0]), rooms=int(row[1]), pending_messages=int(row[2]))
