"""A lying server, made by tampering with what an honest one stores.

A malicious operator controls the database: it can add a device row with keys of its own (a
ghost), or swap a user's account key and signed device list for ones it made. These helpers do
exactly that, to a running node's Store or to the SQLite file of a server process, so tests can
check what the *clients* do about it. Nothing here goes through the server's own checks.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from securechat.client.bundles import publish_request
from securechat.crypto.account import CryptoAccount
from securechat.crypto.account_key import AccountKeyPair
from securechat.crypto.certificates import DeviceCertificate, DeviceListHead
from securechat.crypto.identity import IdentityPublic
from securechat.domain.model import (
    AccountRecord,
    Bundle,
    DeviceRef,
    KemPreKeyRecord,
    OneTimePreKeyRecord,
    SignedPreKeyRecord,
)
from securechat.storage.port import Store


@dataclass
class Ghost:
    """A device the server made up: it holds the private keys, so it could read what it gets."""

    ref: DeviceRef
    crypto: CryptoAccount


def _bundle(crypto: CryptoAccount) -> Bundle:
    request = publish_request(crypto.upload_bundle())
    spk, lr = request.signed_prekey, request.last_resort_kem_prekey
    return Bundle(
        identity_key=request.identity_key,
        signed_prekey=SignedPreKeyRecord(spk.key_id, spk.public_key, spk.created_at, spk.signature),
        one_time_prekeys=[
            OneTimePreKeyRecord(k.key_id, k.public_key, k.signature)
            for k in request.one_time_prekeys
        ],
        kem_prekeys=[
            KemPreKeyRecord(k.key_id, k.public_key, k.signature, False) for k in request.kem_prekeys
        ],
        last_resort=KemPreKeyRecord(lr.key_id, lr.public_key, lr.signature, True),
    )


async def inject_ghost(store: Store, user: str, database: Path | None = None) -> Ghost:
    """Add a device with keys of the server's own to ``user``; with ``database`` (the SQLite
    file behind ``store``) it also gets a certificate signed by a key the server made: it looks
    certified, but not by the user's account key."""
    device_id = await store.add_device(user, int(time.time() * 1000))
    crypto = CryptoAccount.create(user, device_id, now=int(time.time()))
    await store.publish_bundle(DeviceRef(user, device_id), _bundle(crypto))
    if database is not None:
        forged = DeviceCertificate.issue(
            AccountKeyPair.generate(), user, device_id, crypto.identity_public, int(time.time())
        )
        with sqlite3.connect(database) as conn:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(devices)")}
            if "certificate" in columns:  # (a server from before accounts had none)
                conn.execute(
                    "UPDATE devices SET certificate = ? WHERE user_name = ? AND device_id = ?",
                    (forged.to_bytes(), user, device_id),
                )
        conn.close()
    return Ghost(DeviceRef(user, device_id), crypto)


def forged_account(user: str, devices: dict[int, IdentityPublic]) -> AccountRecord:
    """An account key the server made, with a signed list naming ``devices`` (version 1000)."""
    key = AccountKeyPair.generate()
    head = DeviceListHead.issue(key, user, 1000, int(time.time()), devices)
    return AccountRecord(user, key.public.to_bytes(), 1000, head.to_bytes())


def swap_account_in_sqlite(database: Path, account: AccountRecord) -> AccountRecord:
    """Replace a user's account key and device list in a running server's SQLite file; returns
    what was there (swap it back when the test is over: the server is shared)."""
    with sqlite3.connect(database) as conn:
        key, version, head = conn.execute(
            "SELECT account_key, list_version, device_list FROM accounts WHERE user_name = ?",
            (account.user,),
        ).fetchone()
        conn.execute(
            "UPDATE accounts SET account_key = ?, list_version = ?, device_list = ? "
            "WHERE user_name = ?",
            (account.account_key, account.list_version, account.device_list, account.user),
        )
    conn.close()
    return AccountRecord(account.user, bytes(key), int(version), bytes(head))


def identities_in_sqlite(database: Path, user: str) -> dict[int, IdentityPublic]:
    """The identity keys a user's devices published (to name them in a forged list)."""
    with sqlite3.connect(database) as conn:
        rows = conn.execute(
            "SELECT device_id, identity_key FROM devices WHERE user_name = ? "
            "AND identity_key IS NOT NULL",
            (user,),
        ).fetchall()
    conn.close()
    return {int(d): IdentityPublic.from_bytes(bytes(k)) for d, k in rows}
