"""A device's private prekey inventory: generation, rotation, lookup and one-time consumption.

Ids are uint32 counters per kind (signed, one-time X25519, ML-KEM); the last-resort ML-KEM key
shares the ML-KEM id space and is never deleted. A signed prekey replaced by
:meth:`PreKeyStore.rotate_signed` stays usable for :data:`SIGNED_PREKEY_GRACE` seconds so that
first messages built on a bundle fetched just before the rotation still open.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from securechat.crypto.encoding import Reader, Writer
from securechat.crypto.handshake import PreKeyHeader
from securechat.crypto.identity import IdentityKeyPair
from securechat.crypto.prekeys import (
    KemPreKeyPair,
    KemPreKeyPublic,
    OneTimePreKeyPair,
    OneTimePreKeyPublic,
    SignedPreKeyPair,
    SignedPreKeyPublic,
    make_kem_prekey,
    make_one_time_prekey,
    make_signed_prekey,
)
from securechat.crypto.randomness import SystemRandomness
from securechat.errors import DecryptionError, InvalidArgument

SIGNED_PREKEY_GRACE = 30 * 24 * 3600
MAX_UNUSED_ONE_TIME = 1000


class PreKeyStore:
    """Private halves of every prekey one device has published or will publish."""

    def __init__(self, user: str, device_id: int) -> None:
        self.user = user
        self.device_id = device_id
        self.signed: dict[int, SignedPreKeyPair] = {}
        self.signed_replaced_at: dict[int, int] = {}
        self.current_signed_id = 0
        self.one_time: dict[int, OneTimePreKeyPair] = {}
        self.kem: dict[int, KemPreKeyPair] = {}
        self.last_resort_id = 0
        self.published: set[tuple[str, int]] = set()
        self.next_ids = {"signed": 1, "one_time": 1, "kem": 1}

    @classmethod
    def create(
        cls,
        identity: IdentityKeyPair,
        user: str,
        device_id: int,
        *,
        now: int,
        one_time_count: int,
        kem_one_time_count: int,
        randomness: SystemRandomness,
    ) -> PreKeyStore:
        store = cls(user, device_id)
        store.rotate_signed(identity, now=now, randomness=randomness)
        last_resort = make_kem_prekey(
            identity, user, device_id, store._next("kem"), True, randomness
        )
        store.kem[last_resort.public.key_id] = last_resort
        store.last_resort_id = last_resort.public.key_id
        store.add_one_time(identity, one_time_count, randomness)
        store.add_kem(identity, kem_one_time_count, randomness)
        return store

    def _next(self, kind: str) -> int:
        key_id = self.next_ids[kind]
        if key_id > 0xFFFFFFFF:
            raise InvalidArgument(f"{kind} prekey ids exhausted")
        self.next_ids[kind] = key_id + 1
        return key_id

    @property
    def current_signed(self) -> SignedPreKeyPair:
        return self.signed[self.current_signed_id]

    @property
    def last_resort(self) -> KemPreKeyPair:
        return self.kem[self.last_resort_id]

    def rotate_signed(
        self, identity: IdentityKeyPair, *, now: int, randomness: SystemRandomness
    ) -> SignedPreKeyPublic:
        pair = make_signed_prekey(
            identity, self.user, self.device_id, self._next("signed"), now, randomness
        )
        if self.current_signed_id:
            self.signed_replaced_at[self.current_signed_id] = now
        for key_id, replaced_at in list(self.signed_replaced_at.items()):
            if now - replaced_at > SIGNED_PREKEY_GRACE:
                del self.signed[key_id], self.signed_replaced_at[key_id]
        self.signed[pair.public.key_id] = pair
        self.current_signed_id = pair.public.key_id
        return pair.public

    def add_one_time(
        self, identity: IdentityKeyPair, count: int, randomness: SystemRandomness
    ) -> list[OneTimePreKeyPublic]:
        self._check_count(count, len(self.one_time))
        pairs = [
            make_one_time_prekey(
                identity, self.user, self.device_id, self._next("one_time"), randomness
            )
            for _ in range(count)
        ]
        self.one_time.update((pair.public.key_id, pair) for pair in pairs)
        return [pair.public for pair in pairs]

    def add_kem(
        self, identity: IdentityKeyPair, count: int, randomness: SystemRandomness
    ) -> list[KemPreKeyPublic]:
        self._check_count(count, len(self.kem) - 1)
        pairs = [
            make_kem_prekey(
                identity, self.user, self.device_id, self._next("kem"), False, randomness
            )
            for _ in range(count)
        ]
        self.kem.update((pair.public.key_id, pair) for pair in pairs)
        return [pair.public for pair in pairs]

    @staticmethod
    def _check_count(count: int, existing: int) -> None:
        if count < 0 or existing + count > MAX_UNUSED_ONE_TIME:
            raise InvalidArgument(f"at most {MAX_UNUSED_ONE_TIME} unused one-time prekeys")

    def unpublished(
        self, *, include_published: bool = False
    ) -> tuple[list[OneTimePreKeyPublic], list[KemPreKeyPublic]]:
        """One-time public keys not yet handed out, marking them published."""
        one_time = [
            pair.public
            for key_id, pair in sorted(self.one_time.items())
            if include_published or ("one_time", key_id) not in self.published
        ]
        kem = [
            pair.public
            for key_id, pair in sorted(self.kem.items())
            if key_id != self.last_resort_id
            and (include_published or ("kem", key_id) not in self.published)
        ]
        self.published.update(("one_time", key.key_id) for key in one_time)
        self.published.update(("kem", key.key_id) for key in kem)
        return one_time, kem

    def find(
        self, header: PreKeyHeader
    ) -> tuple[SignedPreKeyPair, OneTimePreKeyPair | None, KemPreKeyPair]:
        """The private keys a first message names; unknown or used ids raise DecryptionError."""
        signed = self.signed.get(header.signed_prekey_id)
        kem = self.kem.get(header.kem_prekey_id)
        one_time = None
        if header.one_time_prekey_id is not None:
            one_time = self.one_time.get(header.one_time_prekey_id)
            if one_time is None:
                raise DecryptionError()
        if signed is None or kem is None:
            raise DecryptionError()
        return signed, one_time, kem

    def consume(self, header: PreKeyHeader) -> None:
        """Delete the one-time private keys a successfully opened first message used."""
        if header.one_time_prekey_id is not None:
            self.one_time.pop(header.one_time_prekey_id, None)
            self.published.discard(("one_time", header.one_time_prekey_id))
        if header.kem_prekey_id != self.last_resort_id:
            self.kem.pop(header.kem_prekey_id, None)
            self.published.discard(("kem", header.kem_prekey_id))

    def write(self, writer: Writer) -> Writer:
        writer.text(self.user).u32(self.device_id).u32(self.current_signed_id)
        writer.u32(self.last_resort_id)
        for kind in ("signed", "one_time", "kem"):
            writer.u64(self.next_ids[kind])
        writer.u32(len(self.signed))
        for key_id, spk in sorted(self.signed.items()):
            writer.u32(key_id).u64(spk.public.created_at).var_bytes(spk.public.signature)
            writer.fixed(spk.private.private_bytes_raw(), 32)
            writer.boolean(key_id in self.signed_replaced_at)
            writer.u64(self.signed_replaced_at.get(key_id, 0))
        writer.u32(len(self.one_time))
        for key_id, opk in sorted(self.one_time.items()):
            writer.u32(key_id).var_bytes(opk.public.signature)
            writer.fixed(opk.private.private_bytes_raw(), 32)
            writer.boolean(("one_time", key_id) in self.published)
        writer.u32(len(self.kem))
        for key_id, kem in sorted(self.kem.items()):
            writer.u32(key_id).var_bytes(kem.public.signature).boolean(kem.public.last_resort)
            writer.fixed(kem.private.private_bytes_raw(), 64)
            writer.boolean(("kem", key_id) in self.published)
        return writer

    @classmethod
    def read(cls, reader: Reader) -> PreKeyStore:
        store = cls(reader.text(), reader.u32())
        store.current_signed_id = reader.u32()
        store.last_resort_id = reader.u32()
        for kind in ("signed", "one_time", "kem"):
            store.next_ids[kind] = reader.u64()
        for _ in range(reader.u32()):
            key_id, created_at, signature = reader.u32(), reader.u64(), reader.var_bytes()
            private = X25519PrivateKey.from_private_bytes(reader.fixed(32))
            public = private.public_key().public_bytes_raw()
            store.signed[key_id] = SignedPreKeyPair(
                SignedPreKeyPublic(key_id, public, created_at, signature), private
            )
            replaced, replaced_at = reader.boolean(), reader.u64()
            if replaced:
                store.signed_replaced_at[key_id] = replaced_at
        for _ in range(reader.u32()):
            key_id, signature = reader.u32(), reader.var_bytes()
            private = X25519PrivateKey.from_private_bytes(reader.fixed(32))
            public = private.public_key().public_bytes_raw()
            store.one_time[key_id] = OneTimePreKeyPair(
                OneTimePreKeyPublic(key_id, public, signature), private
            )
            if reader.boolean():
                store.published.add(("one_time", key_id))
        for _ in range(reader.u32()):
            key_id, signature, last_resort = reader.u32(), reader.var_bytes(), reader.boolean()
            kem_private = MLKEM768PrivateKey.from_seed_bytes(reader.fixed(64))
            kem_public = kem_private.public_key().public_bytes_raw()
            store.kem[key_id] = KemPreKeyPair(
                KemPreKeyPublic(key_id, kem_public, signature, last_resort), kem_private
            )
            if reader.boolean():
                store.published.add(("kem", key_id))
        if store.current_signed_id not in store.signed or store.last_resort_id not in store.kem:
            raise InvalidArgument("prekey store is inconsistent")
        return store
