"""The facade the client uses: one device's keys, sessions, pins and device lists, as one state.

Typical use::

    account = CryptoAccount.create("alice", 1, now=now)   # a new account: account key + device
    upload = account.upload_bundle()                  # send to the key directory
    account.observe_account("bob", bobs_account_key)  # from the directory: TOFU pin / change
    account.devices.check("bob", listing)             # bob's certified devices, verified
    account.start_session(bundle_for_bob, now=now)    # bundle claimed from the server
    envelope = account.encrypt(Address("bob", 1), "dm:alice:bob", b"hi")
    plaintext = bob_account.decrypt(Address("alice", 1), "dm:alice:bob", envelope, now=now)
    keystore.save(account.to_bytes())                 # after every change

Who may be encrypted to: for a user whose account key is known (the own user once this device
has an account key; a contact pinned by account key) only a device in the last verified device
list, and only a session whose remote identity is that device's certified identity
(``DeviceNotCertified`` otherwise); for a contact still pinned by a stage-1 device identity,
only that identity. A pending key change raises ``IdentityChanged`` until the user accepts or
rejects it. ``decrypt`` raises only ``DecryptionError``; ``encrypt`` raises ``InvalidArgument``
when there is no usable session (claim a bundle and call ``start_session``). A PREKEY message
from a peer we already have a session with replaces that session (Signal's behaviour), but only
once it decrypts; a session whose peer is not acceptable is kept but never sent on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from securechat.crypto import handshake
from securechat.crypto.account_devices import AccountDevices
from securechat.crypto.account_key import ACCOUNT_KEY_SIZE, AccountKeyPair, AccountPublic
from securechat.crypto.account_state import read_account, write_account
from securechat.crypto.certificates import (
    AccountBinding,
)
from securechat.crypto.device_book import DeviceBook
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
from securechat.crypto.safety_number import account_safety_number, safety_number
from securechat.crypto.session import PeerSessions, Session
from securechat.crypto.trust import TrustEvent, TrustLevel, TrustStore
from securechat.errors import (
    DecryptionError,
    DeviceNotCertified,
    IdentityChanged,
    InvalidArgument,
    SecureChatError,
)


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
        self._devices = DeviceBook(address.user, address.device_id, identity.public)
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
        account_key: AccountKeyPair | None = None,
        linked: bool = False,
    ) -> CryptoAccount:
        """A new device: the first of a new account (``account_key`` or a fresh one), or,
        with ``linked=True``, one that waits for an account key from a link."""
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
        account = cls(Address(user, device_id), identity, prekeys, randomness)
        if not linked:
            account._devices.establish(account_key or AccountKeyPair.generate(randomness), now=now)
        return account

    @property
    def identity_public(self) -> IdentityPublic:
        return self._identity.public

    @property
    def _local(self) -> Party:
        return Party(self.address.user, self.address.device_id, self._identity.public)

    # -- the own account and device lists ---------------------------------------------------

    @property
    def account_key(self) -> AccountPublic | None:
        """This account's key (None on a stage-1 device not migrated, or one not linked)."""
        return self._devices.account_key

    def account_key_of(self, user: str) -> bytes | None:
        """The account key events by ``user`` must be signed with (32 bytes), or None.

        Yours for yourself; for a contact, the accepted account-key pin (not a pending one, not
        a stage-1 device-identity pin). Fits the roster's ``AccountKeyLookup``.
        """
        if user == self.address.user:
            own = self._devices.account_key
            return None if own is None else own.to_bytes()
        pinned = self._trust.pinned_account(user)
        return None if pinned is None else pinned.to_bytes()

    @property
    def devices(self) -> AccountDevices:
        """Link, remove and publish own devices; verify device lists (see account_devices)."""
        return AccountDevices(self._devices, self._trust, self._identity, self._randomness)

    def device_certified(self, peer: Address) -> bool | None:
        """Whether the current session's device is certified (None: user not on account keys)."""
        sessions = self._sessions.get(peer)
        if not self._account_mode(peer.user) or sessions is None or sessions.current is None:
            return None
        return self._devices.certified(peer.user, peer.device_id, sessions.current.remote_identity)

    def _account_mode(self, user: str) -> bool:
        if user == self.address.user:
            return self._devices.account is not None
        return self._trust.pinned_account(user) is not None or self._pending_account(user)

    def _pending_account(self, user: str) -> bool:
        pin = self._trust.pin(user)
        return pin is not None and pin.pending is not None and len(pin.pending) == ACCOUNT_KEY_SIZE

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

    def rotate_prekeys(self, *, now: int) -> tuple[SignedPreKeyPublic, KemPreKeyPublic]:
        """New signed prekey and last-resort KEM prekey; both old ones live for the grace."""
        return self._prekeys.rotate(self._identity, now=now, randomness=self._randomness)

    def rotate_signed_prekey(self, *, now: int) -> SignedPreKeyPublic:
        """Stage-1 rotation of the signed prekey only (until the client uploads both)."""
        return self._prekeys.rotate_signed(self._identity, now=now, randomness=self._randomness)

    # -- sessions --------------------------------------------------------------------------

    def has_session(self, peer: Address) -> bool:
        """Whether a session exists that may be sent on to ``peer`` (if trust allows)."""
        return self._select(peer) is not None

    def _acceptable(self, peer: Address, identity: IdentityPublic) -> bool:
        if self._account_mode(peer.user):
            return self._devices.certified(peer.user, peer.device_id, identity)
        pin = self._trust.pin(peer.user)
        return pin is not None and pin.key == identity.to_bytes()

    def _select(self, peer: Address) -> Session | None:
        peer_sessions = self._sessions.get(peer)
        if peer_sessions is None:
            return None
        for session in peer_sessions.all():
            if not session.stale and self._acceptable(peer, session.remote_identity):
                return session
        return None

    def start_session(self, bundle: PreKeyBundle, *, now: int) -> None:
        """Verify ``bundle`` (BadSignature) and the device's standing, then set up.

        Raises IdentityChanged while a key change waits for the user, DeviceNotCertified for a
        device the account key has not certified (account-key users).
        """
        bundle.verify()
        peer = Address(bundle.user, bundle.device_id)
        if self._account_mode(bundle.user):
            if bundle.user != self.address.user:
                self._trust.require_accepted(bundle.user)
            if not self._devices.certified(bundle.user, bundle.device_id, bundle.identity):
                raise DeviceNotCertified(bundle.user, bundle.device_id)
        else:
            self._trust.observe(bundle.user, bundle.identity)
            self._trust.check(bundle.user, bundle.identity)
        result = handshake.initiate(
            self._identity, self.address.user, self.address.device_id, bundle, self._randomness
        )
        ratchet = RatchetState.initiator(
            result.root_key, result.responder_ratchet_key, self._randomness
        )
        session = Session(bundle.identity, ratchet, result.header.ephemeral_key, now, result.header)
        self._sessions.setdefault(peer, PeerSessions()).install(session)

    def accepted_key(self, user: str) -> bytes | None:
        """The key sending to ``user`` is trusted under now (account key or stage-1 identity).

        A client queueing a message keeps this with it and passes it back to ``encrypt``: a
        message queued before a key change is then never sent under the new key unasked.
        """
        if user == self.address.user and self.account_key is not None:
            return self.account_key.to_bytes()
        pin = self._trust.pin(user)
        return None if pin is None else pin.key

    def encrypt(
        self, peer: Address, conversation: str, plaintext: bytes, *, expected: bytes | None = None
    ) -> bytes:
        """Envelope bytes for ``peer`` (see the module doc for what it refuses)."""
        return self.encrypt_for_devices(
            [peer],
            conversation,
            plaintext,
            expected=None if expected is None else {peer.user: expected},
        )[peer]

    def encrypt_for_devices(
        self,
        peers: Iterable[Address],
        conversation: str,
        plaintext: bytes,
        *,
        expected: Mapping[str, bytes] | None = None,
    ) -> dict[Address, bytes]:
        """Fan-out: one envelope per device; checks every device before encrypting any.

        ``expected`` maps users to the :meth:`accepted_key` recorded when the message was
        queued; a user whose accepted key differs raises IdentityChanged.
        """
        targets = [(peer, self._sendable(peer, expected)) for peer in peers]
        return {
            peer: session.seal(
                self._local,
                Party(peer.user, peer.device_id, session.remote_identity),
                conversation,
                plaintext,
            )
            for peer, session in targets
        }

    def _sendable(self, peer: Address, expected: Mapping[str, bytes] | None) -> Session:
        own_account = peer.user == self.address.user and self._devices.account is not None
        if not own_account and self._trust.pin(peer.user) is not None:
            self._trust.require_accepted(peer.user)  # IdentityChanged while a change waits
        if expected is not None and peer.user in expected:
            current = self.accepted_key(peer.user)
            if current is None or current != expected[peer.user]:
                pin = self._trust.pin(peer.user)
                raise IdentityChanged(peer.user, pin is not None and pin.verified)
        session = self._select(peer)
        if session is not None:
            return session
        peer_sessions = self._sessions.get(peer)
        if peer_sessions is None or peer_sessions.current is None:
            raise InvalidArgument(
                f"no session with {peer.user} device {peer.device_id}: claim its prekey bundle"
            )
        if self._account_mode(peer.user):
            raise DeviceNotCertified(peer.user, peer.device_id)
        pin = self._trust.require_accepted(peer.user)
        raise IdentityChanged(peer.user, pin.verified)

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
        signed, one_time, kem = self._prekeys.find(prekey)  # refuses a replayed first message
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
        if not self._account_mode(sender.user):
            self._trust.observe(sender.user, prekey.identity)
        self._sessions.setdefault(sender, PeerSessions()).install(session)
        return plaintext

    def archive_sessions(self) -> None:
        """After a keystore rollback: no session sends again; new handshakes are needed."""
        for peer_sessions in self._sessions.values():
            peer_sessions.archive_current()

    # -- trust -----------------------------------------------------------------------------

    def trust_level(self, user: str) -> TrustLevel:
        return self._trust.level(user)

    def pinned_verified(self, user: str) -> bool:
        """Whether the key accepted for ``user`` was verified (also while a change waits)."""
        pin = self._trust.pin(user)
        return pin is not None and pin.verified

    def observe_account(
        self, user: str, account_key: AccountPublic, bindings: Iterable[AccountBinding] = ()
    ) -> TrustEvent:
        """Record the account key the directory shows for a contact (never for yourself).

        Pass the device bindings the directory serves for the user: a pin on one of their
        device identities then moves to the account key without an identity change.
        """
        if user == self.address.user:
            raise InvalidArgument("your own account key is never taken from the server")
        return self._trust.observe_account(user, account_key, bindings)

    def safety_number(self, user: str) -> str:
        """60 digits for ``user``'s displayed key (the pending one after a change)."""
        key = self._trust.displayed_key(user)
        if key is None:
            raise InvalidArgument(f"no identity known for {user}: exchange a message first")
        if len(key) == ACCOUNT_KEY_SIZE:
            own = self._devices.require_account().public
            return account_safety_number(self.address.user, own, user, AccountPublic(key))
        remote = IdentityPublic.from_bytes(key)
        return safety_number(self.address.user, self._identity.public, user, remote)

    def accept_identity(self, user: str, shown_number: str, *, verified: bool) -> None:
        """Accept the key whose safety number ``shown_number`` the user saw (and maybe compared).

        Refuses (InvalidArgument) if the displayed key changed since: the user must look again.
        """
        key = self._trust.displayed_key(user)
        if key is None or self.safety_number(user) != shown_number:
            raise InvalidArgument(
                f"the key of {user} changed again: look at the new safety number and decide again"
            )
        before = self._trust.pinned_account(user)
        self._trust.accept(user, key, verified=verified)
        if before is not None and before != self._trust.pinned_account(user):
            self._devices.forget(user)  # the old key's list no longer counts

    def reject_identity(self, user: str) -> None:
        """Keep the pinned key and the sessions made under it; the new key stays refused."""
        self._trust.reject(user)

    def verify(self, user: str) -> None:
        """The user compared the safety number: mark the displayed key verified."""
        self.accept_identity(user, self.safety_number(user), verified=True)

    def trust(self, user: str) -> None:
        """Acknowledge a changed key of an unverified contact (stage-1 flow)."""
        before = self._trust.pinned_account(user)
        self._trust.trust(user)
        if before is not None and before != self._trust.pinned_account(user):
            self._devices.forget(user)

    # -- persistence -----------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        return write_account(
            self.address.user,
            self.address.device_id,
            self._identity,
            self._prekeys,
            self._trust,
            {(peer.user, peer.device_id): s for peer, s in self._sessions.items()},
            self._devices,
        )

    @classmethod
    def from_bytes(
        cls, data: bytes, *, randomness: SystemRandomness = SYSTEM_RANDOMNESS
    ) -> CryptoAccount:
        """Restore an account (InvalidArgument if the state is malformed or too new)."""
        state = read_account(data)
        account = cls(
            Address(state.user, state.device_id), state.identity, state.prekeys, randomness
        )
        account._trust = state.trust
        account._sessions = {Address(u, d): s for (u, d), s in state.sessions.items()}
        account._devices = state.devices
        return account
