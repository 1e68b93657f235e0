"""From options and a password to a ready client: register, log in, resume, unlock the keys."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from securechat.client.credentials import derive, fetch_login, new_keys
from securechat.client.linking import account_request, join_account
from securechat.client.messenger import Messenger
from securechat.client.passwords import SecretSource
from securechat.client.profile import Profile, SessionToken
from securechat.client.rpc.api import Api, ServerLogin
from securechat.client.rpc.channel import DEFAULT_SERVER, Endpoint, resolve_path
from securechat.client.upkeep import Upkeep, maintain
from securechat.client.vault import Vault, now_s
from securechat.client.verified import Notify
from securechat.crypto.account_password import LoginParameters, PasswordKeys
from securechat.crypto.linking import LinkJoiner
from securechat.domain.names import check_name, check_new_username, check_password
from securechat.errors import (
    FailedPrecondition,
    InvalidArgument,
    KeystoreError,
    SecureChatError,
    Unauthenticated,
)

Say = Callable[[str], None]


def _quiet(text: str) -> None:
    return None


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
        return self.messenger_for(None)

    def messenger_for(self, notify: Notify | None) -> Messenger:
        """A messenger that tells ``notify`` what it learns (key changes, device notices)."""
        if self.vault is None:
            raise FailedPrecondition("the keystore is locked")
        return Messenger(self.api, self.vault, notify)

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


async def _login_device(client: Client, user: str, secret: str, device_id: int) -> None:
    result = await client.api.login(user, secret, device_id)
    client.session = SessionToken(
        result.token, result.expires_at_ms, user, result.device_id, result.role
    )
    client.profile.save_session(client.session)
    _remember(client, user, result.device_id)


def _parameters(keys: PasswordKeys) -> LoginParameters:
    return LoginParameters(keys.salt, keys.params)


async def register(client: Client, user: str, password: str) -> None:
    """Create the account (its secret is the authenticator, never the password), log this
    device in as the first device of a new account key, publish the key and the device's keys."""
    check_new_username(user)
    check_password(password)
    _refuse_other_account(client, user)
    if client.profile.has_keystore():
        raise FailedPrecondition(
            f"profile {client.profile.name!r} already holds keys for {user}: "
            "use `securechat login` or another --profile"
        )
    keys = await new_keys(password)
    await client.api.register(user, keys.authenticator_text(), _parameters(keys))
    await _login_device(client, user, keys.authenticator_text(), 0)
    await _new_device(client, user, keys, joiner=None, reset=False)
    assert client.vault is not None
    client.upkeep = await maintain(client.api, client.vault)


async def login(
    client: Client,
    user: str,
    password: str,
    *,
    link_code: str | None = None,
    reset: bool = False,
    say: Say = _quiet,
) -> None:
    """Log in. A profile with keys unlocks them and migrates what is old (a legacy password
    login, a format-1 keystore, a device without an account key). A profile without keys
    becomes a new device: linked with ``link_code`` (shown by `securechat devices link` on
    another device), the first device when the account has no account key yet, or, with
    ``reset``, the one device of a new account key."""
    check_name(user)
    _refuse_other_account(client, user)
    joiner = LinkJoiner.from_text(link_code) if link_code is not None else None
    server = await fetch_login(client.api, user)
    if client.profile.has_keystore():
        await _existing_device(client, user, password, server)
        assert client.vault is not None
        if joiner is not None:
            if not client.vault.state.linking:
                raise FailedPrecondition(
                    f"this profile is already a device of {user}: --link is for a new device "
                    "(use another --profile)"
                )
            await join_account(client.api, client.vault, joiner, say)
        await _settle_account(client, say)
    else:
        if server.legacy_password:
            keys, secret = await new_keys(password), password
        else:
            keys = await derive(password, server.login)
            secret = keys.authenticator_text()
        await _login_device(client, user, secret, 0)
        if server.legacy_password:
            await client.api.upgrade_login(keys.authenticator_text(), _parameters(keys))
        await _new_device(client, user, keys, joiner=joiner, reset=reset, say=say)
    assert client.vault is not None
    client.upkeep = await maintain(client.api, client.vault)


async def _new_device(
    client: Client,
    user: str,
    keys: PasswordKeys,
    *,
    joiner: LinkJoiner | None,
    reset: bool,
    say: Say = _quiet,
) -> None:
    """Keys for the device just logged in: joined by a link, or the first of an account key."""
    assert client.session is not None
    has_key = bool((await client.api.get_account(user)).account_key)
    if joiner is None and has_key and not reset:
        await _forget_session(client)
        raise FailedPrecondition(
            f"{user} already has devices: on one of them run `securechat devices link`, then "
            f"here `securechat login {user} --link CODE`. (Lost them all? `securechat login "
            f"{user} --reset` starts over with a new account key: every other device is removed "
            "and your contacts must accept the new key.)"
        )
    if joiner is not None and not has_key:
        await _forget_session(client)
        raise FailedPrecondition(
            f"{user} has no account key yet, so there is nothing to link to: log in on your "
            "existing device first, or log in here without --link"
        )
    account, state = Vault.new_account(user, client.session.device_id, linked=joiner is not None)
    client.vault = Vault.create(client.profile.keystore_path, keys, account, state)
    if joiner is not None:
        await join_account(client.api, client.vault, joiner, say)
    else:
        await client.api.publish_account(account_request(account, reset=reset and has_key))
    client.vault.state.account_published = True
    client.vault.save()


def _refuse_other_account(client: Client, user: str) -> None:
    known = client.profile.settings.user
    if known and known != user and client.profile.has_keystore():
        raise FailedPrecondition(
            f"profile {client.profile.name!r} belongs to {known}: use --profile NAME for {user}"
        )


async def _forget_session(client: Client) -> None:
    """Undo a login that made a device this profile will not keep."""
    with contextlib.suppress(SecureChatError):
        await client.api.logout()
    client.profile.clear_session()
    client.session = None


async def _existing_device(
    client: Client, user: str, password: str, server: ServerLogin, opened: Vault | None = None
) -> None:
    """Unlock this profile's keystore (unless ``opened``) and log its device in; then upgrade
    what is old: a legacy password login, a keystore sealed under other parameters (or
    format 1)."""
    path = client.profile.keystore_path
    keys: PasswordKeys | None = None
    if server.legacy_password:
        client.vault, secret = opened or Vault.open(path, password), password
    else:
        keys = await derive(password, server.login)
        if opened is not None:
            client.vault = opened
        else:
            try:
                client.vault = Vault.open_with_keys(path, keys)
            except KeystoreError:  # sealed under other parameters, or format 1
                client.vault = Vault.open(path, password)
        secret = keys.authenticator_text()
    vault = client.vault
    if vault.account.address.user != user:
        raise FailedPrecondition("the keystore and the account belong to different users")
    await _login_device(client, user, secret, vault.account.address.device_id)
    if keys is None:
        keys = await _upgrade_login(client, password)
    if vault.keystore.needs_migration or vault.keystore.login != _parameters(keys):
        vault.rekey(keys)  # only after the server accepted the login


async def _upgrade_login(client: Client, password: str) -> PasswordKeys:
    """Turn the legacy password account into an authenticator one, keeping the keystore's salt
    when it has one (format 2) so it need not be sealed again."""
    assert client.vault is not None
    keystore = client.vault.keystore
    if keystore.needs_migration:
        keys = await new_keys(password)
    else:
        keys = await derive(password, keystore.login)
    await client.api.upgrade_login(keys.authenticator_text(), _parameters(keys))
    return keys


async def _settle_account(client: Client, say: Say) -> None:
    """A device without an account key (made before accounts owned devices) makes one now;
    one whose key never reached the server publishes it."""
    vault = client.vault
    assert vault is not None
    if vault.state.linking:
        say("this device is waiting to be linked: run `securechat login USER --link CODE`")
        return
    user = vault.account.address.user
    served = (await client.api.get_account(user)).account_key
    if vault.account.account_key is None:
        if served:
            raise FailedPrecondition(
                f"{user} has an account key made on another device, and this older device is "
                f"not part of it: on that device run `securechat devices link`, then log in here "
                f"with a new profile: `securechat --profile NEW login {user} --link CODE`"
            )
        vault.account.devices.migrate(now=now_s())
        vault.save()
        await client.api.publish_account(account_request(vault.account))
        say(f"made an account key for {user}: contacts see it as signed by this device")
    elif not served:
        await client.api.publish_account(account_request(vault.account))
    vault.state.account_published = True
    vault.save()


async def resume(client: Client, secrets: SecretSource | None) -> None:
    """Use the saved session; with ``secrets``, unlock the keystore (logging in again when the
    session expired or the profile still has something old to migrate)."""
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
    vault = Vault.open(client.profile.keystore_path, password)
    if vault.account.address.user != session.user:
        raise FailedPrecondition("the keystore and the session belong to different users")
    client.vault = vault
    stale = vault.keystore.needs_migration or not (
        vault.state.account_published or vault.state.linking
    )
    if stale or session.expires_at_ms <= time.time() * 1000:
        server = await fetch_login(client.api, session.user)
        await _existing_device(client, session.user, password, server, opened=vault)
        await _settle_account(client, _quiet)
    client.upkeep = await maintain(client.api, client.vault)


async def logout(client: Client) -> None:
    if client.session is None:
        raise InvalidArgument("not logged in on this profile: nothing to do")
    client.api.token = client.session.token
    with contextlib.suppress(Unauthenticated):  # already expired: forgetting it is all we do
        await client.api.logout()
    client.profile.clear_session()
    client.session = None
