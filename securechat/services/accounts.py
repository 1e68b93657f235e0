"""Accounts and sessions: register, log in (throttled), log out, authenticate tokens."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from dataclasses import dataclass

from securechat.bus.port import Bus
from securechat.config import AuthConfig
from securechat.domain import names
from securechat.domain.events import (
    BusEvent,
    DeviceRemoved,
    Resync,
    SessionEnded,
    UserKicked,
)
from securechat.domain.model import DeviceRef, LoginRecord, Role, Session, User
from securechat.domain.ratelimit import FailureThrottle, KeyedBuckets
from securechat.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)
from securechat.services.acks import LastSeen
from securechat.services.clock import Clock
from securechat.services.logins import check_new_secret
from securechat.services.passwords import PasswordHasher
from securechat.storage.port import Store

log = logging.getLogger("securechat.accounts")

WRONG_CREDENTIALS = "wrong username or password"
PENDING_DEVICES = 5  # logged in, no keys, no certificate: kept per user (a link in progress)
SESSION_CACHE_SIZE = 50_000


def hash_token(token: str) -> bytes:
    """Only this digest of a session token is ever stored or compared."""
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclass(frozen=True, slots=True)
class LoginResult:
    token: str
    session: Session


class Accounts:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        hasher: PasswordHasher,
        config: AuthConfig,
        clock: Clock,
        last_seen: LastSeen,
        default_room: str,
        bind_cert_to_user: bool = False,
    ) -> None:
        self.store = store
        self.last_seen = last_seen
        self.bus = bus
        self.hasher = hasher
        self.config = config
        self.clock = clock
        self.default_room = default_room
        self.bind_cert_to_user = bind_cert_to_user
        self.user_throttle = FailureThrottle(
            config.max_failures_per_user, config.failure_window_s, config.lockout_s
        )
        self.peer_throttle = FailureThrottle(
            config.max_failures_per_peer, config.failure_window_s, config.lockout_s
        )
        self.registrations = KeyedBuckets(
            config.registrations_per_peer_per_hour / 3600.0,
            config.registrations_per_peer_per_hour,
        )
        self._sessions: dict[bytes, Session] = {}
        self._session_generation = 0
        self.login_outcomes: dict[str, int] = {"ok": 0, "failed": 0, "locked": 0, "invalid": 0}

    async def register(
        self, username: str, password: str, peer: str, login: LoginRecord | None = None
    ) -> User:
        """A new account: with ``login`` (salt and costs) the secret is an authenticator,
        without it the account is a legacy password account."""
        names.check_new_username(username)
        secret = check_new_secret(password, login)
        wait = self.registrations.take(peer, self.clock.monotonic())
        if wait:
            raise ResourceExhausted("too many registrations from this address", retry_after=wait)
        if await self.store.get_user(username) is not None:
            raise AlreadyExists(f"username {username!r} is taken: choose another")
        hashed = await self.hasher.hash(secret)
        now = self.clock.now_ms()
        user = await self.store.create_user(username, hashed, Role.USER, now, login)
        if self.default_room:
            await self._join_default_room(username, now)
        log.info("registered user=%s", username)
        return user

    async def _join_default_room(self, username: str, now: int) -> None:
        if await self.store.get_room(self.default_room) is None:
            try:
                await self.store.create_room(self.default_room, None, username, now)
                return
            except Exception:
                log.debug("default room created concurrently")
        await self.store.add_member(self.default_room, username, now)

    async def ensure_admin(self, username: str, password: str) -> None:
        """Create or update the bootstrap admin from SECURECHAT_ADMIN_USER/PASSWORD."""
        names.check_name(username)
        secret = names.check_password(password, what="admin password")
        existing = await self.store.get_user(username)
        if (
            existing is not None
            and existing.role is Role.ADMIN
            and await self.hasher.check(secret, existing.password_hash)
        ):
            return
        hashed = await self.hasher.hash(secret)
        created = False
        if existing is None:
            now = self.clock.now_ms()
            try:
                await self.store.create_user(username, hashed, Role.ADMIN, now)
                created = True
            except AlreadyExists:  # another node created it at the same moment
                pass
            else:
                if self.default_room:
                    await self._join_default_room(username, now)
        if not created:
            await self.store.set_user_password_and_role(username, hashed, Role.ADMIN)
        log.info("bootstrap admin ready user=%s", username)

    def _check_locks(self, username: str, peer: str, now: float) -> None:
        wait = max(
            self.user_throttle.retry_after(username, now), self.peer_throttle.retry_after(peer, now)
        )
        if wait:
            self.login_outcomes["locked"] += 1
            raise ResourceExhausted(
                "too many failed logins: wait before trying again", retry_after=wait
            )

    async def login(
        self,
        username: str,
        password: str,
        device_id: int,
        peer: str,
        cert_subject: str,
        cert_common_name: str | None,
    ) -> LoginResult:
        now = self.clock.monotonic()
        if not username or len(username) > 64 or not password:
            self.login_outcomes["invalid"] += 1
            raise InvalidArgument("username and password are required")
        if len(password.encode("utf-8")) > names.BCRYPT_MAX_BYTES:
            self.login_outcomes["invalid"] += 1
            raise InvalidArgument(
                f"password is longer than {names.BCRYPT_MAX_BYTES} bytes, so it cannot be right"
            )
        self._check_locks(username, peer, now)
        if self.bind_cert_to_user and cert_common_name != username:
            # Refused before the password is checked, so the answer says nothing about it.
            self.peer_throttle.fail(peer, now)
            self.login_outcomes["failed"] += 1
            raise Unauthenticated(
                "this server requires a client certificate issued to your username: "
                "ask the operator for one"
            )
        delay = max(self.user_throttle.delay(username, now), self.peer_throttle.delay(peer, now))
        if delay:
            await asyncio.sleep(delay)
        user = await self.store.get_user(username)
        ok = await self.hasher.check(password.encode("utf-8"), user.password_hash if user else None)
        now = self.clock.monotonic()
        if not ok or user is None:
            self.user_throttle.fail(username, now)
            self.peer_throttle.fail(peer, now)
            self.login_outcomes["failed"] += 1
            # An unknown name may be a password typed into the wrong field: never log it.
            shown = username if user is not None else "<unknown>"
            log.info("login failed user=%s peer=%s", shown, peer)
            raise Unauthenticated(WRONG_CREDENTIALS)
        self.user_throttle.succeed(username)
        now_ms = self.clock.now_ms()
        if device_id == 0:
            device_id = await self._new_device(username, now_ms)
        elif await self.store.get_device(username, device_id) is None:
            raise NotFound(f"device {device_id} is not registered for {username}: log in again")
        else:
            self.last_seen.seen(DeviceRef(username, device_id), now_ms)
        token = secrets.token_urlsafe(32)
        session = Session(
            token_hash=hash_token(token),
            user=username,
            device_id=device_id,
            role=user.role,
            expires_at_ms=now_ms + self.config.token_ttl_s * 1000,
            created_at_ms=now_ms,
            cert_subject=cert_subject,
        )
        await self.store.create_session(session)
        self.login_outcomes["ok"] += 1
        log.info("login ok user=%s device=%d", username, device_id)
        return LoginResult(token, session)

    async def _new_device(self, username: str, now_ms: int) -> int:
        """A new device of the account. It receives nothing until it has published keys (and,
        once the account has an account key, been certified by another device or by itself as
        the first one); the user's other devices are kept. Devices that logged in but never got
        keys nor a certificate are kept up to PENDING_DEVICES, the oldest dropped first."""
        device_id = await self.store.add_device(username, now_ms)
        pending = [
            DeviceRef(username, d.device_id)
            for d in await self.store.list_devices(username)
            if d.identity_key is None and d.certificate is None and d.device_id != device_id
        ]
        for stale in pending[: max(0, len(pending) - PENDING_DEVICES + 1)]:
            await self.store.remove_device(stale)
            await self.bus.publish(DeviceRemoved(stale))
        log.info("user=%s new device %d", username, device_id)
        return device_id

    async def authenticate(self, token: str) -> Session:
        """The live session for a bearer token, or Unauthenticated.

        Sessions are cached; logout (SessionEnded), kicks (UserKicked) and a bus resync drop
        them, so a revoked token is refused on every node as soon as it hears of it."""
        if not token or len(token) > 256:
            raise Unauthenticated("missing or malformed session token: log in again")
        token_hash = hash_token(token)
        session = self._sessions.get(token_hash)
        if session is None:
            generation = self._session_generation
            session = await self.store.get_session(token_hash)
            if session is not None and generation == self._session_generation:
                if len(self._sessions) >= SESSION_CACHE_SIZE:
                    self._sessions.clear()
                self._sessions[token_hash] = session
        if session is None:
            raise Unauthenticated(
                "session token is not valid (logged out or unknown): log in again"
            )
        if session.expires_at_ms <= self.clock.now_ms():
            raise Unauthenticated("session expired: log in again")
        return session

    def observe(self, event: BusEvent) -> None:
        """Forget cached sessions that an event may have ended."""
        if isinstance(event, SessionEnded):
            self._session_generation += 1
            self._sessions.pop(event.token_hash, None)
        elif isinstance(event, UserKicked | DeviceRemoved | Resync):
            self._session_generation += 1
            self._sessions.clear()

    async def logout(self, session: Session) -> None:
        self._sessions.pop(session.token_hash, None)
        await self.store.revoke_session(session.token_hash)
        await self.bus.publish(SessionEnded(session.token_hash))

    @staticmethod
    def require_admin(session: Session) -> None:
        if session.role is not Role.ADMIN:
            raise PermissionDenied("this call needs an admin account")
