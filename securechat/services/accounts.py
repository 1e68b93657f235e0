"""Accounts and sessions: register (open, invite or certificate), log in (fairly queued and
rate-limited), log out, authenticate tokens (bound to their certificate)."""

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
    CertificateRevoked,
    DeviceRemoved,
    Resync,
    SessionEnded,
    UserKicked,
)
from securechat.domain.model import (
    NO_CERTIFICATE,
    DeviceRef,
    LoginRecord,
    PeerCertificate,
    Role,
    Session,
    User,
)
from securechat.domain.ratelimit import KeyedBuckets, TokenBucket
from securechat.errors import (
    AlreadyExists,
    ConfigError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)
from securechat.services.acks import LastSeen
from securechat.services.clock import Clock
from securechat.services.login_limits import Attempt, LoginLimits
from securechat.services.logins import check_new_secret
from securechat.services.passwords import HashTicket, PasswordHasher
from securechat.storage.port import Store

log = logging.getLogger("securechat.accounts")

WRONG_CREDENTIALS = "wrong username or password"
PENDING_DEVICES = 5  # logged in, no keys, no certificate: kept per user (a link in progress)
SESSION_CACHE_SIZE = 50_000
MAX_INVITE_CODE = 64


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
        self.limits = LoginLimits(config)
        self.registrations = KeyedBuckets(
            config.registrations_per_peer_per_hour / 3600.0,
            config.registrations_per_peer_per_hour,
        )
        self.all_registrations = TokenBucket.full(
            config.registrations_per_hour / 3600.0,
            max(1.0, config.registrations_per_hour / 4),
            clock.monotonic(),
        )
        self._sessions: dict[bytes, Session] = {}
        # The token cached for each device: a device that logs in again replaces its entry
        # (issue 18: every login of a reconnecting client added one that stayed until the
        # cache was full, the soak's RSS growth). The old token still works: it is looked up.
        self._cached_token: dict[tuple[str, int], bytes] = {}
        self._session_generation = 0
        self.login_outcomes: dict[str, int] = {"ok": 0, "failed": 0, "locked": 0, "invalid": 0}

    # ---- registration ---------------------------------------------------------------------
    def _check_new_name(self, username: str) -> None:
        names.check_new_username(username)
        if username == self.config.admin_user:
            raise InvalidArgument(f"username {username!r} is reserved: choose another")

    def _check_registration_mode(
        self, username: str, certificate: PeerCertificate, invite_code: str
    ) -> None:
        mode = self.config.registration
        if mode == "certificate" and certificate.common_name != username:
            raise PermissionDenied(
                "this server registers only holders of a client certificate issued to the "
                "username: ask the operator for one"
            )
        if mode == "invite" and not invite_code:
            raise PermissionDenied(
                "this server registers only with an invite code: ask an admin for one"
            )
        if len(invite_code) > MAX_INVITE_CODE:
            raise InvalidArgument("the invite code is malformed: copy it again")

    def _take_registration(self, source: str) -> None:
        now = self.clock.monotonic()
        wait = self.registrations.wait(source, now) or self.all_registrations.wait(now)
        if wait:
            raise ResourceExhausted("too many registrations: try again later", retry_after=wait)
        self.registrations.take(source, now)
        self.all_registrations.take(now)

    async def register(
        self,
        username: str,
        password: str,
        source: str,
        certificate: PeerCertificate = NO_CERTIFICATE,
        invite_code: str = "",
        login: LoginRecord | None = None,
    ) -> User:
        """Create an account, as auth.registration allows (open, invite, certificate). With
        ``login`` (salt and costs) the secret is an authenticator; without it the account is a
        legacy password account."""
        self._check_new_name(username)
        secret = check_new_secret(password, login)
        self._check_registration_mode(username, certificate, invite_code)
        self._take_registration(source)
        if await self.store.get_user(username) is not None:
            raise AlreadyExists(f"username {username!r} is taken: choose another")
        now = self.clock.now_ms()
        invite = hash_token(invite_code) if self.config.registration == "invite" else None
        if invite is not None and not await self.store.redeem_invite(invite, username, now):
            raise PermissionDenied(
                "that invite code is not valid (unknown, already used or expired): ask an "
                "admin for a new one"
            )
        try:
            hashed = await self.hasher.hash(secret, HashTicket(username, source))
            user = await self.store.create_user(username, hashed, Role.USER, now, login)
        except BaseException:
            if invite is not None:
                await self.store.release_invite(invite)
            raise
        if self.default_room:
            await self._join_default_room(username, now)
        log.info("registered user=%s", username)
        return user

    async def _join_default_room(self, username: str, now: int) -> None:
        """Put a new user in the default room while it has no signed roster (a room from
        before rosters, created here on the first registration). Once a member has signed its
        CREATE, the server cannot add anyone (it cannot sign a JOIN): the client joins with a
        signed JOIN after registering (docs/protocol.md, "Rooms: signed rosters")."""
        room = await self.store.get_room(self.default_room)
        if room is None:
            try:
                await self.store.create_room(self.default_room, None, username, now)
                return
            except Exception:
                log.debug("default room created concurrently")
        elif room.signed:
            return
        await self.store.add_member(self.default_room, username, now)

    async def ensure_admin(self, username: str, password: str) -> None:
        """Create the bootstrap admin from SECURECHAT_ADMIN_USER/PASSWORD, or update its
        password. An existing ordinary account of that name is never promoted: it may have been
        registered by anyone before the name was configured (ConfigError)."""
        names.check_name(username)
        secret = names.check_password(password, what="admin password")
        existing = await self.store.get_user(username)
        if existing is not None and existing.role is not Role.ADMIN:
            raise ConfigError(
                "auth.admin_user",
                f"an ordinary account named {username!r} exists already, so it cannot become "
                "the bootstrap admin: choose another admin name",
            )
        if existing is not None and await self.hasher.check(secret, existing.password_hash):
            return
        hashed = await self.hasher.hash(secret)
        if existing is None:
            now = self.clock.now_ms()
            try:
                await self.store.create_user(username, hashed, Role.ADMIN, now)
            except AlreadyExists:  # another node created it at the same moment
                return
            if self.default_room:
                await self._join_default_room(username, now)
        else:
            await self.store.set_user_password_and_role(username, hashed, Role.ADMIN)
            await self.store.revoke_user_sessions(username)  # the old password's sessions end
            await self.bus.publish(UserKicked(username, "the admin password changed"))
        log.info("bootstrap admin ready user=%s", username)

    # ---- login ----------------------------------------------------------------------------
    async def login(
        self,
        username: str,
        password: str,
        device_id: int,
        peer: str,
        certificate: PeerCertificate = NO_CERTIFICATE,
    ) -> LoginResult:
        """Check the password (fairly queued, rate-limited: services/login_limits.py) and open a
        session bound to the client certificate the call came over. ``peer`` is the source key
        (domain/sources.py)."""
        if not username or len(username) > 64 or not password:
            self.login_outcomes["invalid"] += 1
            raise InvalidArgument("username and password are required")
        if len(password.encode("utf-8")) > names.BCRYPT_MAX_BYTES:
            self.login_outcomes["invalid"] += 1
            raise InvalidArgument(
                f"password is longer than {names.BCRYPT_MAX_BYTES} bytes, so it cannot be right"
            )
        now = self.clock.monotonic()
        if self.bind_cert_to_user and certificate.common_name != username:
            # Refused before the password is checked, so the answer says nothing about it.
            self.limits.refused(peer, now)
            self.login_outcomes["failed"] += 1
            raise Unauthenticated(
                "this server requires a client certificate issued to your username: "
                "ask the operator for one"
            )
        try:
            attempt = self.limits.begin(username, peer, now)
            user, ok = await self._check_password(attempt, password, now)
        except ResourceExhausted:
            self.login_outcomes["locked"] += 1
            raise
        if not ok or user is None:
            self.limits.failed(attempt, self.clock.monotonic())
            self.login_outcomes["failed"] += 1
            # An unknown name may be a password typed into the wrong field: never log it.
            shown = username if user is not None else "<unknown>"
            log.info("login failed user=%s peer=%s", shown, peer)
            raise Unauthenticated(WRONG_CREDENTIALS)
        self.limits.succeeded(attempt, self.clock.monotonic())
        return await self._open_session(user, device_id, certificate)

    async def _check_password(
        self, attempt: Attempt, password: str, now: float
    ) -> tuple[User | None, bool]:
        delay = self.limits.delay(attempt, now)
        if delay:
            self.limits.hold(attempt, delay)
            try:
                await asyncio.sleep(delay)
            finally:
                self.limits.release(attempt)
        user = await self.store.get_user(attempt.account)
        ticket = HashTicket(attempt.account, attempt.source, attempt.known)
        ok = await self.hasher.check(
            password.encode("utf-8"), user.password_hash if user else None, ticket
        )
        return user, ok

    async def _open_session(
        self, user: User, device_id: int, certificate: PeerCertificate
    ) -> LoginResult:
        username = user.name
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
            cert_subject=certificate.subject,
            cert_fingerprint=certificate.fingerprint,
            cert_serial=certificate.serial_hex,
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

    async def authenticate(self, token: str, certificate: PeerCertificate | None = None) -> Session:
        """The live session for a bearer token, or Unauthenticated.

        With tls.bind_client_cert_to_user, the token works only over the certificate it logged
        in with (``certificate`` is the one this call came over). Sessions are cached; logout
        (SessionEnded), kicks (UserKicked), certificate revocations and a bus resync drop them,
        so a revoked token is refused on every node as soon as it hears of it."""
        if not token or len(token) > 256:
            raise Unauthenticated("missing or malformed session token: log in again")
        token_hash = hash_token(token)
        session = self._sessions.get(token_hash)
        if session is None:
            generation = self._session_generation
            session = await self.store.get_session(token_hash)
            if session is not None and generation == self._session_generation:
                self._cache(token_hash, session)
        if session is None:
            raise Unauthenticated(
                "session token is not valid (logged out or unknown): log in again"
            )
        if session.expires_at_ms <= self.clock.now_ms():
            raise Unauthenticated("session expired: log in again")
        if (
            self.bind_cert_to_user
            and certificate is not None
            and session.cert_fingerprint
            and session.cert_fingerprint != certificate.fingerprint
        ):
            raise Unauthenticated(
                "this session was opened with another client certificate: log in with yours"
            )
        return session

    def _cache(self, token_hash: bytes, session: Session) -> None:
        if len(self._sessions) >= SESSION_CACHE_SIZE:
            self._sessions.clear()
            self._cached_token.clear()
        device = (session.user, session.device_id)
        previous = self._cached_token.get(device)
        if previous is not None and previous != token_hash:
            self._sessions.pop(previous, None)
        self._cached_token[device] = token_hash
        self._sessions[token_hash] = session

    async def end_certificate_sessions(self, fingerprint: str, serial_hex: str) -> int:
        """End every session that logged in over a certificate just revoked (all nodes)."""
        ended = await self.store.revoke_certificate_sessions(fingerprint, serial_hex)
        for token_hash in ended:
            await self.bus.publish(SessionEnded(token_hash))
        if ended:
            log.info("ended %d sessions of a revoked certificate", len(ended))
        return len(ended)

    def observe(self, event: BusEvent) -> None:
        """Forget cached sessions that an event may have ended."""
        if isinstance(event, SessionEnded):
            self._session_generation += 1
            self._sessions.pop(event.token_hash, None)
        elif isinstance(event, UserKicked | DeviceRemoved | Resync):
            self._session_generation += 1
            self._sessions.clear()
        elif isinstance(event, CertificateRevoked):
            self._session_generation += 1
            for token_hash, session in list(self._sessions.items()):
                if (event.fingerprint and session.cert_fingerprint == event.fingerprint) or (
                    event.serial_hex and session.cert_serial == event.serial_hex
                ):
                    del self._sessions[token_hash]

    async def logout(self, session: Session) -> None:
        self._sessions.pop(session.token_hash, None)
        await self.store.revoke_session(session.token_hash)
        await self.bus.publish(SessionEnded(session.token_hash))

    @staticmethod
    def require_admin(session: Session) -> None:
        if session.role is not Role.ADMIN:
            raise PermissionDenied("this call needs an admin account")
