"""The password-hashing queue: bounded, one hash per account and per source, sources in turn,
allow-listed logins first without starving the rest."""

from __future__ import annotations

from collections import Counter

from securechat.domain.fairqueue import OTHER_SHARE, FairQueue, Job, Lane, Refusal


def job(account: str, source: str, lane: Lane = Lane.OTHER) -> Job[str]:
    return Job(account, source, lane, f"{account}@{source}")


def idle() -> tuple[Counter[str], Counter[str]]:
    return Counter(), Counter()


def test_bounds_refuse_and_change_nothing() -> None:
    queue: FairQueue[str] = FairQueue(capacity=3, per_source=2, per_account=1)
    assert queue.push(job("a", "s1")) is None
    assert queue.push(job("a", "s2")) is Refusal.ACCOUNT
    assert queue.push(job("b", "s1")) is None
    assert queue.push(job("c", "s1")) is Refusal.SOURCE
    assert queue.push(job("d", "s2")) is None
    assert queue.push(job("e", "s3")) is Refusal.FULL
    assert queue.push(job("e", "s3", Lane.KNOWN)) is None  # each lane has its own bound
    assert len(queue) == 4


def test_sources_take_turns_and_busy_ones_wait() -> None:
    queue: FairQueue[str] = FairQueue(capacity=10, per_source=10, per_account=10)
    for j in (job("a", "flood"), job("b", "flood"), job("c", "flood"), job("d", "honest")):
        queue.push(j)
    accounts, sources = idle()
    order = []
    while (picked := queue.pop(accounts, sources)) is not None:
        order.append(picked.payload)
    assert order[:2] == ["a@flood", "d@honest"]  # the honest source does not wait its turn out
    queue.push(job("x", "s1"))
    queue.push(job("y", "s2"))
    picked = queue.pop(Counter({"x": 1}), Counter({"s2": 1}))
    assert picked is None  # x's account and s2's source each have a hash running
    assert len(queue) == 2


def test_known_logins_go_first_but_the_other_lane_gets_its_share() -> None:
    queue: FairQueue[str] = FairQueue(capacity=50, per_source=50, per_account=50)
    for i in range(20):
        queue.push(job(f"k{i}", f"k{i}", Lane.KNOWN))
        queue.push(job(f"o{i}", f"o{i}"))
    accounts, sources = idle()
    picks = [queue.pop(accounts, sources) for _ in range(OTHER_SHARE * 3)]
    lanes = [p.lane for p in picks if p is not None]
    assert lanes.count(Lane.OTHER) == 3
    assert lanes[0] is Lane.KNOWN


def test_discard_forgets_a_waiting_job() -> None:
    queue: FairQueue[str] = FairQueue(capacity=1, per_source=1, per_account=1)
    waiting = job("a", "s")
    queue.push(waiting)
    assert queue.discard(waiting)
    assert not queue.discard(waiting)
    assert queue.push(job("a", "s")) is None  # its slot is free again
