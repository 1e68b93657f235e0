"""Sender-key chains: the hash ratchet of a device's room messages (libsignal's SenderChainKey).

* ``MK_i = HMAC(CK_i, 0x01)``, ``CK_{i+1} = HMAC(CK_i, 0x02)`` (the pairwise ratchet's chain
  step, libsignal's constants); ``key || nonce = HKDF(MK_i, info=ROOM_MESSAGE_KEYS, 44)``.
* :class:`SendingChain` is this device's own chain in a room: chain id, iteration, chain key,
  the chain's Ed25519 signing key, when and for which roster version it was made, and the member
  devices it has been distributed to. It is saved :data:`RESERVED_ITERATIONS` ahead of the
  position in use (:meth:`SendingChain.reserve`), so the keystore is written once per that many
  messages and a restart still never reuses an iteration: it skips the unused rest.
* :class:`ReceivingChain` is another device's chain as received in a distribution message, with
  bounded skipped message keys: at most :data:`MAX_FORWARD_JUMP` steps per message and
  :data:`MAX_SKIPPED_PER_CHAIN` stored keys (a message needing more fails), each expiring after
  :data:`SKIPPED_KEY_LIFETIME` seconds. :meth:`ReceivingChain.message_key` works on a copy, so
  the caller commits only after the AEAD check passes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from securechat.crypto import labels
from securechat.crypto.account import Address
from securechat.crypto.encoding import Reader, Writer
from securechat.crypto.randomness import SYSTEM_RANDOMNESS, SystemRandomness
from securechat.crypto.ratchet import chain_step
from securechat.crypto.room_policy import KEY_SIZE
from securechat.crypto.roster_event import RosterVersion
from securechat.errors import DecryptionError, InvalidArgument

CHAIN_KEY_SIZE = 32
MAX_FORWARD_JUMP = 2000
MAX_SKIPPED_PER_CHAIN = 2000
SKIPPED_KEY_LIFETIME = 30 * 24 * 3600
MAX_ITERATION = 0xFFFFFFFF  # exclusive: iterations are u32 and the next one must fit too
RESERVED_ITERATIONS = 32  # saved this far ahead; receivers skip at most this much per restart


def message_aead_keys(message_key: bytes) -> tuple[bytes, bytes]:
    """Expand a room message key into an AES-256-GCM-SIV key (32 bytes) and nonce (12 bytes)."""
    derived = labels.hkdf(message_key, None, labels.ROOM_MESSAGE_KEYS, 44)
    return derived[:32], derived[32:]


def _write_address(writer: Writer, address: Address) -> Writer:
    return writer.text(address.user).u32(address.device_id)


def _read_address(reader: Reader) -> Address:
    return Address(reader.text(), reader.u32())


@dataclass
class SendingChain:
    """This device's chain in one room."""

    chain_id: int
    iteration: int
    chain_key: bytes
    signing: Ed25519PrivateKey
    created_at: int
    made_for: RosterVersion
    distributed_to: set[Address] = field(default_factory=set)
    saved_at: tuple[int, bytes] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def create(
        cls,
        made_for: RosterVersion,
        *,
        now: int,
        randomness: SystemRandomness = SYSTEM_RANDOMNESS,
    ) -> SendingChain:
        chain_id = int.from_bytes(randomness.random_bytes(4), "big")
        chain_key = randomness.random_bytes(CHAIN_KEY_SIZE)
        return cls(chain_id, 0, chain_key, randomness.ed25519(), now, made_for)

    @property
    def signing_public(self) -> bytes:
        return self.signing.public_key().public_bytes_raw()

    def next_message_key(self) -> tuple[int, bytes]:
        """``(iteration, MK)`` for the next message; the chain moves on (save before sending)."""
        if self.iteration >= MAX_ITERATION - 1:
            raise InvalidArgument("sending chain exhausted: start a fresh chain")
        message_key, self.chain_key = chain_step(self.chain_key)
        iteration = self.iteration
        self.iteration += 1
        return iteration, message_key

    def reserve(self, count: int = RESERVED_ITERATIONS) -> bool:
        """Make sure the position :meth:`write` saves lies beyond the next iteration.

        Returns True when it moved (``count`` iterations ahead of the one in use): the keystore
        must then be saved before the next message leaves. Until it moves again, messages need
        no save: a restart resumes from the saved position, past every iteration used."""
        if self.saved_at is not None and self.saved_at[0] > self.iteration:
            return False
        iteration, chain_key = self.iteration, self.chain_key
        for _ in range(max(1, min(count, MAX_ITERATION - 1 - iteration))):
            _, chain_key = chain_step(chain_key)
            iteration += 1
        self.saved_at = (iteration, chain_key)
        return True

    def write(self, writer: Writer) -> Writer:
        """The saved form: the reserved position once :meth:`reserve` made one."""
        iteration, chain_key = self.saved_at or (self.iteration, self.chain_key)
        writer.u32(self.chain_id).u32(iteration).fixed(chain_key, CHAIN_KEY_SIZE)
        writer.fixed(self.signing.private_bytes_raw(), KEY_SIZE).u64(self.created_at)
        self.made_for.write(writer).u32(len(self.distributed_to))
        for address in sorted(self.distributed_to):
            _write_address(writer, address)
        return writer

    @classmethod
    def read(cls, reader: Reader) -> SendingChain:
        chain = cls(
            chain_id=reader.u32(),
            iteration=reader.u32(),
            chain_key=reader.fixed(CHAIN_KEY_SIZE),
            signing=Ed25519PrivateKey.from_private_bytes(reader.fixed(KEY_SIZE)),
            created_at=reader.u64(),
            made_for=RosterVersion.read(reader),
        )
        chain.distributed_to = {_read_address(reader) for _ in range(reader.u32())}
        return chain


@dataclass
class ReceivingChain:
    """Another device's chain, from the iteration its distribution message carried on."""

    sender: Address
    chain_id: int
    signing_public: bytes
    next_iteration: int
    chain_key: bytes
    made_for: RosterVersion
    installed_at: int
    skipped: dict[int, tuple[bytes, int]] = field(default_factory=dict)

    def message_key(self, iteration: int, now: int) -> tuple[bytes, ReceivingChain]:
        """The key for ``iteration`` and the chain state to commit once the message opens.

        Raises DecryptionError for a replay (a used iteration without a stored key), an expired
        key, or a jump beyond the limits; ``self`` is never modified.
        """
        trial = copy.copy(self)
        trial.skipped = {
            number: (key, stored_at)
            for number, (key, stored_at) in self.skipped.items()
            if now - stored_at <= SKIPPED_KEY_LIFETIME
        }
        if iteration < trial.next_iteration:
            stored = trial.skipped.pop(iteration, None)
            if stored is None:
                raise DecryptionError()
            return stored[0], trial
        jump = iteration - trial.next_iteration
        if (
            iteration >= MAX_ITERATION
            or jump > MAX_FORWARD_JUMP
            or len(trial.skipped) + jump > MAX_SKIPPED_PER_CHAIN
        ):
            raise DecryptionError()
        chain_key = trial.chain_key
        for number in range(trial.next_iteration, iteration):
            skipped_key, chain_key = chain_step(chain_key)
            trial.skipped[number] = (skipped_key, now)
        message_key, trial.chain_key = chain_step(chain_key)
        trial.next_iteration = iteration + 1
        return message_key, trial

    def write(self, writer: Writer) -> Writer:
        _write_address(writer, self.sender).u32(self.chain_id)
        writer.fixed(self.signing_public, KEY_SIZE).u32(self.next_iteration)
        writer.fixed(self.chain_key, CHAIN_KEY_SIZE)
        self.made_for.write(writer).u64(self.installed_at).u32(len(self.skipped))
        for number in sorted(self.skipped):
            key, stored_at = self.skipped[number]
            writer.u32(number).fixed(key, CHAIN_KEY_SIZE).u64(stored_at)
        return writer

    @classmethod
    def read(cls, reader: Reader) -> ReceivingChain:
        chain = cls(
            sender=_read_address(reader),
            chain_id=reader.u32(),
            signing_public=reader.fixed(KEY_SIZE),
            next_iteration=reader.u32(),
            chain_key=reader.fixed(CHAIN_KEY_SIZE),
            made_for=RosterVersion.read(reader),
            installed_at=reader.u64(),
        )
        for _ in range(reader.u32()):
            number = reader.u32()
            chain.skipped[number] = (reader.fixed(CHAIN_KEY_SIZE), reader.u64())
        return chain
