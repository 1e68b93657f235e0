"""The device's private state (crypto account, last ack, seen ids) in the encrypted keystore.

Everything that must change together is saved together: the ratchet state, the mailbox
sequence the client has processed and the message ids it has shown, in one atomic keystore
write. The state is a small versioned JSON document inside the AES-GCM-SIV keystore, keyed by
the keystore key of the account password split (client/credentials.py): nothing the server
receives or stores opens it.

``SECURECHAT_KDF_PROFILE=test`` selects cheap Argon2id parameters for automated tests only: a
keystore made that way is far easier to brute-force. Anything else uses the defaults.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from securechat.crypto.account import CryptoAccount
from securechat.crypto.account_password import PasswordKeys
from securechat.crypto.keystore import DEFAULT_ARGON2, Argon2Params, Keystore
from securechat.crypto.randomness import require_backend_support
from securechat.crypto.room_keys import RoomKeys
from securechat.crypto.roster import Roster
from securechat.errors import ConfigError, InvalidArgument, KeystoreError

STATE_VERSION = 1
MAX_SEEN = 5000
HISTORY_KEY_BYTES = 32
MAX_WARNED = 1000
SAVE_SOON_S = 1.0  # how long a change recoverable from the server may wait for its save
TEST_ARGON2 = Argon2Params(iterations=1, lanes=1, memory_cost=1024)
KDF_PROFILES = {"": DEFAULT_ARGON2, "default": DEFAULT_ARGON2, "test": TEST_ARGON2}


def argon2_params(env: Mapping[str, str] = os.environ) -> Argon2Params:
    name = env.get("SECURECHAT_KDF_PROFILE", "")
    if name not in KDF_PROFILES:
        raise ConfigError("SECURECHAT_KDF_PROFILE", f"unknown value {name!r}: unset it")
    return KDF_PROFILES[name]


def now_s() -> int:
    return int(time.time())


@dataclass
class ClientState:
    """The client bookkeeping saved with the account."""

    last_ack: int = 0
    published: bool = False
    signed_prekey_at: int = 0
    seen: dict[str, None] = field(default_factory=dict)
    history_key: bytes = b""  # opens the message history (client/history.py); made on first use
    # A new device waiting for its link grant (it has no account key yet).
    linking: bool = False
    # The server holds this device's account key and certificate (False in profiles made before
    # accounts owned devices: the next start publishes them).
    account_published: bool = False
    # Warnings already shown once (rejected devices, list problems), by a stable key.
    warned: dict[str, None] = field(default_factory=dict)
    # Signed rooms (issue 15): the verified roster, this device's sender keys and the room
    # position processed (acknowledged), per room.
    rosters: dict[str, Roster] = field(default_factory=dict)
    room_keys: dict[str, RoomKeys] = field(default_factory=dict)
    room_acks: dict[str, int] = field(default_factory=dict)
    # Rooms from before signed rosters this user was seen a member of: once one of them has a
    # signed roster without the user, the client joins it again (client/room_upgrade.py).
    legacy_rooms: dict[str, None] = field(default_factory=dict)

    def remember(self, message_id: str) -> None:
        self.seen[message_id] = None
        while len(self.seen) > MAX_SEEN:
            del self.seen[next(iter(self.seen))]

    def first_time(self, key: str) -> bool:
        """True the first time ``key`` is asked about (then remembered, bounded)."""
        if key in self.warned:
            return False
        self.warned[key] = None
        while len(self.warned) > MAX_WARNED:
            del self.warned[next(iter(self.warned))]
        return True


class Vault:
    """An unlocked keystore: the account plus client state; call :meth:`save` after changes."""

    def __init__(self, keystore: Keystore, account: CryptoAccount, state: ClientState) -> None:
        self.keystore = keystore
        self.account = account
        self.state = state
        self._pending: asyncio.TimerHandle | None = None

    @classmethod
    def new_account(
        cls, user: str, device_id: int, *, linked: bool = False
    ) -> tuple[CryptoAccount, ClientState]:
        """A fresh device: the first of a new account key, or (``linked``) one waiting for a
        link grant."""
        require_backend_support()  # fail closed before any key is made
        account = CryptoAccount.create(user, device_id, now=now_s(), linked=linked)
        return account, ClientState(signed_prekey_at=now_s(), linking=linked)

    @classmethod
    def create(
        cls, path: Path, keys: PasswordKeys, account: CryptoAccount, state: ClientState
    ) -> Vault:
        """Save a new device's state under the keystore key, before anything is published."""
        keystore = Keystore.create_with_keys(path, keys, _encode(account, state))
        return cls(keystore, account, state)

    @classmethod
    def open(cls, path: Path, password: str) -> Vault:
        """Unlock the keystore with the password (any format, any salt; KeystoreError on a
        wrong password or damage)."""
        require_backend_support()
        return cls._unlocked(*Keystore.open(path, password))

    @classmethod
    def open_with_keys(cls, path: Path, keys: PasswordKeys) -> Vault:
        """Unlock with keys derived at login (KeystoreError when the keystore was sealed under
        other parameters: open it with the password, then :meth:`rekey`)."""
        require_backend_support()
        return cls._unlocked(*Keystore.open_with_keys(path, keys))

    @classmethod
    def _unlocked(cls, keystore: Keystore, data: bytes) -> Vault:
        account, state = _decode(data)
        vault = cls(keystore, account, state)
        if keystore.rolled_back:
            account.archive_sessions()
            for keys in state.room_keys.values():
                keys.forget_sending_chain()  # never reuse a chain position
            vault.save()
        return vault

    def rekey(self, keys: PasswordKeys) -> None:
        """Seal the keystore under the account's current password keys (format 2)."""
        self.keystore.rekey(keys, _encode(self.account, self.state))

    @property
    def rolled_back(self) -> bool:
        return self.keystore.rolled_back

    def save(self) -> None:
        """Encrypt and write everything now (a pending :meth:`save_soon` included)."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        self.keystore.save(_encode(self.account, self.state))

    def save_soon(self, delay_s: float | None = None) -> None:
        """Save within ``delay_s``, once for every change made meanwhile: for changes whose loss
        in a crash the client recovers from the server (verified roster events: a restart
        fetches them again from the saved head). Each save encrypts the whole keystore, so a
        room of n members verified one join at a time cost n saves of a growing state. Any
        :meth:`save` meanwhile covers it; :meth:`flush` saves a pending one at once. Default
        delay: :data:`SAVE_SOON_S`."""
        if self._pending is None:
            delay = SAVE_SOON_S if delay_s is None else delay_s
            self._pending = asyncio.get_running_loop().call_later(delay, self.save)

    def flush(self) -> None:
        """Save now if a :meth:`save_soon` is pending (at the end of a session)."""
        if self._pending is not None:
            self.save()

    def login_secret(self) -> str | None:
        """The login secret derived when the keystore was unlocked (the authenticator, base64;
        None for a format-1 keystore): what logs this device in again without the password."""
        authenticator = self.keystore.authenticator
        return None if authenticator is None else base64.b64encode(authenticator).decode("ascii")

    def history_key(self) -> bytes:
        """The random key of this device's message history, made and saved on first use."""
        if not self.state.history_key:
            self.state.history_key = os.urandom(HISTORY_KEY_BYTES)
            self.save()
        return self.state.history_key


def _encode(account: CryptoAccount, state: ClientState) -> bytes:
    document: dict[str, Any] = {
        "version": STATE_VERSION,
        "account": base64.b64encode(account.to_bytes()).decode("ascii"),
        "last_ack": state.last_ack,
        "published": state.published,
        "signed_prekey_at": state.signed_prekey_at,
        "seen": list(state.seen),
        "linking": state.linking,
        "account_published": state.account_published,
        "warned": list(state.warned),
    }
    if state.rosters:
        document["rosters"] = {room: _b64(r.to_bytes()) for room, r in state.rosters.items()}
    if state.room_keys:
        document["room_keys"] = {room: _b64(k.to_bytes()) for room, k in state.room_keys.items()}
    if state.room_acks:
        document["room_acks"] = dict(state.room_acks)
    if state.legacy_rooms:
        document["legacy_rooms"] = list(state.legacy_rooms)
    if state.history_key:
        document["history_key"] = base64.b64encode(state.history_key).decode("ascii")
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _decode(data: bytes) -> tuple[CryptoAccount, ClientState]:
    try:
        document: dict[str, Any] = json.loads(data)
        if document.get("version") != STATE_VERSION:
            raise KeystoreError(
                f"keystore state version {document.get('version')} is not supported: "
                "upgrade securechat"
            )
        account = CryptoAccount.from_bytes(base64.b64decode(document["account"]))
        state = ClientState(
            last_ack=int(document["last_ack"]),
            published=bool(document["published"]),
            signed_prekey_at=int(document["signed_prekey_at"]),
            seen=dict.fromkeys(str(i) for i in document["seen"]),
            history_key=base64.b64decode(document.get("history_key", "")),
            linking=bool(document.get("linking", False)),
            account_published=bool(document.get("account_published", False)),
            warned=dict.fromkeys(str(i) for i in document.get("warned", ())),
            rosters={
                str(room): Roster.from_bytes(base64.b64decode(data))
                for room, data in document.get("rosters", {}).items()
            },
            room_keys={
                str(room): RoomKeys.from_bytes(base64.b64decode(data))
                for room, data in document.get("room_keys", {}).items()
            },
            room_acks={str(room): int(n) for room, n in document.get("room_acks", {}).items()},
            legacy_rooms=dict.fromkeys(str(r) for r in document.get("legacy_rooms", ())),
        )
    except KeystoreError:
        raise
    except (ValueError, KeyError, TypeError, InvalidArgument) as exc:
        raise KeystoreError("the keystore content is damaged: restore it or register anew") from exc
    return account, state
