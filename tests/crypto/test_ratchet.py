"""The Double Ratchet: libsignal's chain-key vector, ordering, limits and transactional state."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from securechat.crypto import labels
from securechat.crypto.ratchet import (
    MAX_SKIP_PER_CHAIN,
    MAX_SKIPPED_KEYS,
    SKIPPED_KEY_LIFETIME,
    Header,
    RatchetState,
    chain_step,
)
from securechat.errors import DecryptionError, InvalidArgument

from ._support import NOW, flip_bit, load_json

AD = b"context"
Message = tuple[Header, bytes]


def test_chain_step_matches_libsignal_chain_key_vector() -> None:
    vector = load_json("libsignal_chain_key.json")
    seed_key, next_chain_key = chain_step(bytes.fromhex(vector["seed"]))
    assert next_chain_key.hex() == vector["next_chain_key"]
    expanded = labels.hkdf(seed_key, None, vector["hkdf_info"].encode(), 80)
    assert expanded[:32].hex() == vector["message_key"]
    assert expanded[32:64].hex() == vector["mac_key"]


def pair() -> tuple[RatchetState, RatchetState]:
    root = bytes(range(32))
    bob_key = X25519PrivateKey.generate()
    alice = RatchetState.initiator(root, bob_key.public_key().public_bytes_raw())
    return alice, RatchetState.responder(root, bob_key)


def send(state: RatchetState, text: bytes) -> Message:
    return state.encrypt(text, AD)


def receive(state: RatchetState, message: Message, now: int = NOW) -> bytes:
    return state.decrypt(message[0], message[1], AD, now=now)


def test_conversation_in_both_directions() -> None:
    alice, bob = pair()
    for round_number in range(3):
        for index in range(3):
            text = f"a{round_number}{index}".encode()
            assert receive(bob, send(alice, text)) == text
        text = f"b{round_number}".encode()
        assert receive(alice, send(bob, text)) == text


def test_out_of_order_and_across_dh_steps() -> None:
    alice, bob = pair()
    first, second, third = (send(alice, bytes([i])) for i in range(3))
    assert receive(bob, third) == b"\x02"
    reply = send(bob, b"r")
    assert receive(alice, reply) == b"r"
    fourth = send(alice, b"\x03")  # new chain: PN = 3 lets Bob keep the old chain's keys
    assert fourth[0].previous_chain_length == 3
    assert receive(bob, fourth) == b"\x03"
    assert receive(bob, first) == b"\x00"
    assert receive(bob, second) == b"\x01"


def test_duplicates_fail_and_leave_state_intact() -> None:
    alice, bob = pair()
    first, second = send(alice, b"1"), send(alice, b"2")
    receive(bob, second)
    receive(bob, first)
    before = bob.to_bytes()
    for message in (first, second):
        with pytest.raises(DecryptionError):
            receive(bob, message)
    assert bob.to_bytes() == before


def test_responder_cannot_send_first() -> None:
    _, bob = pair()
    with pytest.raises(InvalidArgument):
        send(bob, b"x")


def test_tampered_header_ciphertext_or_ad_fails_without_damage() -> None:
    alice, bob = pair()
    header, ciphertext = send(alice, b"payload")
    before = bob.to_bytes()
    raw = header.to_bytes()
    for bit in range(0, len(raw) * 8, 7):
        from securechat.crypto.encoding import Reader

        bad = Header.read(Reader(flip_bit(raw, bit)))
        with pytest.raises(DecryptionError):
            bob.decrypt(bad, ciphertext, AD, now=NOW)
    for bit in range(0, len(ciphertext) * 8, 13):
        with pytest.raises(DecryptionError):
            bob.decrypt(header, flip_bit(ciphertext, bit), AD, now=NOW)
    with pytest.raises(DecryptionError):
        bob.decrypt(header, ciphertext, b"other context", now=NOW)
    assert bob.to_bytes() == before
    assert bob.decrypt(header, ciphertext, AD, now=NOW) == b"payload"


def test_skipping_more_than_the_chain_limit_fails_cleanly() -> None:
    alice, bob = pair()
    receive(bob, send(alice, b"start"))
    messages = [send(alice, b"m") for _ in range(MAX_SKIP_PER_CHAIN + 2)]
    before = bob.to_bytes()
    with pytest.raises(DecryptionError):
        receive(bob, messages[-1])  # would need 1001 skipped keys
    assert bob.to_bytes() == before
    assert receive(bob, messages[-2]) == b"m"  # exactly 1000 skipped: allowed
    assert len(bob.skipped) == MAX_SKIP_PER_CHAIN
    assert receive(bob, messages[0]) == b"m"


def test_per_chain_limit_counts_keys_already_stored() -> None:
    alice, bob = pair()
    receive(bob, send(alice, b"start"))
    messages = [send(alice, b"m") for _ in range(MAX_SKIP_PER_CHAIN + 3)]
    receive(bob, messages[MAX_SKIP_PER_CHAIN // 2])  # stores 500 skipped keys
    with pytest.raises(DecryptionError):
        receive(bob, messages[-1])  # 501 more would make 1001 on this chain
    assert receive(bob, messages[-2]) == b"m"  # 500 more: exactly 1000


def test_total_limit_drops_the_oldest_skipped_keys() -> None:
    alice, bob = pair()
    chains: list[list[Message]] = []
    for _ in range(3):  # three chains of 801 messages, only the last of each delivered
        chain = [send(alice, b"c") for _ in range(801)]
        receive(bob, chain[-1])
        receive(alice, send(bob, b"ack"))
        chains.append(chain)
    assert len(bob.skipped) == MAX_SKIPPED_KEYS
    with pytest.raises(DecryptionError):
        receive(bob, chains[0][0])  # the oldest were dropped
    assert receive(bob, chains[2][0]) == b"c"


def test_skipped_keys_expire() -> None:
    alice, bob = pair()
    late, on_time = send(alice, b"late"), send(alice, b"on time")
    receive(bob, on_time)
    with pytest.raises(DecryptionError):
        receive(bob, late, now=NOW + SKIPPED_KEY_LIFETIME + 1)
    assert receive(bob, late, now=NOW + SKIPPED_KEY_LIFETIME) == b"late"


def test_expired_keys_are_forgotten_on_the_next_message() -> None:
    alice, bob = pair()
    _lost, delivered = send(alice, b"lost"), send(alice, b"delivered")
    receive(bob, delivered)
    assert len(bob.skipped) == 1
    receive(bob, send(alice, b"later"), now=NOW + SKIPPED_KEY_LIFETIME + 1)
    assert bob.skipped == {}


def test_state_serializes_and_continues() -> None:
    alice, bob = pair()
    skipped = send(alice, b"skipped")
    receive(bob, send(alice, b"x"))
    alice = RatchetState.from_bytes(alice.to_bytes())
    bob = RatchetState.from_bytes(bob.to_bytes())
    assert receive(bob, skipped) == b"skipped"
    assert receive(alice, send(bob, b"back")) == b"back"
    with pytest.raises(InvalidArgument):
        RatchetState.from_bytes(b"\x02" + bob.to_bytes()[1:])
    with pytest.raises(InvalidArgument):
        RatchetState.from_bytes(bob.to_bytes() + b"\x00")
