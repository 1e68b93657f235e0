"""Hypothesis: any delivery order, drops and duplicates within the limits decrypt exactly once."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from securechat.crypto.ratchet import MAX_SKIP_PER_CHAIN
from securechat.errors import DecryptionError

from ._support import ALICE, BOB, CONVERSATION, NOW, paired

Event = tuple[str, int]  # (direction, index into that side's sent list)


@st.composite
def schedules(draw: st.DrawFn) -> list[tuple[str, list[int]]]:
    """Rounds of messages in one direction, each delivered as a random multiset of indices."""
    rounds = []
    for _ in range(draw(st.integers(1, 4))):
        direction = draw(st.sampled_from(["a->b", "b->a"]))
        count = draw(st.integers(1, 8))
        delivered = draw(st.lists(st.integers(0, count - 1), max_size=2 * count))
        rounds.append((direction, [count, *delivered]))
    return rounds


@given(schedules())
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_delivered_message_decrypts_exactly_once(
    schedule: list[tuple[str, list[int]]],
) -> None:
    alice, bob = paired()
    for direction, (count, *delivered) in schedule:
        sender, recipient, source = (
            (alice, bob, ALICE) if direction == "a->b" else (bob, alice, BOB)
        )
        target = BOB if direction == "a->b" else ALICE
        sent = [sender.encrypt(target, CONVERSATION, f"{i}".encode()) for i in range(count)]
        opened: set[int] = set()
        for index in delivered:
            if index in opened:
                with pytest.raises(DecryptionError):
                    recipient.decrypt(source, CONVERSATION, sent[index], now=NOW)
            else:
                plaintext = recipient.decrypt(source, CONVERSATION, sent[index], now=NOW)
                assert plaintext == f"{index}".encode()
                opened.add(index)


@given(st.integers(MAX_SKIP_PER_CHAIN + 2, MAX_SKIP_PER_CHAIN + 20))
@settings(max_examples=3, deadline=None)
def test_beyond_the_skip_limit_fails_cleanly(count: int) -> None:
    alice, bob = paired()
    sent = [alice.encrypt(BOB, CONVERSATION, b"m") for _ in range(count)]
    before = bob.to_bytes()
    with pytest.raises(DecryptionError):
        bob.decrypt(ALICE, CONVERSATION, sent[-1], now=NOW)
    assert bob.to_bytes() == before
    assert bob.decrypt(ALICE, CONVERSATION, sent[0], now=NOW) == b"m"
