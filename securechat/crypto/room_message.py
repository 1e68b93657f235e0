"""The bytes of sender-key distribution messages and room messages (docs/e2e-wire-rooms.md §2).

Distribution (the plaintext of a pairwise envelope, conversation ``room-keys:<room>``)::

    body = u8 format (1) | str room | roster_version(40) | str sender_user | u32 sender_device
           | u32 chain_id | u32 iteration | chain_key(32) | signing_public_key(32)
    distribution = body || Ed25519 by the chain key over label(SENDER_KEY_DISTRIBUTION) || body

Room message (stored once by the server, delivered to every member device)::

    header = u8 format (1) | str room | roster_version(40) | str sender_user | u32 sender_device
             | u32 chain_id | u32 iteration
    ciphertext = AES-256-GCM-SIV(key, nonce, pad(plaintext), label(ROOM_MESSAGE_AD) || header)
    message = header || ciphertext || Ed25519 by the chain key over
              label(ROOM_MESSAGE_SIGNATURE) || header || ciphertext

Every malformed input raises the one opaque ``DecryptionError``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV

from securechat.crypto import labels
from securechat.crypto.account import Address
from securechat.crypto.encoding import Reader, Writer
from securechat.crypto.envelope import PADDING_BLOCK, TAG_SIZE, pad, unpad
from securechat.crypto.identity import verify_signature
from securechat.crypto.room_policy import KEY_SIZE, SIGNATURE_SIZE, check_name
from securechat.crypto.roster_event import RosterVersion
from securechat.crypto.sender_chain import CHAIN_KEY_SIZE, SendingChain, message_aead_keys
from securechat.errors import BadSignature, DecryptionError, InvalidArgument

DISTRIBUTION_FORMAT = 1
MESSAGE_FORMAT = 1
DISTRIBUTION_CONVERSATION_PREFIX = "room-keys:"


def distribution_conversation(room: str) -> str:
    """The pairwise conversation string distribution envelopes for ``room`` are sealed under."""
    return DISTRIBUTION_CONVERSATION_PREFIX + room


def _signature_valid(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        verify_signature(public_key, signature, message)
    except BadSignature:
        return False
    return True


@dataclass(frozen=True)
class ChainPosition:
    """Whose chain, at which iteration, for which roster version: a room message's public header
    and the head of a distribution message."""

    room: str
    version: RosterVersion
    sender: Address
    chain_id: int
    iteration: int

    def write(self, writer: Writer) -> Writer:
        writer.text(self.room)
        self.version.write(writer).text(self.sender.user).u32(self.sender.device_id)
        return writer.u32(self.chain_id).u32(self.iteration)

    @classmethod
    def read(cls, reader: Reader) -> ChainPosition:
        return cls(
            check_name(reader.text(), "room"),
            RosterVersion.read(reader),
            Address(check_name(reader.text(), "sender"), reader.u32()),
            reader.u32(),
            reader.u32(),
        )


@dataclass(frozen=True)
class SenderKeyDistribution:
    """A chain's current state, handed to one member device over a pairwise session."""

    position: ChainPosition
    chain_key: bytes
    signing_public: bytes
    signature: bytes = b""

    @classmethod
    def of(
        cls, chain: SendingChain, room: str, sender: Address, version: RosterVersion
    ) -> SenderKeyDistribution:
        """The distribution of ``chain`` at its current iteration (never an earlier one)."""
        position = ChainPosition(room, version, sender, chain.chain_id, chain.iteration)
        unsigned = cls(position, chain.chain_key, chain.signing_public)
        return replace(unsigned, signature=chain.signing.sign(unsigned._signed()))

    def body(self) -> bytes:
        writer = self.position.write(Writer().u8(DISTRIBUTION_FORMAT))
        writer.fixed(self.chain_key, CHAIN_KEY_SIZE)
        return writer.fixed(self.signing_public, KEY_SIZE).to_bytes()

    def _signed(self) -> bytes:
        return Writer(labels.SENDER_KEY_DISTRIBUTION).raw(self.body()).to_bytes()

    def to_bytes(self) -> bytes:
        return self.body() + self.signature

    def signature_valid(self) -> bool:
        return _signature_valid(self.signing_public, self.signature, self._signed())

    @classmethod
    def parse(cls, data: bytes) -> SenderKeyDistribution:
        try:
            reader = Reader(data)
            if reader.u8() != DISTRIBUTION_FORMAT:
                raise DecryptionError()
            parsed = cls(
                ChainPosition.read(reader),
                reader.fixed(CHAIN_KEY_SIZE),
                reader.fixed(KEY_SIZE),
                reader.fixed(SIGNATURE_SIZE),
            )
            reader.finish()
        except InvalidArgument as exc:
            raise DecryptionError() from exc
        return parsed


@dataclass(frozen=True)
class RoomMessage:
    header: ChainPosition
    ciphertext: bytes
    signature: bytes

    @cached_property
    def header_bytes(self) -> bytes:
        return self.header.write(Writer().u8(MESSAGE_FORMAT)).to_bytes()

    def _associated_data(self) -> bytes:
        return Writer(labels.ROOM_MESSAGE_AD).raw(self.header_bytes).to_bytes()

    def _signed(self) -> bytes:
        return (
            Writer(labels.ROOM_MESSAGE_SIGNATURE)
            .raw(self.header_bytes)
            .raw(self.ciphertext)
            .to_bytes()
        )

    def to_bytes(self) -> bytes:
        return self.header_bytes + self.ciphertext + self.signature

    @classmethod
    def seal(
        cls, header: ChainPosition, message_key: bytes, chain: SendingChain, plaintext: bytes
    ) -> RoomMessage:
        key, nonce = message_aead_keys(message_key)
        unsealed = cls(header, b"", b"")
        ciphertext = AESGCMSIV(key).encrypt(nonce, pad(plaintext), unsealed._associated_data())
        unsigned = cls(header, ciphertext, b"")
        return replace(unsigned, signature=chain.signing.sign(unsigned._signed()))

    def signature_valid(self, signing_public: bytes) -> bool:
        return _signature_valid(signing_public, self.signature, self._signed())

    def open(self, message_key: bytes) -> bytes:
        key, nonce = message_aead_keys(message_key)
        try:
            padded = AESGCMSIV(key).decrypt(nonce, self.ciphertext, self._associated_data())
        except InvalidTag as exc:
            raise DecryptionError() from exc
        return unpad(padded)

    @classmethod
    def parse(cls, data: bytes) -> RoomMessage:
        """Parse canonical message bytes (signature and AEAD unchecked) or DecryptionError."""
        try:
            reader = Reader(data)
            if reader.u8() != MESSAGE_FORMAT:
                raise DecryptionError()
            header = ChainPosition.read(reader)
            rest = reader.rest()
        except InvalidArgument as exc:
            raise DecryptionError() from exc
        body = len(rest) - SIGNATURE_SIZE - TAG_SIZE
        if body < PADDING_BLOCK or body % PADDING_BLOCK:
            raise DecryptionError()
        return cls(header, rest[:-SIGNATURE_SIZE], rest[-SIGNATURE_SIZE:])


def peek_room_message(data: bytes) -> ChainPosition:
    """The unauthenticated header, so the client can compare roster versions before decrypting."""
    return RoomMessage.parse(data).header
