"""Linking a new device: a channel the server relays, authenticated by the code the user typed.

Roles: the *existing* device A (holds the account key) and the *new* device B (has logged in
and made its device identity, but holds no account key yet). Three opaque blobs travel through
the server's relay, addressed by :attr:`LinkCode.relay_id`::

    OFFER    A -> B   u8 version(1) | u8 type(1) | E_A(32)
    REQUEST  B -> A   u8 version(1) | u8 type(2) | E_B(32) | ChaCha20-Poly1305(k_request)
    GRANT    A -> B   u8 version(1) | u8 type(3) | ChaCha20-Poly1305(k_grant)

    transcript = Writer(LINK_TRANSCRIPT) | E_A(32) | E_B(32) | code fingerprint(9)
    k_request || k_grant = HKDF-SHA256(ikm = X25519(e_A, E_B) || secret(4), salt = none,
                                       info = LINK_KEYS || SHA-256(transcript), L = 64)

Each key seals exactly one message, with a zero nonce and the message's clear prefix (version,
type and, for the request, E_B) as associated data. The request's plaintext is
``text user | u32 device_id | identity(128) | proof(64)``, where ``proof`` is B's device
identity signature over ``Writer(LINK_DEVICE_PROOF) | SHA-256(transcript) | text user |
u32 device_id``. The grant's plaintext is ``account seed(32) | var certificate | var signed
device list | var pins`` (the account private key, B's certificate, the account's new signed
device list naming B, and A's accepted trust pins so B starts with the same verified contacts).

B checks ``E_A`` against the code's fingerprint before sending anything: a substituted E_A
fails on B (``tampered``). A substituted E_B (or a guessed secret) makes the request fail to
open on A, which voids the code (``tampered``) and never sends a grant; a forged grant fails on
B. So a relaying server that swaps either key fails on both sides and learns nothing.

State machines (every failure is final; the code is single-use)::

    A (LinkOffer):  WAITING --valid request, in time--> ACCEPTED --seal_grant--> DONE
                    WAITING --bad request--> FAILED        WAITING --late--> EXPIRED
                    any other state + request --> LinkError(used / expired / tampered)
    B (LinkJoiner): CODE --offer matching the code--> SENT --valid grant--> DONE
                    CODE --other offer--> FAILED(tampered)   SENT --bad grant--> FAILED
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from securechat.crypto import labels
from securechat.crypto.account_key import AccountKeyPair
from securechat.crypto.certificates import DeviceCertificate, DeviceListHead
from securechat.crypto.encoding import Reader, Writer
from securechat.crypto.identity import (
    IDENTITY_PUBLIC_SIZE,
    SIGNATURE_SIZE,
    IdentityKeyPair,
    IdentityPublic,
)
from securechat.crypto.link_code import SECRET_SIZE, LinkCode
from securechat.crypto.randomness import SYSTEM_RANDOMNESS, SystemRandomness
from securechat.errors import BadSignature, InvalidArgument, LinkError

LINK_VERSION = 1
TYPE_OFFER = 1
TYPE_REQUEST = 2
TYPE_GRANT = 3
LINK_CODE_LIFETIME = 600  # seconds
KEY_SIZE = 32
_NONCE = bytes(12)


class LinkState(enum.Enum):
    WAITING = "waiting"
    ACCEPTED = "accepted"
    DONE = "done"
    FAILED = "failed"
    EXPIRED = "expired"
    CODE = "code"
    SENT = "sent"


@dataclass(frozen=True)
class LinkRequest:
    """What the new device asks to be certified as (the proof has been checked)."""

    user: str
    device_id: int
    identity: IdentityPublic


@dataclass(frozen=True)
class LinkGrant:
    """What the new device receives: the account key and its place in the account."""

    account: AccountKeyPair
    certificate: DeviceCertificate
    head: DeviceListHead
    pins: bytes


def _transcript(offer_key: bytes, request_key: bytes, code: LinkCode) -> bytes:
    writer = Writer(labels.LINK_TRANSCRIPT).fixed(offer_key, KEY_SIZE).fixed(request_key, KEY_SIZE)
    return labels.sha256(writer.fixed(code.fingerprint, len(code.fingerprint)).to_bytes())


def _channel_keys(
    private: X25519PrivateKey, peer: bytes, secret: bytes, transcript_hash: bytes
) -> tuple[bytes, bytes]:
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(peer))
    except ValueError as exc:
        raise LinkError("tampered") from exc
    okm = labels.hkdf(shared + secret, None, labels.LINK_KEYS + transcript_hash, 2 * KEY_SIZE)
    return okm[:KEY_SIZE], okm[KEY_SIZE:]


def _proof_message(transcript_hash: bytes, user: str, device_id: int) -> bytes:
    writer = Writer(labels.LINK_DEVICE_PROOF).fixed(transcript_hash, 32)
    return writer.text(user).u32(device_id).to_bytes()


def _header(message_type: int) -> Writer:
    return Writer().u8(LINK_VERSION).u8(message_type)


def _open_header(data: bytes, message_type: int) -> Reader:
    reader = Reader(data)
    try:
        if reader.u8() != LINK_VERSION or reader.u8() != message_type:
            raise LinkError("tampered")
    except InvalidArgument as exc:
        raise LinkError("tampered") from exc
    return reader


class LinkOffer:
    """The existing device's side: shows the code, opens one request, seals one grant."""

    def __init__(self, ephemeral: X25519PrivateKey, secret: bytes, created_at: int) -> None:
        self._ephemeral = ephemeral
        self._secret = secret
        self.created_at = created_at
        self.state = LinkState.WAITING
        self.code = LinkCode.for_key(self.public_key, secret)
        self._grant_key: bytes | None = None

    @classmethod
    def create(cls, *, now: int, randomness: SystemRandomness = SYSTEM_RANDOMNESS) -> LinkOffer:
        return cls(randomness.x25519(), randomness.random_bytes(SECRET_SIZE), now)

    @property
    def public_key(self) -> bytes:
        return self._ephemeral.public_key().public_bytes_raw()

    @property
    def expires_at(self) -> int:
        return self.created_at + LINK_CODE_LIFETIME

    def offer_message(self) -> bytes:
        """The OFFER blob to post to the relay under ``code.relay_id``."""
        return _header(TYPE_OFFER).fixed(self.public_key, KEY_SIZE).to_bytes()

    def open_request(self, data: bytes, *, now: int) -> LinkRequest:
        """Open the one request this code allows (LinkError otherwise; the code is then void)."""
        if self.state is LinkState.WAITING and now > self.expires_at:
            self.state = LinkState.EXPIRED
        if self.state is not LinkState.WAITING:
            raise LinkError("expired" if self.state is LinkState.EXPIRED else "used")
        self.state = LinkState.FAILED  # until proven otherwise: one try per code
        reader = _open_header(data, TYPE_REQUEST)
        try:
            request_key = reader.fixed(KEY_SIZE)
            sealed = reader.rest()
        except InvalidArgument as exc:
            raise LinkError("tampered") from exc
        transcript_hash = _transcript(self.public_key, request_key, self.code)
        request_aead, grant_aead = _channel_keys(
            self._ephemeral, request_key, self._secret, transcript_hash
        )
        try:
            header = _header(TYPE_REQUEST).fixed(request_key, KEY_SIZE).to_bytes()
            plaintext = ChaCha20Poly1305(request_aead).decrypt(_NONCE, sealed, header)
            body = Reader(plaintext)
            user, device_id = body.text(), body.u32()
            identity = IdentityPublic.from_bytes(body.fixed(IDENTITY_PUBLIC_SIZE))
            proof = body.fixed(SIGNATURE_SIZE)
            body.finish()
            identity.verify()
            identity.verify_signed(proof, _proof_message(transcript_hash, user, device_id))
        except (InvalidTag, InvalidArgument, BadSignature) as exc:
            raise LinkError("tampered") from exc
        self._grant_key = grant_aead
        self.state = LinkState.ACCEPTED
        return LinkRequest(user, device_id, identity)

    def refuse(self, message: str) -> LinkError:
        """Void the code after an accepted request the account will not certify."""
        self.state = LinkState.FAILED
        self._grant_key = None
        return LinkError("refused", message)

    def seal_grant(
        self,
        account: AccountKeyPair,
        certificate: DeviceCertificate,
        head: DeviceListHead,
        pins: bytes,
    ) -> bytes:
        """The GRANT blob for the accepted request (once)."""
        if self.state is not LinkState.ACCEPTED or self._grant_key is None:
            raise LinkError("used")
        plaintext = (
            Writer()
            .fixed(account.to_bytes(), KEY_SIZE)
            .var_bytes(certificate.to_bytes())
            .var_bytes(head.to_bytes())
            .var_bytes(pins)
            .to_bytes()
        )
        header = _header(TYPE_GRANT).to_bytes()
        sealed = ChaCha20Poly1305(self._grant_key).encrypt(_NONCE, plaintext, header)
        self.state, self._grant_key = LinkState.DONE, None
        return header + sealed


class LinkJoiner:
    """The new device's side: checks the relayed key against the typed code, then asks."""

    def __init__(self, code: LinkCode, randomness: SystemRandomness = SYSTEM_RANDOMNESS) -> None:
        self.code = code
        self.state = LinkState.CODE
        self._randomness = randomness
        self._grant_key: bytes | None = None
        self._request: LinkRequest | None = None

    @classmethod
    def from_text(cls, text: str, randomness: SystemRandomness = SYSTEM_RANDOMNESS) -> LinkJoiner:
        return cls(LinkCode.parse(text), randomness)

    def request_message(
        self, offer: bytes, device: IdentityKeyPair, user: str, device_id: int
    ) -> bytes:
        """The REQUEST blob for the relayed OFFER (LinkError ``tampered`` if it is not A's)."""
        if self.state is not LinkState.CODE:
            raise LinkError("used")
        self.state = LinkState.FAILED
        reader = _open_header(offer, TYPE_OFFER)
        try:
            offer_key = reader.fixed(KEY_SIZE)
            reader.finish()
        except InvalidArgument as exc:
            raise LinkError("tampered") from exc
        if not self.code.matches(offer_key):
            raise LinkError("tampered")
        ephemeral = self._randomness.x25519()
        request_key = ephemeral.public_key().public_bytes_raw()
        transcript_hash = _transcript(offer_key, request_key, self.code)
        request_aead, self._grant_key = _channel_keys(
            ephemeral, offer_key, self.code.secret, transcript_hash
        )
        proof = device.sign(_proof_message(transcript_hash, user, device_id))
        plaintext = (
            Writer()
            .text(user)
            .u32(device_id)
            .raw(device.public.to_bytes())
            .fixed(proof, SIGNATURE_SIZE)
            .to_bytes()
        )
        header = _header(TYPE_REQUEST).fixed(request_key, KEY_SIZE).to_bytes()
        sealed = ChaCha20Poly1305(request_aead).encrypt(_NONCE, plaintext, header)
        self._request = LinkRequest(user, device_id, device.public)
        self.state = LinkState.SENT
        return header + sealed

    def open_grant(self, data: bytes) -> LinkGrant:
        """Open and check the GRANT (LinkError ``tampered`` on anything wrong)."""
        if self.state is not LinkState.SENT or self._grant_key is None or self._request is None:
            raise LinkError("used")
        self.state = LinkState.FAILED
        reader = _open_header(data, TYPE_GRANT)
        try:
            header = _header(TYPE_GRANT).to_bytes()
            plaintext = ChaCha20Poly1305(self._grant_key).decrypt(_NONCE, reader.rest(), header)
            body = Reader(plaintext)
            account = AccountKeyPair.from_bytes(body.fixed(KEY_SIZE))
            certificate = DeviceCertificate.from_bytes(body.var_bytes())
            head = DeviceListHead.from_bytes(body.var_bytes())
            pins = body.var_bytes()
            body.finish()
            _check_grant(self._request, account, certificate, head)
        except (InvalidTag, InvalidArgument, BadSignature) as exc:
            raise LinkError("tampered") from exc
        self.state, self._grant_key = LinkState.DONE, None
        return LinkGrant(account, certificate, head, pins)


def _check_grant(
    request: LinkRequest,
    account: AccountKeyPair,
    certificate: DeviceCertificate,
    head: DeviceListHead,
) -> None:
    for statement in (certificate, head):
        if statement.account_key != account.public or statement.user != request.user:
            raise InvalidArgument("the grant is for another account")
        statement.verify()
    if not certificate.names(request.device_id, request.identity) or not head.names(
        request.device_id, request.identity
    ):
        raise InvalidArgument("the grant is for another device")
