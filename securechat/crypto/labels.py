"""Domain-separation labels and the two key-derivation helpers every module uses.

Every derivation, signature and associated-data block in securechat is prefixed by one of the
labels below, so a value computed for one purpose can never be reused for another. The labels
are part of the protocol: changing one breaks compatibility (the golden transcript test fails).
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PROTOCOL_PREFIX = b"securechat/v1/"

# Signatures (Ed25519 over a labelled canonical encoding).
IDENTITY_DH_SIGNATURE = b"securechat/v1/identity-dh-signature"
PREKEY_SIGNATURE = b"securechat/v1/prekey-signature"

# Handshake (PQXDH-style).
HANDSHAKE_TRANSCRIPT = b"securechat/v1/handshake-transcript"
HANDSHAKE_ROOT = b"securechat/v1/handshake-root"

# Double Ratchet.
RATCHET_ROOT = b"securechat/v1/ratchet-root"
MESSAGE_KEYS = b"securechat/v1/message-keys"
ASSOCIATED_DATA = b"securechat/v1/associated-data"

# Keystore and account state.
KEYSTORE_FILE = b"securechat/v1/keystore-file"

# Rooms (issue 15: signed rosters, room passwords, sender keys; docs/e2e-wire-rooms.md).
# Kept in one block of its own, collected in ROOM_LABELS (tests/crypto/test_room_labels.py).
ROSTER_EVENT_SIGNATURE = b"securechat/v1/roster-event-signature"
ROSTER_EVENT_HASH = b"securechat/v1/roster-event-hash"
ROOM_PASSWORD_AUTHENTICATOR = b"securechat/v1/room-password-authenticator"
ROOM_PASSWORD_PROOF_KEY = b"securechat/v1/room-password-proof-key"
ROOM_JOIN_PROOF = b"securechat/v1/room-join-proof"
SENDER_KEY_DISTRIBUTION = b"securechat/v1/sender-key-distribution"
ROOM_MESSAGE_KEYS = b"securechat/v1/room-message-keys"
ROOM_MESSAGE_AD = b"securechat/v1/room-message-ad"
ROOM_MESSAGE_SIGNATURE = b"securechat/v1/room-message-signature"
ROOM_LABELS = (
    ROSTER_EVENT_SIGNATURE,
    ROSTER_EVENT_HASH,
    ROOM_PASSWORD_AUTHENTICATOR,
    ROOM_PASSWORD_PROOF_KEY,
    ROOM_JOIN_PROOF,
    SENDER_KEY_DISTRIBUTION,
    ROOM_MESSAGE_KEYS,
    ROOM_MESSAGE_AD,
    ROOM_MESSAGE_SIGNATURE,
)

# Accounts own devices: account key, device certificates, removals, signed device lists.
ACCOUNT_KEY_FINGERPRINT = b"securechat/v1/account-key-fingerprint"
DEVICE_CERTIFICATE = b"securechat/v1/device-certificate"
DEVICE_REMOVAL = b"securechat/v1/device-removal"
DEVICE_LIST = b"securechat/v1/device-list"
DEVICE_IDENTITY_DIGEST = b"securechat/v1/device-identity-digest"
DEVICE_ACCOUNT_BINDING = b"securechat/v1/device-account-binding"

# Linking a new device over a relayed channel authenticated by a typed code.
LINK_KEY_FINGERPRINT = b"securechat/v1/link-key-fingerprint"
LINK_CODE_CHECK = b"securechat/v1/link-code-check"
LINK_TRANSCRIPT = b"securechat/v1/link-transcript"
LINK_KEYS = b"securechat/v1/link-keys"
LINK_DEVICE_PROOF = b"securechat/v1/link-device-proof"

# The account password split: what the server checks and what opens the keystore.
PASSWORD_AUTHENTICATOR = b"securechat/v1/password-authenticator"
PASSWORD_KEYSTORE_KEY = b"securechat/v1/password-keystore-key"
FAKE_LOGIN_SALT = b"securechat/v1/fake-login-salt"

# Chain KDF constants (libsignal's ChainKey MESSAGE_KEY_SEED / CHAIN_KEY_SEED).
CHAIN_MESSAGE_KEY_SEED = b"\x01"
CHAIN_NEXT_KEY_SEED = b"\x02"

# X3DH's 32 bytes of 0xFF prepended to the key material for curve25519 (X3DH spec, §2.2).
KDF_PREFIX_F = b"\xff" * 32

ALL_LABELS = (
    IDENTITY_DH_SIGNATURE,
    PREKEY_SIGNATURE,
    HANDSHAKE_TRANSCRIPT,
    HANDSHAKE_ROOT,
    RATCHET_ROOT,
    MESSAGE_KEYS,
    ASSOCIATED_DATA,
    KEYSTORE_FILE,
    ACCOUNT_KEY_FINGERPRINT,
    DEVICE_CERTIFICATE,
    DEVICE_REMOVAL,
    DEVICE_LIST,
    DEVICE_IDENTITY_DIGEST,
    DEVICE_ACCOUNT_BINDING,
    LINK_KEY_FINGERPRINT,
    LINK_CODE_CHECK,
    LINK_TRANSCRIPT,
    LINK_KEYS,
    LINK_DEVICE_PROOF,
    PASSWORD_AUTHENTICATOR,
    PASSWORD_KEYSTORE_KEY,
    FAKE_LOGIN_SALT,
)


def hkdf(ikm: bytes, salt: bytes | None, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 (RFC 5869); ``salt=None`` means a string of zero bytes."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256 of ``data`` under ``key``."""
    return hmac.new(key, data, hashlib.sha256).digest()


def sha256(data: bytes) -> bytes:
    """SHA-256 digest (used for transcript hashes)."""
    return hashlib.sha256(data).digest()


def constant_time_equal(a: bytes, b: bytes) -> bool:
    """Compare two byte strings without leaking where they differ."""
    return hmac.compare_digest(a, b)
