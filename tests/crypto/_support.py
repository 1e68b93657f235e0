"""Shared helpers for the crypto tests: deterministic randomness, bundles, paired accounts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PublicKey

from securechat.crypto.account import Address, CryptoAccount, DeviceUpload
from securechat.crypto.prekeys import PreKeyBundle
from securechat.crypto.randomness import SystemRandomness

DATA = Path(__file__).parent / "data"
NOW = 1_700_000_000
CONVERSATION = "dm:alice:bob"


def load_json(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


class DeterministicRandomness(SystemRandomness):
    """A SHA-256 counter stream; ML-KEM encapsulations are replayed from a recorded list."""

    def __init__(self, seed: bytes, kem_replay: list[tuple[bytes, bytes]] | None = None) -> None:
        self._seed = seed
        self._counter = 0
        self._kem_replay = list(kem_replay) if kem_replay is not None else None
        self.recorded: list[tuple[bytes, bytes]] = []

    def random_bytes(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            self._counter += 1
            out += hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()
        return out[:n]

    def encapsulate(self, public_key: MLKEM768PublicKey) -> tuple[bytes, bytes]:
        if self._kem_replay is not None:
            return self._kem_replay.pop(0)
        pair = super().encapsulate(public_key)
        self.recorded.append(pair)
        return pair


def bundle_from(
    upload: DeviceUpload, *, one_time_index: int | None = 0, kem_index: int | None = 0
) -> PreKeyBundle:
    """A bundle as the server would hand it out (``None`` index = none left / last resort)."""
    return PreKeyBundle(
        upload.user,
        upload.device_id,
        upload.identity,
        upload.signed_prekey,
        upload.one_time_prekeys[one_time_index] if one_time_index is not None else None,
        upload.kem_prekeys[kem_index] if kem_index is not None else upload.last_resort_kem_prekey,
    )


def make_account(user: str, device_id: int = 1, **kwargs: Any) -> CryptoAccount:
    kwargs.setdefault("one_time_count", 5)
    kwargs.setdefault("kem_one_time_count", 3)
    return CryptoAccount.create(user, device_id, now=NOW, **kwargs)


def paired(*, reply: bool = True) -> tuple[CryptoAccount, CryptoAccount]:
    """Alice with a session to Bob; with ``reply`` both sides have exchanged a message."""
    alice, bob = make_account("alice"), make_account("bob")
    alice.start_session(bundle_from(bob.upload_bundle()), now=NOW)
    first = alice.encrypt(bob.address, CONVERSATION, b"first")
    assert bob.decrypt(alice.address, CONVERSATION, first, now=NOW) == b"first"
    if reply:
        answer = bob.encrypt(alice.address, CONVERSATION, b"reply")
        assert alice.decrypt(bob.address, CONVERSATION, answer, now=NOW) == b"reply"
    return alice, bob


def flip_bit(data: bytes, bit: int) -> bytes:
    buffer = bytearray(data)
    buffer[bit // 8] ^= 1 << (bit % 8)
    return bytes(buffer)


ALICE = Address("alice", 1)
BOB = Address("bob", 1)
