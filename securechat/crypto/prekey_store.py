"""A device's private prekey inventory: generation, rotation, lookup, consumption, replay guard.

Ids are uint32 counters per kind (signed, one-time X25519, ML-KEM); last-resort ML-KEM keys
share the ML-KEM id space. :meth:`PreKeyStore.rotate` replaces the signed prekey *and* the
last-resort ML-KEM prekey together (PQXDH §3.2); replaced ones stay usable for
:data:`SIGNED_PREKEY_GRACE` seconds so that first messages built on a bundle fetched just before
the rotation still open, then their private halves are deleted.

Replay guard: a first message that used a one-time prekey (X25519 or ML-KEM) cannot be replayed
because that private key is deleted once the message opens. One built only on the signed prekey
and a last-resort KEM key can, for as long as both live; so the base key (the initiator's
ephemeral key) of every such message is remembered under its (signed prekey id, KEM prekey id)
pair, for exactly as long as both keys exist, and a repeat is refused. At most
:data:`MAX_GUARDED_PER_PAIR` base keys are kept per pair; past that, first messages on that pair
are refused (fail closed) until a rotation retires it.
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
MAX_GUARDED_PER_PAIR = 50_000
STORE_VERSION = 2

PreKeyPair = tuple[int, int]  # (signed prekey id, KEM prekey id)


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
        self.kem_replaced_at: dict[int, int] = {}
        self.last_resort_id = 0
        self.seen_base_keys: dict[PreKeyPair, set[bytes]] = {}
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
        store.rotate(identity, now=now, randomness=randomness)
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

    def rotate(
        self, identity: IdentityKeyPair, *, now: int, randomness: SystemRandomness
    ) -> tuple[SignedPreKeyPublic, KemPreKeyPublic]:
        """New signed prekey and new last-resort KEM prekey; old ones kept for the grace."""
        signed = self.rotate_signed(identity, now=now, randomness=randomness)
        pair = make_kem_prekey(
            identity, self.user, self.device_id, self._next("kem"), True, randomness
        )
        if self.last_resort_id:
            self.kem_replaced_at[self.last_resort_id] = now
        self.kem[pair.public.key_id] = pair
        self.last_resort_id = pair.public.key_id
        self._expire(now)
        return signed, pair.public

    def rotate_signed(
        self, identity: IdentityKeyPair, *, now: int, randomness: SystemRandomness
    ) -> SignedPreKeyPublic:
        """New signed prekey only (the stage-1 schedule; prefer :meth:`rotate`)."""
        pair = make_signed_prekey(
            identity, self.user, self.device_id, self._next("signed"), now, randomness
        )
        if self.current_signed_id:
            self.signed_replaced_at[self.current_signed_id] = now
        self.signed[pair.public.key_id] = pair
        self.current_signed_id = pair.public.key_id
        self._expire(now)
        return pair.public

    def _expire(self, now: int) -> None:
        """Delete replaced keys past their grace period, and the replay memory they carried."""
        for key_id, replaced_at in list(self.signed_replaced_at.items()):
            if now - replaced_at > SIGNED_PREKEY_GRACE:
                del self.signed[key_id], self.signed_replaced_at[key_id]
        for key_id, replaced_at in list(self.kem_replaced_at.items()):
            if now - replaced_at > SIGNED_PREKEY_GRACE:
                del self.kem[key_id], self.kem_replaced_at[key_id]
        self._prune_guard()

    def _prune_guard(self) -> None:
        for pair in list(self.seen_base_keys):
            if pair[0] not in self.signed or pair[1] not in self.kem:
                del self.seen_base_keys[pair]

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
        self._check_count(count, sum(not k.public.last_resort for k in self.kem.values()))
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
            if not pair.public.last_resort
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
        if self._guarded(header, kem):
            seen = self.seen_base_keys.get((header.signed_prekey_id, header.kem_prekey_id), set())
            if header.ephemeral_key in seen or len(seen) >= MAX_GUARDED_PER_PAIR:
                raise DecryptionError()  # a replayed first message (or a full guard)
        return signed, one_time, kem

    @staticmethod
    def _guarded(header: PreKeyHeader, kem: KemPreKeyPair) -> bool:
        """Only first messages without any one-time key can be replayed, so only they."""
        return header.one_time_prekey_id is None and kem.public.last_resort

    def consume(self, header: PreKeyHeader) -> None:
        """After a first message opened: delete its one-time keys, remember its base key."""
        kem = self.kem.get(header.kem_prekey_id)
        if kem is not None and self._guarded(header, kem):
            pair = (header.signed_prekey_id, header.kem_prekey_id)
            self.seen_base_keys.setdefault(pair, set()).add(header.ephemeral_key)
        if header.one_time_prekey_id is not None:
            self.one_time.pop(header.one_time_prekey_id, None)
            self.published.discard(("one_time", header.one_time_prekey_id))
        if kem is not None and not kem.public.last_resort:
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
            writer.boolean(key_id in self.kem_replaced_at)
            writer.u64(self.kem_replaced_at.get(key_id, 0))
        writer.u32(len(self.seen_base_keys))
        for (signed_id, kem_id), base_keys in sorted(self.seen_base_keys.items()):
            writer.u32(signed_id).u32(kem_id).u32(len(base_keys))
            for base_key in sorted(base_keys):
                writer.fixed(base_key, 32)
        return writer

    def guard_legacy_base_keys(self, base_keys: list[bytes]) -> None:
        """Migrate a stage-1 replay memory (not tied to keys) onto every live guarded pair."""
        if not base_keys:
            return
        for signed_id in self.signed:
            for kem_id, kem in self.kem.items():
                if kem.public.last_resort:
                    self.seen_base_keys.setdefault((signed_id, kem_id), set()).update(base_keys)

    @classmethod
    def read(cls, reader: Reader, version: int = STORE_VERSION) -> PreKeyStore:
        """Parse the store (``version`` 1 = stage 1: no KEM rotation, no per-pair guard)."""
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
            if version >= STORE_VERSION:
                replaced, replaced_at = reader.boolean(), reader.u64()
                if replaced:
                    store.kem_replaced_at[key_id] = replaced_at
        if version >= STORE_VERSION:
            for _ in range(reader.u32()):
                pair, count = (reader.u32(), reader.u32()), reader.u32()
                store.seen_base_keys[pair] = {reader.fixed(32) for _ in range(count)}
        if store.current_signed_id not in store.signed or store.last_resort_id not in store.kem:
            raise InvalidArgument("prekey store is inconsistent")
        return store
