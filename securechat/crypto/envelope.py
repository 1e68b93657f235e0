"""The wire envelope the server routes opaquely, plaintext padding and the associated data.

Envelope layout (all integers big-endian)::

    u8 version (1) | u8 type (1 = PREKEY, 2 = NORMAL)
    PREKEY only:  initiator identity (128) | ephemeral key (32) | u32 signed prekey id
                  | u8 has one-time prekey | u32 one-time prekey id (0 if none)
                  | u32 KEM prekey id | ML-KEM-768 ciphertext (1088)
    header:       ratchet key (32) | u32 previous chain length | u32 message number
    ChaCha20-Poly1305 ciphertext of the padded plaintext (rest of the envelope, tag included)

Padding: ISO/IEC 7816-4 (append 0x80, then zero bytes) up to the next multiple of
:data:`PADDING_BLOCK` bytes, so the server learns sizes only to 160-byte granularity. Nothing is
ever compressed. The associated data binds the version, the type, both users, devices and
identities, the conversation id and the whole PREKEY section; the ratchet appends the header.
Any malformed envelope raises the one opaque ``DecryptionError``.
"""

from __future__ import annotations

from dataclasses import dataclass

from securechat.crypto import labels
from securechat.crypto.encoding import Reader, Writer
from securechat.crypto.handshake import Party, PreKeyHeader
from securechat.crypto.ratchet import Header
from securechat.errors import DecryptionError, InvalidArgument

ENVELOPE_VERSION = 1
TYPE_PREKEY = 1
TYPE_NORMAL = 2
PADDING_BLOCK = 160
TAG_SIZE = 16


def pad(plaintext: bytes) -> bytes:
    """Pad to the next multiple of PADDING_BLOCK (always adds at least one byte)."""
    padded_length = (len(plaintext) // PADDING_BLOCK + 1) * PADDING_BLOCK
    return plaintext + b"\x80" + b"\x00" * (padded_length - len(plaintext) - 1)


def unpad(padded: bytes) -> bytes:
    """Remove the padding or raise DecryptionError."""
    if not padded or len(padded) % PADDING_BLOCK:
        raise DecryptionError()
    stripped = padded.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80:
        raise DecryptionError()
    return stripped[:-1]


@dataclass(frozen=True)
class Envelope:
    """A parsed envelope; ``prekey`` is set exactly for PREKEY messages."""

    message_type: int
    prekey: PreKeyHeader | None
    header: Header
    ciphertext: bytes

    def to_bytes(self) -> bytes:
        writer = Writer().u8(ENVELOPE_VERSION).u8(self.message_type)
        if self.prekey is not None:
            self.prekey.write(writer)
        return writer.raw(self.header.to_bytes()).raw(self.ciphertext).to_bytes()

    @classmethod
    def parse(cls, data: bytes) -> Envelope:
        try:
            reader = Reader(data)
            if reader.u8() != ENVELOPE_VERSION:
                raise DecryptionError()
            message_type = reader.u8()
            if message_type == TYPE_PREKEY:
                prekey: PreKeyHeader | None = PreKeyHeader.read(reader)
            elif message_type == TYPE_NORMAL:
                prekey = None
            else:
                raise DecryptionError()
            header = Header.read(reader)
            ciphertext = reader.rest()
        except InvalidArgument as exc:
            raise DecryptionError() from exc
        body = len(ciphertext) - TAG_SIZE
        if body < PADDING_BLOCK or body % PADDING_BLOCK:
            raise DecryptionError()
        return cls(message_type, prekey, header, ciphertext)

    def prekey_bytes(self) -> bytes | None:
        return None if self.prekey is None else self.prekey.write(Writer()).to_bytes()


def associated_data(
    message_type: int,
    sender: Party,
    recipient: Party,
    conversation: str,
    prekey: PreKeyHeader | None,
) -> bytes:
    """The context every message's AEAD authenticates (the ratchet header follows it)."""
    return (
        Writer(labels.ASSOCIATED_DATA)
        .u8(ENVELOPE_VERSION)
        .u8(message_type)
        .text(sender.user)
        .u32(sender.device_id)
        .raw(sender.identity.to_bytes())
        .text(recipient.user)
        .u32(recipient.device_id)
        .raw(recipient.identity.to_bytes())
        .text(conversation)
        .optional_bytes(None if prekey is None else prekey.write(Writer()).to_bytes())
        .to_bytes()
    )
