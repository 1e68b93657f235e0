"""One pairwise session (ratchet + the handshake it came from) and the envelope it seals.

A :class:`Session` binds a ratchet to the peer identity it was set up with and to the
handshake's base key (the initiator's ephemeral key), which is how a responder recognises later
PREKEY messages of a session it already has. The initiator sends PREKEY envelopes until the first
reply arrives, as Signal does, because the responder may not have seen the first one yet.

:class:`PeerSessions` keeps the current session with one peer device plus a few archived ones
(a session replaced by a newer handshake, or one marked stale after a keystore rollback), which
can still open late messages. A stale session never sends again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from securechat.crypto.encoding import Reader, Writer
from securechat.crypto.envelope import (
    TYPE_NORMAL,
    TYPE_PREKEY,
    Envelope,
    associated_data,
    pad,
    unpad,
)
from securechat.crypto.handshake import Party, PreKeyHeader
from securechat.crypto.identity import IDENTITY_PUBLIC_SIZE, IdentityPublic
from securechat.crypto.labels import constant_time_equal
from securechat.crypto.randomness import SystemRandomness
from securechat.crypto.ratchet import RatchetState
from securechat.errors import DecryptionError, InvalidArgument

MAX_ARCHIVED_SESSIONS = 4


@dataclass
class Session:
    remote_identity: IdentityPublic
    ratchet: RatchetState
    base_key: bytes
    created_at: int
    pending_prekey: PreKeyHeader | None = None
    stale: bool = False

    def seal(self, local: Party, remote: Party, conversation: str, plaintext: bytes) -> bytes:
        """Encrypt ``plaintext`` into envelope bytes (PREKEY until the peer has replied)."""
        message_type = TYPE_PREKEY if self.pending_prekey is not None else TYPE_NORMAL
        ad = associated_data(message_type, local, remote, conversation, self.pending_prekey)
        header, ciphertext = self.ratchet.encrypt(pad(plaintext), ad)
        return Envelope(message_type, self.pending_prekey, header, ciphertext).to_bytes()

    def open(
        self,
        local: Party,
        sender: Party,
        conversation: str,
        envelope: Envelope,
        *,
        now: int,
        randomness: SystemRandomness,
    ) -> bytes:
        """Decrypt one parsed envelope; DecryptionError leaves the session unchanged."""
        if envelope.prekey is not None and not self.matches(envelope.prekey):
            raise DecryptionError()
        ad = associated_data(envelope.message_type, sender, local, conversation, envelope.prekey)
        padded = self.ratchet.decrypt(
            envelope.header, envelope.ciphertext, ad, now=now, randomness=randomness
        )
        if envelope.message_type == TYPE_NORMAL:
            self.pending_prekey = None  # the peer has our session: stop sending PREKEY
        return unpad(padded)

    def matches(self, prekey: PreKeyHeader) -> bool:
        return constant_time_equal(self.base_key, prekey.ephemeral_key) and constant_time_equal(
            self.remote_identity.to_bytes(), prekey.identity.to_bytes()
        )

    def write(self, writer: Writer) -> Writer:
        writer.raw(self.remote_identity.to_bytes()).var_bytes(self.ratchet.to_bytes())
        writer.fixed(self.base_key, 32).u64(self.created_at).boolean(self.stale)
        writer.boolean(self.pending_prekey is not None)
        if self.pending_prekey is not None:
            self.pending_prekey.write(writer)
        return writer

    @classmethod
    def read(cls, reader: Reader) -> Session:
        identity = IdentityPublic.from_bytes(reader.fixed(IDENTITY_PUBLIC_SIZE))
        ratchet = RatchetState.from_bytes(reader.var_bytes())
        session = cls(identity, ratchet, reader.fixed(32), reader.u64(), stale=reader.boolean())
        if reader.boolean():
            session.pending_prekey = PreKeyHeader.read(reader)
        return session


@dataclass
class PeerSessions:
    """The current session with one peer device and a few archived ones."""

    current: Session | None = None
    archived: list[Session] = field(default_factory=list)

    def all(self) -> list[Session]:
        return ([self.current] if self.current is not None else []) + self.archived

    def install(self, session: Session) -> None:
        """Make ``session`` current, archiving the previous one."""
        if self.current is not None and self.current is not session:
            self.archived.insert(0, self.current)
        self.archived = [s for s in self.archived if s is not session][:MAX_ARCHIVED_SESSIONS]
        self.current = session

    def archive_current(self) -> None:
        if self.current is not None:
            self.current.stale = True
            self.archived.insert(0, self.current)
            self.archived = self.archived[:MAX_ARCHIVED_SESSIONS]
            self.current = None

    def write(self, writer: Writer) -> Writer:
        sessions = self.all()
        writer.boolean(self.current is not None).u32(len(sessions))
        for session in sessions:
            session.write(writer)
        return writer

    @classmethod
    def read(cls, reader: Reader) -> PeerSessions:
        has_current = reader.boolean()
        sessions = [Session.read(reader) for _ in range(reader.u32())]
        if has_current and not sessions:
            raise InvalidArgument("malformed session list")
        if has_current:
            return cls(sessions[0], sessions[1:])
        return cls(None, sessions)
