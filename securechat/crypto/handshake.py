"""The PQXDH-style hybrid handshake: X3DH's three or four X25519 agreements plus ML-KEM-768.

Initiator A (identity IK_A), responder B (identity IK_B, signed prekey SPK_B, optional
one-time prekey OPK_B, ML-KEM-768 prekey PQPK_B), ephemeral key EK_A::

    DH1 = DH(IK_A, SPK_B)   DH2 = DH(EK_A, IK_B)   DH3 = DH(EK_A, SPK_B)   DH4 = DH(EK_A, OPK_B)
    (SS, CT) = ML-KEM-768.Encaps(PQPK_B)
    transcript = canonical(both identities and addresses, EK_A, SPK_B, OPK_B, PQPK_B, CT, ids)
    root_key = HKDF-SHA256(ikm = 0xFF*32 || DH1 || DH2 || DH3 [|| DH4] || SS,
                           salt = 0*32, info = HANDSHAKE_ROOT || SHA-256(transcript), L = 32)

The 32 0xFF bytes are X3DH's prefix (spec §2.2), kept so the first HKDF input block can never be
a valid X25519 output. The root key seeds the Double Ratchet with SPK_B as B's first ratchet
key (as in Signal). The responder's side of the derivation is a pure function of the private
keys it is handed: finding them, rejecting unknown or used ids and deleting one-time keys after
the first message decrypts is the account's job (:mod:`securechat.crypto.account`).
"""

from __future__ import annotations

from dataclasses import dataclass

from securechat.crypto import labels
from securechat.crypto.encoding import Reader, Writer
from securechat.crypto.identity import IDENTITY_PUBLIC_SIZE, IdentityKeyPair, IdentityPublic
from securechat.crypto.prekeys import (
    KEM_CIPHERTEXT_SIZE,
    X25519_KEY_SIZE,
    KemPreKeyPair,
    OneTimePreKeyPair,
    PreKeyBundle,
    SignedPreKeyPair,
    kem_public,
    x25519_public,
)
from securechat.crypto.randomness import SYSTEM_RANDOMNESS, SystemRandomness
from securechat.errors import BadSignature, DecryptionError, InvalidArgument

ROOT_KEY_SIZE = 32


@dataclass(frozen=True)
class PreKeyHeader:
    """What the first messages carry so the responder can repeat the derivation."""

    identity: IdentityPublic
    ephemeral_key: bytes
    signed_prekey_id: int
    one_time_prekey_id: int | None
    kem_prekey_id: int
    kem_ciphertext: bytes

    def write(self, writer: Writer) -> Writer:
        return (
            writer.raw(self.identity.to_bytes())
            .fixed(self.ephemeral_key, X25519_KEY_SIZE)
            .u32(self.signed_prekey_id)
            .boolean(self.one_time_prekey_id is not None)
            .u32(self.one_time_prekey_id or 0)
            .u32(self.kem_prekey_id)
            .fixed(self.kem_ciphertext, KEM_CIPHERTEXT_SIZE)
        )

    @classmethod
    def read(cls, reader: Reader) -> PreKeyHeader:
        identity = IdentityPublic.from_bytes(reader.fixed(IDENTITY_PUBLIC_SIZE))
        ephemeral = reader.fixed(X25519_KEY_SIZE)
        spk_id = reader.u32()
        has_opk = reader.boolean()
        opk_id = reader.u32()
        if not has_opk and opk_id != 0:
            raise InvalidArgument("one-time prekey id without flag")
        kem_id = reader.u32()
        ciphertext = reader.fixed(KEM_CIPHERTEXT_SIZE)
        return cls(identity, ephemeral, spk_id, opk_id if has_opk else None, kem_id, ciphertext)


@dataclass(frozen=True)
class Party:
    """One side of the handshake as the transcript names it."""

    user: str
    device_id: int
    identity: IdentityPublic


@dataclass(frozen=True)
class InitiatorResult:
    root_key: bytes
    header: PreKeyHeader
    responder_ratchet_key: bytes


def transcript(
    initiator: Party,
    responder: Party,
    header: PreKeyHeader,
    signed_prekey: bytes,
    one_time_prekey: bytes | None,
    kem_prekey: bytes,
) -> bytes:
    """Canonical encoding of everything the handshake depends on."""
    writer = (
        Writer(labels.HANDSHAKE_TRANSCRIPT)
        .text(initiator.user)
        .u32(initiator.device_id)
        .raw(initiator.identity.to_bytes())
        .text(responder.user)
        .u32(responder.device_id)
        .raw(responder.identity.to_bytes())
        .fixed(signed_prekey, X25519_KEY_SIZE)
        .optional_bytes(one_time_prekey)
        .var_bytes(kem_prekey)
    )
    return header.write(writer).to_bytes()


def derive_root_key(dh_outputs: list[bytes], kem_secret: bytes, transcript_bytes: bytes) -> bytes:
    """HKDF over ``0xFF*32 || DH1..DH4 || SS`` with the transcript hash in ``info``."""
    ikm = labels.KDF_PREFIX_F + b"".join(dh_outputs) + kem_secret
    info = labels.HANDSHAKE_ROOT + labels.sha256(transcript_bytes)
    return labels.hkdf(ikm, None, info, ROOT_KEY_SIZE)


def initiate(
    own: IdentityKeyPair,
    own_user: str,
    own_device_id: int,
    bundle: PreKeyBundle,
    randomness: SystemRandomness = SYSTEM_RANDOMNESS,
) -> InitiatorResult:
    """Run the initiator's side against a verified bundle (raises BadSignature)."""
    bundle.verify()
    ephemeral = randomness.x25519()
    spk = x25519_public(bundle.signed_prekey.public_key)
    try:
        dh = [
            own.dh(spk),
            ephemeral.exchange(bundle.identity.dh_public()),
            ephemeral.exchange(spk),
        ]
        if bundle.one_time_prekey is not None:
            dh.append(ephemeral.exchange(x25519_public(bundle.one_time_prekey.public_key)))
        kem_secret, kem_ciphertext = randomness.encapsulate(
            kem_public(bundle.kem_prekey.public_key)
        )
    except ValueError as exc:
        raise BadSignature("the key bundle holds an invalid public key") from exc
    header = PreKeyHeader(
        identity=own.public,
        ephemeral_key=ephemeral.public_key().public_bytes_raw(),
        signed_prekey_id=bundle.signed_prekey.key_id,
        one_time_prekey_id=(
            bundle.one_time_prekey.key_id if bundle.one_time_prekey is not None else None
        ),
        kem_prekey_id=bundle.kem_prekey.key_id,
        kem_ciphertext=kem_ciphertext,
    )
    transcript_bytes = transcript(
        Party(own_user, own_device_id, own.public),
        Party(bundle.user, bundle.device_id, bundle.identity),
        header,
        bundle.signed_prekey.public_key,
        bundle.one_time_prekey.public_key if bundle.one_time_prekey is not None else None,
        bundle.kem_prekey.public_key,
    )
    root_key = derive_root_key(dh, kem_secret, transcript_bytes)
    return InitiatorResult(root_key, header, bundle.signed_prekey.public_key)


def respond(
    own: IdentityKeyPair,
    own_user: str,
    own_device_id: int,
    initiator_user: str,
    initiator_device_id: int,
    header: PreKeyHeader,
    signed_prekey: SignedPreKeyPair,
    one_time_prekey: OneTimePreKeyPair | None,
    kem_prekey: KemPreKeyPair,
) -> bytes:
    """Repeat the derivation on the responder's side; raises DecryptionError on any problem.

    The caller must already have matched the header's ids to these private keys.
    """
    if (one_time_prekey is None) != (header.one_time_prekey_id is None):
        raise DecryptionError()
    try:
        header.identity.verify()
        ephemeral = x25519_public(header.ephemeral_key)
        dh = [
            signed_prekey.private.exchange(header.identity.dh_public()),
            own.dh(ephemeral),
            signed_prekey.private.exchange(ephemeral),
        ]
        if one_time_prekey is not None:
            dh.append(one_time_prekey.private.exchange(ephemeral))
        kem_secret = kem_prekey.private.decapsulate(header.kem_ciphertext)
    except (ValueError, BadSignature) as exc:
        raise DecryptionError() from exc
    transcript_bytes = transcript(
        Party(initiator_user, initiator_device_id, header.identity),
        Party(own_user, own_device_id, own.public),
        header,
        signed_prekey.public.public_key,
        one_time_prekey.public.public_key if one_time_prekey is not None else None,
        kem_prekey.public.public_key,
    )
    return derive_root_key(dh, kem_secret, transcript_bytes)
