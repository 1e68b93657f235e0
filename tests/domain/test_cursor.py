"""The delivery cursor: push in order, drop duplicates, fetch on gaps, acks only of delivered."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from securechat.domain.cursor import DeliveryCursor, Verdict


def live(cursor: DeliveryCursor) -> DeliveryCursor:
    cursor.replaying = False
    return cursor


def test_in_order_entries_are_pushed_and_duplicates_dropped() -> None:
    cursor = live(DeliveryCursor(resume_after=3))
    assert cursor.offer(4) is Verdict.PUSH
    assert cursor.offer(4) is Verdict.DUPLICATE
    assert cursor.offer(2) is Verdict.DUPLICATE
    assert cursor.pushed == 4


def test_a_gap_asks_for_a_fetch_and_does_not_advance() -> None:
    cursor = live(DeliveryCursor(resume_after=0))
    assert cursor.offer(2) is Verdict.GAP
    assert cursor.pushed == 0
    assert cursor.advance(1)
    assert cursor.advance(2)
    assert not cursor.advance(2)


def test_during_replay_everything_new_goes_through_the_mailbox() -> None:
    cursor = DeliveryCursor(resume_after=0)
    assert cursor.offer(1) is Verdict.GAP


def test_acks_only_for_delivered_sequences() -> None:
    cursor = live(DeliveryCursor(resume_after=5))
    assert cursor.can_ack(5)
    assert not cursor.can_ack(6)
    assert not cursor.ack(4)
    assert cursor.offer(6) is Verdict.PUSH
    assert cursor.ack(6)
    assert cursor.acked == 6


@given(st.lists(st.integers(min_value=1, max_value=40), max_size=200))
def test_any_notification_order_pushes_each_sequence_at_most_once_and_in_order(
    offers: list[int],
) -> None:
    cursor = live(DeliveryCursor(resume_after=0))
    pushed: list[int] = []
    for seq in offers:
        verdict = cursor.offer(seq)
        if verdict is Verdict.PUSH:
            pushed.append(seq)
        elif verdict is Verdict.GAP:  # the stream fetches everything up to seq from the mailbox
            for missing in range(cursor.pushed + 1, seq + 1):
                assert cursor.advance(missing)
                pushed.append(missing)
    assert pushed == list(range(1, len(pushed) + 1))
