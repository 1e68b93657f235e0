"""Micro-benchmarks of the end-to-end layer, called by ``make bench``; prints nothing itself.

Plain ``time.perf_counter`` loops, no assertions: session setup (handshake on both sides plus
the first message), one ratchet encrypt + decrypt, and the fan-out cost of one room message to
10, 50 and 100 member devices over pairwise sessions.
"""

from __future__ import annotations

import time

from securechat.crypto.account import Address, CryptoAccount
from securechat.crypto.prekeys import PreKeyBundle

NOW = 1_700_000_000
CONVERSATION = "bench"


def _bundle(account: CryptoAccount) -> PreKeyBundle:
    upload = account.upload_bundle()
    return PreKeyBundle(
        account.address.user,
        account.address.device_id,
        upload.identity,
        upload.signed_prekey,
        upload.one_time_prekeys[0] if upload.one_time_prekeys else None,
        upload.kem_prekeys[0] if upload.kem_prekeys else upload.last_resort_kem_prekey,
    )


def _pair(sender: CryptoAccount, recipient: CryptoAccount) -> None:
    """Set up a session and exchange one message each way (so later messages are NORMAL)."""
    sender.start_session(_bundle(recipient), now=NOW)
    first = sender.encrypt(recipient.address, CONVERSATION, b"hello")
    recipient.decrypt(sender.address, CONVERSATION, first, now=NOW)
    reply = recipient.encrypt(sender.address, CONVERSATION, b"hi")
    sender.decrypt(recipient.address, CONVERSATION, reply, now=NOW)


def bench_session_setup(rounds: int) -> float:
    """Milliseconds for start_session + the responder opening the first message."""
    total = 0.0
    for index in range(rounds):
        alice = CryptoAccount.create("alice", 1, now=NOW, one_time_count=1, kem_one_time_count=1)
        bob = CryptoAccount.create(
            f"bob{index}", 1, now=NOW, one_time_count=1, kem_one_time_count=1
        )
        bundle = _bundle(bob)
        start = time.perf_counter()
        alice.start_session(bundle, now=NOW)
        envelope = alice.encrypt(bob.address, CONVERSATION, b"hello")
        bob.decrypt(alice.address, CONVERSATION, envelope, now=NOW)
        total += time.perf_counter() - start
    return total / rounds * 1e3


def bench_ratchet_message(messages: int) -> float:
    """Microseconds for one encrypt + decrypt, alternating directions (a DH step each time)."""
    alice = CryptoAccount.create("alice", 1, now=NOW, one_time_count=1, kem_one_time_count=1)
    bob = CryptoAccount.create("bob", 1, now=NOW, one_time_count=1, kem_one_time_count=1)
    _pair(alice, bob)
    body = b"x" * 100
    start = time.perf_counter()
    for index in range(messages):
        sender, recipient = (alice, bob) if index % 2 == 0 else (bob, alice)
        envelope = sender.encrypt(recipient.address, CONVERSATION, body)
        recipient.decrypt(sender.address, CONVERSATION, envelope, now=NOW)
    return (time.perf_counter() - start) / messages * 1e6


def bench_room_fanout(members: int, rounds: int) -> float:
    """Milliseconds to encrypt one room message for ``members`` member devices."""
    sender = CryptoAccount.create("sender", 1, now=NOW, one_time_count=1, kem_one_time_count=1)
    peers: list[Address] = []
    for index in range(members):
        member = CryptoAccount.create(
            f"member{index}", 1, now=NOW, one_time_count=1, kem_one_time_count=1
        )
        _pair(sender, member)
        peers.append(member.address)
    body = b"y" * 200
    start = time.perf_counter()
    for _ in range(rounds):
        sender.encrypt_for_devices(peers, CONVERSATION, body)
    return (time.perf_counter() - start) / rounds * 1e3


def run_crypto_bench(*, quick: bool = False) -> dict[str, float]:
    """Run every measurement; ``quick`` uses fewer rounds (for smoke tests)."""
    rounds = 3 if quick else 20
    return {
        "session_setup_ms": bench_session_setup(rounds),
        "ratchet_encrypt_decrypt_us": bench_ratchet_message(20 if quick else 1000),
        "room_fanout_10_ms": bench_room_fanout(10, rounds),
        "room_fanout_50_ms": bench_room_fanout(50, 1 if quick else 5),
        "room_fanout_100_ms": bench_room_fanout(100, 1 if quick else 5),
    }
