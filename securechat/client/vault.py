"""The device's private state (crypto account, last ack, seen ids) in the encrypted keystore.

Everything that must change together is saved together: the ratchet state, the mailbox
sequence the client has processed and the message ids it has shown, in one atomic keystore
write. The state is a small versioned JSON document inside the AES-GCM-SIV keystore.

``SECURECHAT_KDF_PROFILE=test`` selects cheap Argon2id parameters for automated tests only: a
keystore made that way is far easier to brute-force. Anything else uses the defaults.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from securechat.crypto.account import CryptoAccount
from securechat.crypto.keystore import DEFAULT_ARGON2, Argon2Params, Keystore
from securechat.crypto.randomness import require_backend_support
from securechat.errors import ConfigError, InvalidArgument, KeystoreError

STATE_VERSION = 1
MAX_SEEN = 5000
HISTORY_KEY_BYTES = 32
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

    def remember(self, message_id: str) -> None:
        self.seen[message_id] = None
        while len(self.seen) > MAX_SEEN:
            del self.seen[next(iter(self.seen))]


class Vault:
    """An unlocked keystore: the account plus client state; call :meth:`save` after changes."""

    def __init__(self, keystore: Keystore, account: CryptoAccount, state: ClientState) -> None:
        self.keystore = keystore
        self.account = account
        self.state = state

    @classmethod
    def create(cls, path: Path, password: str, user: str, device_id: int) -> Vault:
        """A fresh account for ``user``/``device_id``, saved before anything is published."""
        require_backend_support()  # fail closed before any key is made
        account = CryptoAccount.create(user, device_id, now=now_s())
        state = ClientState(signed_prekey_at=now_s())
        keystore = Keystore.create(path, password, _encode(account, state), params=argon2_params())
        return cls(keystore, account, state)

    @classmethod
    def open(cls, path: Path, password: str) -> Vault:
        """Unlock the keystore (KeystoreError on a wrong password or damage)."""
        require_backend_support()
        keystore, data = Keystore.open(path, password)
        account, state = _decode(data)
        vault = cls(keystore, account, state)
        if keystore.rolled_back:
            account.archive_sessions()
            vault.save()
        return vault

    @property
    def rolled_back(self) -> bool:
        return self.keystore.rolled_back

    def save(self) -> None:
        self.keystore.save(_encode(self.account, self.state))

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
    }
    if state.history_key:
        document["history_key"] = base64.b64encode(state.history_key).decode("ascii")
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


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
        )
    except KeystoreError:
        raise
    except (ValueError, KeyError, TypeError, InvalidArgument) as exc:
        raise KeystoreError("the keystore content is damaged: restore it or register anew") from exc
    return account, state
