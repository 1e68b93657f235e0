"""The facade the client uses: one device's keys, sessions and pins, as one versioned state.

Typical use::

    account = CryptoAccount.create("alice", 1, now=now)
    upload = account.upload_bundle()                  # send to the key directory
    account.start_session(bundle_for_bob, now=now)    # bundle claimed from the server
    envelope = account.encrypt(Address("bob", 1), "dm:alice:bob", b"hi")
    plaintext = bob_account.decrypt(Address("alice", 1), "dm:alice:bob", envelope, now=now)
    keystore.save(account.to_bytes())                 # after every change

``decrypt`` raises only ``DecryptionError``. ``encrypt`` raises ``IdentityChanged`` when the
peer's identity changed and the user has not reacted yet, and ``InvalidArgument`` when there is
no session (fetch a bundle and call ``start_session``). A PREKEY message from a peer we already
have a session with replaces that session (Signal's behaviour), but only once it decrypts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from securechat.crypto import handshake
from securechat.crypto.encoding import Reader, Writer
from securechat.crypto.envelope import TYPE_PREKEY, Envelope
from securechat.crypto.handshake import Party
from securechat.crypto.identity import IdentityKeyPair, IdentityPublic
from securechat.crypto.prekey_store import PreKeyStore
from securechat.crypto.prekeys import (
    KemPreKeyPublic,
    OneTimePreKeyPublic,
    PreKeyBundle,
    SignedPreKeyPublic,
)
from securechat.crypto.randomness import SYSTEM_RANDOMNESS, SystemRandomness
from securechat.crypto.ratchet import RatchetState
from securechat.crypto.safety_number import safety_number
from securechat.crypto.session import PeerSessions, Session
from securechat.crypto.trust import TrustLevel, TrustStore
from securechat.errors import DecryptionError, InvalidArgument, SecureChatError

ACCOUNT_MAGIC = b"SCAC"
ACCOUNT_VERSION = 1
MAX_SEEN_BASE_KEYS = 4096


@dataclass(frozen=True, order=True)
class Address:
    """One device of one user: the unit sessions are made with."""

    user: str
    device_id: int


@dataclass(frozen=True)
class DeviceUpload:
    """Everything a device publishes to the key directory."""

    user: str
    device_id: int
    identity: IdentityPublic
    signed_prekey: SignedPreKeyPublic
    one_time_prekeys: list[OneTimePreKeyPublic]
    kem_prekeys: list[KemPreKeyPublic]
    last_resort_kem_prekey: KemPreKeyPublic


class CryptoAccount:
    """One device's end-to-end state. Not thread-safe: one client process per profile."""

    def __init__(
        self,
        address: Address,
        identity: IdentityKeyPair,
        prekeys: PreKeyStore,
        randomness: SystemRandomness = SYSTEM_RANDOMNESS,
    ) -> None:
        self.address = address
        self._identity = identity
        self._prekeys = prekeys
        self._sessions: dict[Address, PeerSessions] = {}
        self._trust = TrustStore()
        self._seen_base_keys: dict[bytes, None] = {}
        self._randomness = randomness

    @classmethod
    def create(
        cls,
        user: str,
        device_id: int,
        *,
        now: int,
        one_time_count: int = 100,
        kem_one_time_count: int = 20,
        randomness: SystemRandomness = SYSTEM_RANDOMNESS,
    ) -> CryptoAccount:
        identity = IdentityKeyPair.generate(randomness)
        prekeys = PreKeyStore.create(
            identity,
            user,
            device_id,
            now=now,
            one_time_count=one_time_count,
            kem_one_time_count=kem_one_time_count,
            randomness=randomness,
        )
        return cls(Address(user, device_id), identity, prekeys, randomness)

    @property
    def identity_public(self) -> IdentityPublic:
        return self._identity.public

    @property
    def _local(self) -> Party:
        return Party(self.address.user, self.address.device_id, self._identity.public)

    # -- key directory -------------------------------------------------------------------

    def upload_bundle(self, *, include_published: bool = False) -> DeviceUpload:
        """Identity, current signed prekey, unpublished one-time keys and the last-resort key.

        One-time keys returned are marked published; pass ``include_published=True`` to
        repeat an upload that the server did not acknowledge.
        """
        one_time, kem = self._prekeys.unpublished(include_published=include_published)
        return DeviceUpload(
            self.address.user,
            self.address.device_id,
            self._identity.public,
            self._prekeys.current_signed.public,
            one_time,
            kem,
            self._prekeys.last_resort.public,
        )

    def refill_one_time_prekeys(self, count: int) -> list[OneTimePreKeyPublic]:
        keys = self._prekeys.add_one_time(self._identity, count, self._randomness)
        self._prekeys.published.update(("one_time", key.key_id) for key in keys)
        return keys

    def refill_kem_prekeys(self, count: int) -> list[KemPreKeyPublic]:
        keys = self._prekeys.add_kem(self._identity, count, self._randomness)
        self._prekeys.published.update(("kem", key.key_id) for key in keys)
        return keys

    def rotate_signed_prekey(self, *, now: int) -> SignedPreKeyPublic:
        """New signed prekey; replaced ones stay usable for SIGNED_PREKEY_GRACE seconds."""
        return self._prekeys.rotate_signed(self._identity, now=now, randomness=self._randomness)

    # -- sessions --------------------------------------------------------------------------

    def has_session(self, peer: Address) -> bool:
        peer_sessions = self._sessions.get(peer)
        return peer_sessions is not None and peer_sessions.current is not None

    def start_session(self, bundle: PreKeyBundle, *, now: int) -> None:
        """Verify ``bundle`` (BadSignature), check the pin (IdentityChanged), then set up."""
        bundle.verify()
        self._trust.observe(bundle.user, bundle.identity)
        self._trust.check(bundle.user, bundle.identity)
        result = handshake.initiate(
            self._identity, self.address.user, self.address.device_id, bundle, self._randomness
        )
        ratchet = RatchetState.initiator(
            result.root_key, result.responder_ratchet_key, self._randomness
        )
        session = Session(bundle.identity, ratchet, result.header.ephemeral_key, now, result.header)
        peer = Address(bundle.user, bundle.device_id)
        self._sessions.setdefault(peer, PeerSessions()).install(session)

    def encrypt(self, peer: Address, conversation: str, plaintext: bytes) -> bytes:
        """Envelope bytes for ``peer`` (IdentityChanged / InvalidArgument, see module doc)."""
        session = self._sendable(peer)
        remote = Party(peer.user, peer.device_id, session.remote_identity)
        return session.seal(self._local, remote, conversation, plaintext)

    def encrypt_for_devices(
        self, peers: Iterable[Address], conversation: str, plaintext: bytes
    ) -> dict[Address, bytes]:
        """Room fan-out: one envelope per member device; checks every pin before encrypting."""
        targets = [(peer, self._sendable(peer)) for peer in peers]
        return {
            peer: session.seal(
                self._local,
                Party(peer.user, peer.device_id, session.remote_identity),
                conversation,
                plaintext,
            )
            for peer, session in targets
        }

    def _sendable(self, peer: Address) -> Session:
        peer_sessions = self._sessions.get(peer)
        if peer_sessions is None or peer_sessions.current is None:
            raise InvalidArgument(
                f"no session with {peer.user} device {peer.device_id}: claim its prekey bundle"
            )
        session = peer_sessions.current
        self._trust.check(peer.user, session.remote_identity)
        return session

    def decrypt(self, sender: Address, conversation: str, envelope: bytes, *, now: int) -> bytes:
        """Open an envelope from ``sender``; every failure is the one opaque DecryptionError."""
        try:
            parsed = Envelope.parse(envelope)
            if parsed.message_type == TYPE_PREKEY:
                return self._decrypt_prekey(sender, conversation, parsed, now)
            return self._decrypt_existing(sender, conversation, parsed, now)
        except DecryptionError:
            raise
        except (SecureChatError, ValueError) as exc:
            raise DecryptionError() from exc

    def _decrypt_existing(
        self, sender: Address, conversation: str, envelope: Envelope, now: int
    ) -> bytes:
        peer_sessions = self._sessions.get(sender)
        if peer_sessions is None:
            raise DecryptionError()
        for session in peer_sessions.all():
            if envelope.prekey is not None and not session.matches(envelope.prekey):
                continue
            remote = Party(sender.user, sender.device_id, session.remote_identity)
            try:
                plaintext = session.open(
                    self._local,
                    remote,
                    conversation,
                    envelope,
                    now=now,
                    randomness=self._randomness,
                )
            except DecryptionError:
                continue
            if not session.stale:
                peer_sessions.install(session)  # simultaneous initiation converges here
            return plaintext
        raise DecryptionError()

    def _decrypt_prekey(
        self, sender: Address, conversation: str, envelope: Envelope, now: int
    ) -> bytes:
        prekey = envelope.prekey
        assert prekey is not None
        peer_sessions = self._sessions.get(sender)
        if peer_sessions is not None and any(s.matches(prekey) for s in peer_sessions.all()):
            return self._decrypt_existing(sender, conversation, envelope, now)
        if prekey.ephemeral_key in self._seen_base_keys:
            raise DecryptionError()  # a replayed first message whose session is gone
        signed, one_time, kem = self._prekeys.find(prekey)
        root_key = handshake.respond(
            self._identity,
            self.address.user,
            self.address.device_id,
            sender.user,
            sender.device_id,
            prekey,
            signed,
            one_time,
            kem,
        )
        session = Session(
            prekey.identity,
            RatchetState.responder(root_key, signed.private),
            prekey.ephemeral_key,
            now,
        )
        remote = Party(sender.user, sender.device_id, prekey.identity)
        plaintext = session.open(
            self._local, remote, conversation, envelope, now=now, randomness=self._randomness
        )
        # The message opened: only now commit the new session and burn the one-time keys.
        self._prekeys.consume(prekey)
        self._remember_base_key(prekey.ephemeral_key)
        self._trust.observe(sender.user, prekey.identity)
        self._sessions.setdefault(sender, PeerSessions()).install(session)
        return plaintext

    def _remember_base_key(self, base_key: bytes) -> None:
        self._seen_base_keys[base_key] = None
        while len(self._seen_base_keys) > MAX_SEEN_BASE_KEYS:
            del self._seen_base_keys[next(iter(self._seen_base_keys))]

    def archive_sessions(self) -> None:
        """After a keystore rollback: no session sends again; new handshakes are needed."""
        for peer_sessions in self._sessions.values():
            peer_sessions.archive_current()

    # -- trust -----------------------------------------------------------------------------

    def trust_level(self, user: str) -> TrustLevel:
        return self._trust.level(user)

    def safety_number(self, user: str) -> str:
        """60 digits for ``user``'s displayed identity (the pending one after a change)."""
        remote = self._trust.displayed(user)
        if remote is None:
            raise InvalidArgument(f"no identity known for {user}: exchange a message first")
        return safety_number(self.address.user, self._identity.public, user, remote)

    def verify(self, user: str) -> None:
        """The user compared the safety number: mark the displayed identity verified."""
        self._trust.verify(user)

    def trust(self, user: str) -> None:
        """Acknowledge a changed identity of an unverified contact."""
        self._trust.trust(user)

    # -- persistence -----------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        writer = Writer().raw(ACCOUNT_MAGIC).u16(ACCOUNT_VERSION)
        writer.text(self.address.user).u32(self.address.device_id)
        writer.fixed(self._identity.to_bytes(), 64)
        self._prekeys.write(writer)
        self._trust.write(writer)
        writer.u32(len(self._sessions))
        for peer, peer_sessions in sorted(self._sessions.items()):
            writer.text(peer.user).u32(peer.device_id)
            peer_sessions.write(writer)
        writer.u32(len(self._seen_base_keys))
        for base_key in self._seen_base_keys:
            writer.fixed(base_key, 32)
        return writer.to_bytes()

    @classmethod
    def from_bytes(
        cls, data: bytes, *, randomness: SystemRandomness = SYSTEM_RANDOMNESS
    ) -> CryptoAccount:
        """Restore an account (InvalidArgument if the state is malformed or too new)."""
        try:
            return cls._read(Reader(data), randomness)
        except ValueError as exc:
            raise InvalidArgument("malformed account state") from exc

    @classmethod
    def _read(cls, reader: Reader, randomness: SystemRandomness) -> CryptoAccount:
        if reader.fixed(4) != ACCOUNT_MAGIC:
            raise InvalidArgument("not a securechat account state")
        version = reader.u16()
        if version != ACCOUNT_VERSION:
            raise InvalidArgument(f"account state version {version} is not supported")
        address = Address(reader.text(), reader.u32())
        identity = IdentityKeyPair.from_bytes(reader.fixed(64))
        account = cls(address, identity, PreKeyStore.read(reader), randomness)
        account._trust = TrustStore.read(reader)
        for _ in range(reader.u32()):
            peer = Address(reader.text(), reader.u32())
            account._sessions[peer] = PeerSessions.read(reader)
        for _ in range(reader.u32()):
            account._seen_base_keys[reader.fixed(32)] = None
        reader.finish()
        return account
