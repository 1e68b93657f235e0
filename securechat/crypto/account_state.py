"""The versioned byte encoding of one device's whole end-to-end state (inside the keystore).

Version 2 (written)::

    "SCAC" | u16 2 | text user | u32 device_id | device identity private (64)
    | prekey store (v2: KEM replacement times, replay guard per key pair)
    | trust store (v2: pins of account keys or legacy identities, pending, rejected)
    | u32 n | n x (text user | u32 device_id | peer sessions)
    | device book (optional account seed, optional own certificate, optional own device list,
                   u32 n | n x (text user | device list memory))

Version 1 (stage 1, read and upgraded in memory): the same up to the sessions, the prekey and
trust stores in their v1 forms, then ``u32 n | n x base key(32)``: the global replay FIFO,
which becomes replay memory on every live (signed prekey, last-resort KEM key) pair. A v1
device has no account key until :meth:`CryptoAccount.migrate_to_account_key`.
"""

from __future__ import annotations

from dataclasses import dataclass

from securechat.crypto.device_book import DeviceBook
from securechat.crypto.encoding import Reader, Writer
from securechat.crypto.identity import IDENTITY_PRIVATE_SIZE, IdentityKeyPair
from securechat.crypto.prekey_store import PreKeyStore
from securechat.crypto.session import PeerSessions
from securechat.crypto.trust import TrustStore
from securechat.errors import InvalidArgument

ACCOUNT_MAGIC = b"SCAC"
ACCOUNT_VERSION = 2
LEGACY_ACCOUNT_VERSION = 1


@dataclass
class AccountState:
    user: str
    device_id: int
    identity: IdentityKeyPair
    prekeys: PreKeyStore
    trust: TrustStore
    sessions: dict[tuple[str, int], PeerSessions]
    devices: DeviceBook


def write_account(
    user: str,
    device_id: int,
    identity: IdentityKeyPair,
    prekeys: PreKeyStore,
    trust: TrustStore,
    sessions: dict[tuple[str, int], PeerSessions],
    devices: DeviceBook,
) -> bytes:
    writer = Writer().raw(ACCOUNT_MAGIC).u16(ACCOUNT_VERSION)
    writer.text(user).u32(device_id)
    writer.fixed(identity.to_bytes(), IDENTITY_PRIVATE_SIZE)
    prekeys.write(writer)
    trust.write(writer)
    writer.u32(len(sessions))
    for (peer_user, peer_device), peer_sessions in sorted(sessions.items()):
        writer.text(peer_user).u32(peer_device)
        peer_sessions.write(writer)
    devices.write(writer)
    return writer.to_bytes()


def read_account(data: bytes) -> AccountState:
    """Parse a v1 or v2 state (InvalidArgument if malformed, foreign or too new)."""
    try:
        return _read(Reader(data))
    except ValueError as exc:
        raise InvalidArgument("malformed account state") from exc


def _read(reader: Reader) -> AccountState:
    if reader.fixed(4) != ACCOUNT_MAGIC:
        raise InvalidArgument("not a securechat account state")
    version = reader.u16()
    if version not in (LEGACY_ACCOUNT_VERSION, ACCOUNT_VERSION):
        raise InvalidArgument(f"account state version {version} is not supported")
    user, device_id = reader.text(), reader.u32()
    identity = IdentityKeyPair.from_bytes(reader.fixed(IDENTITY_PRIVATE_SIZE))
    prekeys = PreKeyStore.read(reader, version)
    trust = TrustStore.read(reader, version)
    sessions = {}
    for _ in range(reader.u32()):
        peer = (reader.text(), reader.u32())
        sessions[peer] = PeerSessions.read(reader)
    devices = DeviceBook(user, device_id, identity.public)
    if version == LEGACY_ACCOUNT_VERSION:
        prekeys.guard_legacy_base_keys([reader.fixed(32) for _ in range(reader.u32())])
    else:
        devices.read(reader)
    reader.finish()
    return AccountState(user, device_id, identity, prekeys, trust, sessions, devices)
