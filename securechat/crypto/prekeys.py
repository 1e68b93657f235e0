"""Signed, one-time and ML-KEM-768 prekeys: their public records, signatures and bundles.

Every prekey is signed by the owner's identity signing key over a labelled canonical encoding::

    Writer(PREKEY_SIGNATURE) | u8 kind | text user | u32 device_id | u32 key_id
                             | var public_key | u64 created_at (signed prekey only)
                             | u8 last_resort (KEM prekey only)

so a signature can never be moved to another kind of key, another id, or another device. The
server calls :func:`verify_signed_prekey`, :func:`verify_one_time_prekey` and
:func:`verify_kem_prekey` when a device uploads its keys; a claimer calls
:meth:`PreKeyBundle.verify` on what it receives.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from securechat.crypto import labels
from securechat.crypto.encoding import Writer
from securechat.crypto.identity import IdentityKeyPair, IdentityPublic
from securechat.crypto.randomness import SYSTEM_RANDOMNESS, SystemRandomness
from securechat.errors import BadSignature, InvalidArgument

X25519_KEY_SIZE = 32
KEM_PUBLIC_KEY_SIZE = 1184
KEM_CIPHERTEXT_SIZE = 1088
MAX_KEY_ID = 0xFFFFFFFF

KIND_SIGNED = 1
KIND_ONE_TIME = 2
KIND_KEM = 3


@dataclass(frozen=True)
class SignedPreKeyPublic:
    key_id: int
    public_key: bytes
    created_at: int
    signature: bytes


@dataclass(frozen=True)
class OneTimePreKeyPublic:
    key_id: int
    public_key: bytes
    signature: bytes


@dataclass(frozen=True)
class KemPreKeyPublic:
    key_id: int
    public_key: bytes
    signature: bytes
    last_resort: bool


def signed_prekey_message(
    user: str, device_id: int, key_id: int, public_key: bytes, created_at: int
) -> bytes:
    return _base(KIND_SIGNED, user, device_id, key_id, public_key).u64(created_at).to_bytes()


def one_time_prekey_message(user: str, device_id: int, key_id: int, public_key: bytes) -> bytes:
    return _base(KIND_ONE_TIME, user, device_id, key_id, public_key).to_bytes()


def kem_prekey_message(
    user: str, device_id: int, key_id: int, public_key: bytes, last_resort: bool
) -> bytes:
    return _base(KIND_KEM, user, device_id, key_id, public_key).boolean(last_resort).to_bytes()


def _base(kind: int, user: str, device_id: int, key_id: int, public_key: bytes) -> Writer:
    return (
        Writer(labels.PREKEY_SIGNATURE)
        .u8(kind)
        .text(user)
        .u32(device_id)
        .u32(key_id)
        .var_bytes(public_key)
    )


def _check_shape(key_id: int, public_key: bytes, size: int, what: str) -> None:
    if not 0 <= key_id <= MAX_KEY_ID:
        raise InvalidArgument(f"{what} id out of range")
    if len(public_key) != size:
        raise InvalidArgument(f"{what} public key must be {size} bytes")


def verify_signed_prekey(
    identity: IdentityPublic, user: str, device_id: int, spk: SignedPreKeyPublic
) -> None:
    """Raise BadSignature unless ``spk`` is signed by ``identity`` for ``user``/``device_id``."""
    _check_shape(spk.key_id, spk.public_key, X25519_KEY_SIZE, "signed prekey")
    message = signed_prekey_message(user, device_id, spk.key_id, spk.public_key, spk.created_at)
    identity.verify_signed(spk.signature, message)


def verify_one_time_prekey(
    identity: IdentityPublic, user: str, device_id: int, opk: OneTimePreKeyPublic
) -> None:
    """Raise BadSignature unless ``opk`` is signed by ``identity`` for ``user``/``device_id``."""
    _check_shape(opk.key_id, opk.public_key, X25519_KEY_SIZE, "one-time prekey")
    message = one_time_prekey_message(user, device_id, opk.key_id, opk.public_key)
    identity.verify_signed(opk.signature, message)


def verify_kem_prekey(
    identity: IdentityPublic, user: str, device_id: int, kem: KemPreKeyPublic
) -> None:
    """Raise BadSignature unless ``kem`` is signed by ``identity`` for ``user``/``device_id``."""
    _check_shape(kem.key_id, kem.public_key, KEM_PUBLIC_KEY_SIZE, "KEM prekey")
    message = kem_prekey_message(user, device_id, kem.key_id, kem.public_key, kem.last_resort)
    identity.verify_signed(kem.signature, message)


@dataclass(frozen=True)
class PreKeyBundle:
    """What a claimer receives for one device: enough to start a session with it."""

    user: str
    device_id: int
    identity: IdentityPublic
    signed_prekey: SignedPreKeyPublic
    one_time_prekey: OneTimePreKeyPublic | None
    kem_prekey: KemPreKeyPublic

    def verify(self) -> None:
        """Verify the identity binding and every prekey signature (raises BadSignature)."""
        try:
            self.identity.verify()
            verify_signed_prekey(self.identity, self.user, self.device_id, self.signed_prekey)
            if self.one_time_prekey is not None:
                verify_one_time_prekey(
                    self.identity, self.user, self.device_id, self.one_time_prekey
                )
            verify_kem_prekey(self.identity, self.user, self.device_id, self.kem_prekey)
        except InvalidArgument as exc:
            raise BadSignature(f"malformed key bundle: {exc.message}") from exc


@dataclass(frozen=True)
class SignedPreKeyPair:
    public: SignedPreKeyPublic
    private: X25519PrivateKey


@dataclass(frozen=True)
class OneTimePreKeyPair:
    public: OneTimePreKeyPublic
    private: X25519PrivateKey


@dataclass(frozen=True)
class KemPreKeyPair:
    public: KemPreKeyPublic
    private: MLKEM768PrivateKey


def make_signed_prekey(
    identity: IdentityKeyPair,
    user: str,
    device_id: int,
    key_id: int,
    created_at: int,
    randomness: SystemRandomness = SYSTEM_RANDOMNESS,
    private: X25519PrivateKey | None = None,
) -> SignedPreKeyPair:
    private = private or randomness.x25519()
    public_key = private.public_key().public_bytes_raw()
    signature = identity.sign(
        signed_prekey_message(user, device_id, key_id, public_key, created_at)
    )
    return SignedPreKeyPair(SignedPreKeyPublic(key_id, public_key, created_at, signature), private)


def make_one_time_prekey(
    identity: IdentityKeyPair,
    user: str,
    device_id: int,
    key_id: int,
    randomness: SystemRandomness = SYSTEM_RANDOMNESS,
    private: X25519PrivateKey | None = None,
) -> OneTimePreKeyPair:
    private = private or randomness.x25519()
    public_key = private.public_key().public_bytes_raw()
    signature = identity.sign(one_time_prekey_message(user, device_id, key_id, public_key))
    return OneTimePreKeyPair(OneTimePreKeyPublic(key_id, public_key, signature), private)


def make_kem_prekey(
    identity: IdentityKeyPair,
    user: str,
    device_id: int,
    key_id: int,
    last_resort: bool,
    randomness: SystemRandomness = SYSTEM_RANDOMNESS,
    private: MLKEM768PrivateKey | None = None,
) -> KemPreKeyPair:
    private = private or randomness.mlkem768()
    public_key = private.public_key().public_bytes_raw()
    signature = identity.sign(kem_prekey_message(user, device_id, key_id, public_key, last_resort))
    return KemPreKeyPair(KemPreKeyPublic(key_id, public_key, signature, last_resort), private)


def x25519_public(data: bytes) -> X25519PublicKey:
    return X25519PublicKey.from_public_bytes(data)


def kem_public(data: bytes) -> MLKEM768PublicKey:
    return MLKEM768PublicKey.from_public_bytes(data)
