"""Frozen transcript: a handshake and ratchet messages from fixed keys must not change.

Every random value comes from :class:`DeterministicRandomness`; ML-KEM encapsulation (whose
randomness ``cryptography`` does not expose) is replayed from the recorded shared secret and
ciphertext, which were produced by a real encapsulation to Bob's fixed KEM key.
"""

from __future__ import annotations

from typing import Any

from securechat.crypto.account import CryptoAccount
from securechat.crypto.account_key import AccountKeyPair
from securechat.crypto.labels import sha256

from ._support import ALICE, BOB, CONVERSATION, NOW, DeterministicRandomness, bundle_from, load_json

TRANSCRIPT_FILE = "golden_transcript_v1.json"
SCRIPT = [
    ("a", b"hello bob"),
    ("a", b"are you there?"),
    ("b", b"hi alice"),
    ("a", b"great, the ratchet turned"),
    ("b", b"x" * 200),
]


def fixed_account_key(name: str) -> AccountKeyPair:
    """Account keys are passed in, so the frozen handshake's random stream stays unchanged."""
    return AccountKeyPair.from_bytes(sha256(f"{name} account key".encode()))


def golden_account(name: str, randomness: DeterministicRandomness) -> CryptoAccount:
    return CryptoAccount.create(
        name,
        1,
        now=NOW,
        one_time_count=2,
        kem_one_time_count=1,
        randomness=randomness,
        account_key=fixed_account_key(name),
    )


def build_transcript(
    kem_replay: list[tuple[bytes, bytes]] | None,
) -> tuple[dict[str, Any], list[tuple[bytes, bytes]]]:
    alice_rng = DeterministicRandomness(b"alice", kem_replay)
    alice = golden_account("alice", alice_rng)
    bob = golden_account("bob", DeterministicRandomness(b"bob"))
    alice.start_session(bundle_from(bob.upload_bundle()), now=NOW)
    messages = []
    for who, plaintext in SCRIPT:
        sender, recipient, source, target = (
            (alice, bob, ALICE, BOB) if who == "a" else (bob, alice, BOB, ALICE)
        )
        envelope = sender.encrypt(target, CONVERSATION, plaintext)
        assert recipient.decrypt(source, CONVERSATION, envelope, now=NOW) == plaintext
        messages.append({"from": who, "plaintext": plaintext.hex(), "envelope": envelope.hex()})
    transcript = {
        "alice_identity": alice.identity_public.to_bytes().hex(),
        "bob_identity": bob.identity_public.to_bytes().hex(),
        "safety_number": alice.safety_number("bob"),
        "messages": messages,
    }
    return transcript, alice_rng.recorded


def test_transcript_matches_the_frozen_bytes() -> None:
    frozen = load_json(TRANSCRIPT_FILE)
    replay = [(bytes.fromhex(ss), bytes.fromhex(ct)) for ss, ct in frozen["kem_encapsulations"]]
    transcript, _ = build_transcript(replay)
    assert transcript["alice_identity"] == frozen["alice_identity"]
    assert transcript["bob_identity"] == frozen["bob_identity"]
    assert transcript["safety_number"] == frozen["safety_number"]
    for produced, expected in zip(transcript["messages"], frozen["messages"], strict=True):
        assert produced == expected


def test_frozen_first_message_opens_with_bobs_fixed_keys() -> None:
    frozen = load_json(TRANSCRIPT_FILE)
    bob = golden_account("bob", DeterministicRandomness(b"bob"))
    first = frozen["messages"][0]
    opened = bob.decrypt(ALICE, CONVERSATION, bytes.fromhex(first["envelope"]), now=NOW)
    assert opened.hex() == first["plaintext"]
