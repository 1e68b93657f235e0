"""Signal's Double Ratchet over X25519, HKDF-SHA256, HMAC-SHA256 and ChaCha20-Poly1305.

* Root KDF: ``RK', CK = HKDF(salt=RK, ikm=DH(out), info=RATCHET_ROOT, 64)``.
* Chain KDF (as libsignal's ``ChainKey``): ``MK = HMAC(CK, 0x01)``, ``CK' = HMAC(CK, 0x02)``.
* Each message key is used once: ``key || nonce = HKDF(MK, info=MESSAGE_KEYS, 44)`` for
  ChaCha20-Poly1305, so there is no nonce counter to get wrong.
* The AEAD's associated data is the caller's context (identities, devices, conversation,
  message type: see :mod:`securechat.crypto.envelope`) followed by the 40-byte header.
* Skipped message keys: at most :data:`MAX_SKIP_PER_CHAIN` per receiving chain (a message that
  would need more fails) and :data:`MAX_SKIPPED_KEYS` in all (beyond that the oldest are
  dropped, so their messages count as lost instead of wedging the session), expiring after
  :data:`SKIPPED_KEY_LIFETIME` seconds.
* :meth:`RatchetState.decrypt` is transactional: it works on a copy and commits only after the
  AEAD check passes, so a forged, duplicated or out-of-limits message leaves the state intact.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from securechat.crypto import labels
from securechat.crypto.encoding import Reader, Writer
from securechat.crypto.randomness import SYSTEM_RANDOMNESS, SystemRandomness
from securechat.errors import DecryptionError, InvalidArgument

MAX_SKIP_PER_CHAIN = 1000
MAX_SKIPPED_KEYS = 2000
SKIPPED_KEY_LIFETIME = 30 * 24 * 3600
MAX_MESSAGE_NUMBER = 0xFFFFFFFF
HEADER_SIZE = 40
STATE_VERSION = 1

SkippedKey = tuple[bytes, int]  # (remote ratchet public key, message number)


@dataclass(frozen=True)
class Header:
    """Ratchet public key, previous sending chain length (PN) and message number (N)."""

    ratchet_key: bytes
    previous_chain_length: int
    message_number: int

    def to_bytes(self) -> bytes:
        return (
            Writer()
            .fixed(self.ratchet_key, 32)
            .u32(self.previous_chain_length)
            .u32(self.message_number)
            .to_bytes()
        )

    @classmethod
    def read(cls, reader: Reader) -> Header:
        return cls(reader.fixed(32), reader.u32(), reader.u32())


def chain_step(chain_key: bytes) -> tuple[bytes, bytes]:
    """Return ``(message_key, next_chain_key)`` (libsignal's 0x01 / 0x02 constants)."""
    return (
        labels.hmac_sha256(chain_key, labels.CHAIN_MESSAGE_KEY_SEED),
        labels.hmac_sha256(chain_key, labels.CHAIN_NEXT_KEY_SEED),
    )


def root_step(root_key: bytes, dh_output: bytes) -> tuple[bytes, bytes]:
    """Return ``(next_root_key, chain_key)``."""
    derived = labels.hkdf(dh_output, root_key, labels.RATCHET_ROOT, 64)
    return derived[:32], derived[32:]


def message_aead_keys(message_key: bytes) -> tuple[bytes, bytes]:
    """Expand a message key into a ChaCha20-Poly1305 key (32 bytes) and nonce (12 bytes)."""
    derived = labels.hkdf(message_key, None, labels.MESSAGE_KEYS, 44)
    return derived[:32], derived[32:]


def seal(message_key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    key, nonce = message_aead_keys(message_key)
    return ChaCha20Poly1305(key).encrypt(nonce, plaintext, associated_data)


def open_sealed(message_key: bytes, ciphertext: bytes, associated_data: bytes) -> bytes:
    key, nonce = message_aead_keys(message_key)
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, ciphertext, associated_data)
    except InvalidTag as exc:
        raise DecryptionError() from exc


def _dh(private: X25519PrivateKey, public: bytes) -> bytes:
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError as exc:
        raise DecryptionError() from exc


@dataclass
class RatchetState:
    """Everything one side of a pairwise session needs to send and receive."""

    dh_private: X25519PrivateKey
    remote_ratchet_key: bytes | None
    root_key: bytes
    sending_chain: bytes | None = None
    receiving_chain: bytes | None = None
    sent: int = 0
    received: int = 0
    previous_sending_length: int = 0
    skipped: dict[SkippedKey, tuple[bytes, int]] = field(default_factory=dict)

    @classmethod
    def initiator(
        cls,
        root_key: bytes,
        remote_ratchet_key: bytes,
        randomness: SystemRandomness = SYSTEM_RANDOMNESS,
    ) -> RatchetState:
        """Alice's state: she starts with a sending chain towards Bob's signed prekey."""
        dh_private = randomness.x25519()
        root, chain = root_step(root_key, _dh(dh_private, remote_ratchet_key))
        return cls(dh_private, remote_ratchet_key, root, sending_chain=chain)

    @classmethod
    def responder(cls, root_key: bytes, own_ratchet_private: X25519PrivateKey) -> RatchetState:
        """Bob's state: his signed prekey is his first ratchet key; he must receive first."""
        return cls(own_ratchet_private, None, root_key)

    @property
    def ratchet_public(self) -> bytes:
        return self.dh_private.public_key().public_bytes_raw()

    def encrypt(self, plaintext: bytes, associated_data: bytes) -> tuple[Header, bytes]:
        """Encrypt one message; the header is appended to ``associated_data``."""
        if self.sending_chain is None:
            raise InvalidArgument("this session cannot send before it has received a message")
        if self.sent >= MAX_MESSAGE_NUMBER:
            raise InvalidArgument("sending chain exhausted: start a new session")
        header = Header(self.ratchet_public, self.previous_sending_length, self.sent)
        message_key, self.sending_chain = chain_step(self.sending_chain)
        self.sent += 1
        return header, seal(message_key, plaintext, associated_data + header.to_bytes())

    def decrypt(
        self,
        header: Header,
        ciphertext: bytes,
        associated_data: bytes,
        *,
        now: int,
        randomness: SystemRandomness = SYSTEM_RANDOMNESS,
    ) -> bytes:
        """Decrypt one message or raise DecryptionError, leaving the state untouched."""
        full_ad = associated_data + header.to_bytes()
        slot = (header.ratchet_key, header.message_number)
        stored = self.skipped.get(slot)
        if stored is not None:
            message_key, stored_at = stored
            if now - stored_at > SKIPPED_KEY_LIFETIME:
                raise DecryptionError()
            plaintext = open_sealed(message_key, ciphertext, full_ad)
            del self.skipped[slot]
            return plaintext
        trial = self._copy()
        trial._forget_expired(now)
        if header.ratchet_key != trial.remote_ratchet_key:
            trial._skip_until(header.previous_chain_length, now)
            trial._dh_ratchet(header.ratchet_key, randomness)
        elif header.message_number < trial.received:
            raise DecryptionError()  # a duplicate, or a skipped key that expired or was dropped
        trial._skip_until(header.message_number, now)
        if trial.receiving_chain is None:
            raise DecryptionError()  # a forged header naming our own initial ratchet key
        message_key, trial.receiving_chain = chain_step(trial.receiving_chain)
        trial.received += 1
        plaintext = open_sealed(message_key, ciphertext, full_ad)
        self.__dict__.update(trial.__dict__)
        return plaintext

    def _copy(self) -> RatchetState:
        trial = copy.copy(self)
        trial.skipped = dict(self.skipped)
        return trial

    def _forget_expired(self, now: int) -> None:
        for slot, (_, stored_at) in list(self.skipped.items()):
            if now - stored_at > SKIPPED_KEY_LIFETIME:
                del self.skipped[slot]

    def _skip_until(self, until: int, now: int) -> None:
        if self.receiving_chain is None or self.remote_ratchet_key is None:
            return
        missing = until - self.received
        if missing <= 0:
            return
        chain = self.remote_ratchet_key
        already = sum(1 for key, _ in self.skipped if key == chain)
        if missing + already > MAX_SKIP_PER_CHAIN:
            raise DecryptionError()
        chain_key = self.receiving_chain
        for number in range(self.received, until):
            message_key, chain_key = chain_step(chain_key)
            self.skipped[(chain, number)] = (message_key, now)
        self.receiving_chain = chain_key
        self.received = until
        while len(self.skipped) > MAX_SKIPPED_KEYS:
            del self.skipped[next(iter(self.skipped))]

    def _dh_ratchet(self, remote_ratchet_key: bytes, randomness: SystemRandomness) -> None:
        self.previous_sending_length = self.sent
        self.sent = 0
        self.received = 0
        self.remote_ratchet_key = remote_ratchet_key
        self.root_key, self.receiving_chain = root_step(
            self.root_key, _dh(self.dh_private, remote_ratchet_key)
        )
        self.dh_private = randomness.x25519()
        self.root_key, self.sending_chain = root_step(
            self.root_key, _dh(self.dh_private, remote_ratchet_key)
        )

    def to_bytes(self) -> bytes:
        writer = (
            Writer()
            .u8(STATE_VERSION)
            .fixed(self.dh_private.private_bytes_raw(), 32)
            .optional_bytes(self.remote_ratchet_key)
            .fixed(self.root_key, 32)
            .optional_bytes(self.sending_chain)
            .optional_bytes(self.receiving_chain)
            .u32(self.sent)
            .u32(self.received)
            .u32(self.previous_sending_length)
            .u32(len(self.skipped))
        )
        for (chain, number), (message_key, stored_at) in self.skipped.items():
            writer.fixed(chain, 32).u32(number).fixed(message_key, 32).u64(stored_at)
        return writer.to_bytes()

    @classmethod
    def read(cls, reader: Reader) -> RatchetState:
        if reader.u8() != STATE_VERSION:
            raise InvalidArgument("unsupported ratchet state version")
        state = cls(
            dh_private=X25519PrivateKey.from_private_bytes(reader.fixed(32)),
            remote_ratchet_key=reader.optional_bytes(),
            root_key=reader.fixed(32),
            sending_chain=reader.optional_bytes(),
            receiving_chain=reader.optional_bytes(),
            sent=reader.u32(),
            received=reader.u32(),
            previous_sending_length=reader.u32(),
        )
        for _ in range(reader.u32()):
            slot = (reader.fixed(32), reader.u32())
            state.skipped[slot] = (reader.fixed(32), reader.u64())
        return state

    @classmethod
    def from_bytes(cls, data: bytes) -> RatchetState:
        reader = Reader(data)
        state = cls.read(reader)
        reader.finish()
        return state
