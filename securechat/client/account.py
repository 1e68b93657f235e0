"""From options and a password to a ready client: register, log in, resume, unlock the keys."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from securechat.client.messenger import Messenger
from securechat.client.passwords import SecretSource
from securechat.client.profile import Profile, SessionToken
from securechat.client.rpc.api import Api
from securechat.client.rpc.channel import DEFAULT_SERVER, Endpoint, resolve_path
from securechat.client.upkeep import Upkeep, maintain
from securechat.client.vault import Vault
from securechat.domain.names import check_name, check_new_username, check_password
from securechat.errors import FailedPrecondition, InvalidArgument, Unauthenticated


@dataclass
class Options:
    """The global command-line options."""

    server: str | None = None
    profile: str = "default"
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    debug: bool = False
    secrets: SecretSource = field(default_factory=SecretSource)
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)


@dataclass
class Client:
    """A connected client; ``vault``/``messenger`` are set when the keystore is unlocked."""

    profile: Profile
    endpoint: Endpoint
    api: Api
    session: SessionToken | None = None
    vault: Vault | None = None
    upkeep: Upkeep | None = None

    @property
    def user(self) -> str:
        if self.session is None:
            raise Unauthenticated("not logged in: run `securechat login USER`")
        return self.session.user

    @property
    def messenger(self) -> Messenger:
        if self.vault is None:
            raise FailedPrecondition("the keystore is locked")
        return Messenger(self.api, self.vault)

    async def close(self) -> None:
        await self.api.close()
        self.profile.unlock()


def endpoint_for(options: Options, profile: Profile) -> Endpoint:
    remembered = profile.settings
    server = (
        options.server or options.env.get("SECURECHAT_SERVER") or remembered.server
    ) or DEFAULT_SERVER
    return Endpoint(
        server,
        resolve_path("ca", options.ca, remembered.ca, options.env),
        resolve_path("cert", options.cert, remembered.cert, options.env),
        resolve_path("key", options.key, remembered.key, options.env),
    )


def connect(options: Options, *, lock: bool = False) -> Client:
    """Open the profile (locked when the keystore will be used) and a channel; no RPC yet."""
    profile = Profile.open(options.profile)
    if lock:
        profile.lock()
    try:
        endpoint = endpoint_for(options, profile)
        api = Api(endpoint.open())
    except BaseException:
        profile.unlock()
        raise
    return Client(profile, endpoint, api, profile.load_session())


def _remember(client: Client, user: str, device_id: int) -> None:
    settings = client.profile.settings
    settings.server = client.endpoint.server
    settings.ca, settings.cert = str(client.endpoint.ca), str(client.endpoint.cert)
    settings.key = str(client.endpoint.key)
    settings.user, settings.device_id = user, device_id
    client.profile.save_settings()


async def _login_device(client: Client, user: str, password: str, device_id: int) -> None:
    result = await client.api.login(user, password, device_id)
    client.session = SessionToken(
        result.token, result.expires_at_ms, user, result.device_id, result.role
    )
    client.profile.save_session(client.session)
    _remember(client, user, result.device_id)


async def register(client: Client, user: str, password: str) -> None:
    """Create the account, log this device in, create and publish its keys."""
    check_new_username(user)
    check_password(password)
    _refuse_other_account(client, user)
    if client.profile.has_keystore():
        raise FailedPrecondition(
            f"profile {client.profile.name!r} already holds keys for {user}: "
            "use `securechat login` or another --profile"
        )
    await client.api.register(user, password)
    await login(client, user, password)


async def login(client: Client, user: str, password: str) -> None:
    """Log in; on a profile without keys, register a new device and publish its bundle."""
    check_name(user)
    _refuse_other_account(client, user)
    if client.profile.has_keystore():
        client.vault = Vault.open(client.profile.keystore_path, password)
        device_id = client.vault.account.address.device_id
        await _login_device(client, user, password, device_id)
    else:
        await _login_device(client, user, password, 0)
        assert client.session is not None
        client.vault = Vault.create(
            client.profile.keystore_path, password, user, client.session.device_id
        )
    client.upkeep = await maintain(client.api, client.vault)


def _refuse_other_account(client: Client, user: str) -> None:
    known = client.profile.settings.user
    if known and known != user and client.profile.has_keystore():
        raise FailedPrecondition(
            f"profile {client.profile.name!r} belongs to {known}: use --profile NAME for {user}"
        )


async def resume(client: Client, secrets: SecretSource | None) -> None:
    """Use the saved session; with ``secrets``, unlock the keystore (re-logging in if expired)."""
    session = client.session
    if session is None:
        raise Unauthenticated(
            f"not logged in on profile {client.profile.name!r}: run `securechat login USER`"
        )
    client.api.token = session.token
    if secrets is None:
        return
    if not client.profile.has_keystore():
        raise FailedPrecondition(
            f"profile {client.profile.name!r} has no keys: run `securechat login {session.user}`"
        )
    password = secrets.account_password()
    client.vault = Vault.open(client.profile.keystore_path, password)
    if client.vault.account.address.user != session.user:
        raise FailedPrecondition("the keystore and the session belong to different users")
    if session.expires_at_ms <= time.time() * 1000:
        await _login_device(client, session.user, password, session.device_id)
    client.upkeep = await maintain(client.api, client.vault)


async def logout(client: Client) -> None:
    if client.session is None:
        raise InvalidArgument("not logged in on this profile: nothing to do")
    client.api.token = client.session.token
    with contextlib.suppress(Unauthenticated):  # already expired: forgetting it is all we do
        await client.api.logout()
    client.profile.clear_session()
    client.session = None
