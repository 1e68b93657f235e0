"""A room's join policy and the room-password split: a server check and a join-proof key.

From the room password the client derives, with Argon2id and the room's salt (from its CREATE
event), two independent values with distinct HKDF labels:

* ``authenticator``: 64 hex characters sent to the server, which bcrypt-checks it as it does an
  account password. It cannot be turned into the proof key.
* the **proof key**: an Ed25519 key pair. Its public half is published in the roster (the
  policy); a JOIN to a protected room carries a signature by the private half over the room,
  the position the join takes and the joiner's name and account key, which every member can
  check and the server cannot make. See docs/e2e-wire-rooms.md for why this is a signature and
  not a MAC.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from securechat.crypto import labels
from securechat.crypto.encoding import Reader, Writer
from securechat.crypto.identity import verify_signature
from securechat.crypto.keystore import DEFAULT_ARGON2, Argon2Params, derive_key
from securechat.errors import BadSignature, InvalidArgument

ROOM_SALT_SIZE = 16
KEY_SIZE = 32
SIGNATURE_SIZE = 64
HASH_SIZE = 32
MAX_NAME_BYTES = 64
# Bounds a policy must respect, so a hostile admin cannot make joiners' clients run out of memory.
MAX_ARGON2_ITERATIONS = 10
MAX_ARGON2_LANES = 16
MAX_ARGON2_MEMORY_KIB = 1024 * 1024
ROOM_ARGON2 = DEFAULT_ARGON2


def check_name(name: str, what: str) -> str:
    """A user or room name as the crypto layer accepts it: 1-64 UTF-8 bytes, no NUL."""
    size = len(name.encode("utf-8"))
    if not 1 <= size <= MAX_NAME_BYTES or "\x00" in name:
        raise InvalidArgument(f"{what} must be 1-{MAX_NAME_BYTES} bytes without NUL")
    return name


def argon2_within_bounds(params: Argon2Params) -> bool:
    return (
        1 <= params.iterations <= MAX_ARGON2_ITERATIONS
        and 1 <= params.lanes <= MAX_ARGON2_LANES
        and 8 * params.lanes <= params.memory_cost <= MAX_ARGON2_MEMORY_KIB
    )


@dataclass(frozen=True)
class RoomPolicy:
    """Open (anyone may self-join) or protected (a join needs a proof from the password)."""

    argon2: Argon2Params | None = None
    proof_public_key: bytes | None = None

    @property
    def protected(self) -> bool:
        return self.proof_public_key is not None

    def __post_init__(self) -> None:
        if (self.argon2 is None) != (self.proof_public_key is None):
            raise InvalidArgument("a protected policy needs both Argon2id parameters and a key")
        if self.proof_public_key is not None and len(self.proof_public_key) != KEY_SIZE:
            raise InvalidArgument("a proof public key is 32 bytes")
        if self.argon2 is not None and not argon2_within_bounds(self.argon2):
            raise InvalidArgument("room password Argon2id parameters are out of bounds")

    def write(self, writer: Writer) -> Writer:
        writer.boolean(self.protected)
        if self.argon2 is not None and self.proof_public_key is not None:
            writer.u32(self.argon2.iterations).u32(self.argon2.lanes)
            writer.u32(self.argon2.memory_cost).fixed(self.proof_public_key, KEY_SIZE)
        return writer

    @classmethod
    def read(cls, reader: Reader) -> RoomPolicy:
        if not reader.boolean():
            return OPEN_POLICY
        params = Argon2Params(iterations=reader.u32(), lanes=reader.u32(), memory_cost=reader.u32())
        return cls(params, reader.fixed(KEY_SIZE))


OPEN_POLICY = RoomPolicy()


class RoomPasswordKeys:
    """The two values derived from a room password; only ``authenticator`` leaves the client."""

    def __init__(self, authenticator: bytes, proof_private: Ed25519PrivateKey) -> None:
        self.authenticator = authenticator
        self._proof = proof_private
        self.proof_public_key = proof_private.public_key().public_bytes_raw()

    @classmethod
    def derive(
        cls, password: str, room: str, room_salt: bytes, params: Argon2Params = ROOM_ARGON2
    ) -> RoomPasswordKeys:
        """Argon2id once (about as slow as opening the keystore), then two HKDF expansions."""
        if not password:
            raise InvalidArgument("a room password must not be empty")
        if len(room_salt) != ROOM_SALT_SIZE:
            raise InvalidArgument("a room salt is 16 bytes")
        if not argon2_within_bounds(params):
            raise InvalidArgument("room password Argon2id parameters are out of bounds")
        stretched = derive_key(password, room_salt, params)  # within the keystore's bounds too
        check_name(room, "room name")
        auth_info = Writer(labels.ROOM_PASSWORD_AUTHENTICATOR).text(room).to_bytes()
        proof_info = Writer(labels.ROOM_PASSWORD_PROOF_KEY).text(room).to_bytes()
        authenticator = labels.hkdf(stretched, None, auth_info, 32).hex().encode("ascii")
        seed = labels.hkdf(stretched, None, proof_info, 32)
        return cls(authenticator, Ed25519PrivateKey.from_private_bytes(seed))

    def policy(self, params: Argon2Params = ROOM_ARGON2) -> RoomPolicy:
        """The protected policy to publish (params must be those the keys were derived with)."""
        return RoomPolicy(params, self.proof_public_key)

    def prove_join(
        self, room: str, sequence: int, prev_hash: bytes, user: str, account_key: bytes
    ) -> bytes:
        return self._proof.sign(join_proof_message(room, sequence, prev_hash, user, account_key))


def join_proof_message(
    room: str, sequence: int, prev_hash: bytes, user: str, account_key: bytes
) -> bytes:
    """What a join proof signs: the room, the exact position and the joiner's name and key."""
    return (
        Writer(labels.ROOM_JOIN_PROOF)
        .text(room)
        .u64(sequence)
        .fixed(prev_hash, HASH_SIZE)
        .text(user)
        .fixed(account_key, KEY_SIZE)
        .to_bytes()
    )


def join_proof_valid(
    policy: RoomPolicy,
    proof: bytes,
    room: str,
    sequence: int,
    prev_hash: bytes,
    user: str,
    account_key: bytes,
) -> bool:
    if policy.proof_public_key is None:
        return False
    message = join_proof_message(room, sequence, prev_hash, user, account_key)
    try:
        verify_signature(policy.proof_public_key, proof, message)
    except BadSignature:
        return False
    return True
