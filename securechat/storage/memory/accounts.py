"""Accounts in memory: users, sessions, invites, revocations and stats."""

from __future__ import annotations

from dataclasses import replace

from securechat.domain.model import (
    Invite,
    LoginRecord,
    Role,
    Session,
    StoreStats,
    User,
)
from securechat.storage import rules
from securechat.storage.memory.state import MemoryState


class AccountsMemory(MemoryState):
    """Users, sessions, registration invites, revocations and stats."""

    # ---- accounts -------------------------------------------------------------------------
    async def create_user(
        self,
        name: str,
        password_hash: bytes,
        role: Role,
        now_ms: int,
        login: LoginRecord | None = None,
    ) -> User:
        if name in self._users:
            raise rules.user_taken(name)
        user = User(name, password_hash, role, now_ms, login)
        self._users[name] = user
        self._last_device_id[name] = 0
        return user

    async def get_user(self, name: str) -> User | None:
        return self._users.get(name)

    async def set_user_password_and_role(self, name: str, password_hash: bytes, role: Role) -> None:
        self._users[name] = replace(
            self._user(name), password_hash=password_hash, role=role, login=None
        )

    async def set_login(self, name: str, password_hash: bytes, login: LoginRecord) -> bool:
        user = self._user(name)
        if user.login is not None:
            return False
        self._users[name] = replace(user, password_hash=password_hash, login=login)
        return True

    # ---- sessions -------------------------------------------------------------------------
    async def create_session(self, session: Session) -> None:
        self._user(session.user)
        if session.token_hash in self._sessions:
            raise rules.session_exists()
        self._sessions[bytes(session.token_hash)] = session

    async def get_session(self, token_hash: bytes) -> Session | None:
        return self._sessions.get(token_hash)

    async def revoke_session(self, token_hash: bytes) -> bool:
        return self._sessions.pop(token_hash, None) is not None

    async def revoke_user_sessions(self, user: str) -> int:
        return self._drop_sessions(lambda s: s.user == user)

    async def purge_expired_sessions(self, now_ms: int) -> int:
        return self._drop_sessions(lambda s: s.expires_at_ms <= now_ms)

    async def revoke_certificate_sessions(self, fingerprint: str, serial_hex: str) -> list[bytes]:
        doomed = [
            k
            for k, s in self._sessions.items()
            if (fingerprint and s.cert_fingerprint == fingerprint)
            or (serial_hex and s.cert_serial == serial_hex)
        ]
        for key in doomed:
            del self._sessions[key]
        return doomed

    # ---- registration invites -------------------------------------------------------------
    async def create_invite(self, invite: Invite) -> None:
        if invite.code_hash in self._invites:
            raise rules.invite_taken()
        self._invites[bytes(invite.code_hash)] = (invite, None)

    async def redeem_invite(self, code_hash: bytes, user: str, now_ms: int) -> bool:
        found = self._invites.get(code_hash)
        if found is None or found[1] is not None or found[0].expires_at_ms <= now_ms:
            return False
        self._invites[code_hash] = (found[0], user)
        return True

    async def release_invite(self, code_hash: bytes) -> None:
        found = self._invites.get(code_hash)
        if found is not None:
            self._invites[code_hash] = (found[0], None)

    # ---- revocations and stats ------------------------------------------------------------
    async def add_revocation(
        self, serial_hex: str, fingerprint: str, subject: str, now_ms: int
    ) -> None:
        self._revocations.setdefault(serial_hex, (fingerprint, subject, now_ms))

    async def list_revocations(self) -> list[tuple[str, str]]:
        ordered = sorted(self._revocations.items(), key=lambda kv: (kv[1][2], kv[0]))
        return [(serial, fingerprint) for serial, (fingerprint, _, _) in ordered]

    async def stats(self) -> StoreStats:
        pending = sum(len(s.mailbox) for s in self._devices.values())
        return StoreStats(len(self._users), len(self._rooms), pending)
