"""The delivery cursor of one live stream: which mailbox entries to push, drop or fetch."""

from __future__ import annotations

import enum


class Verdict(enum.Enum):
    PUSH = "push"  # next in sequence: send it now
    DUPLICATE = "duplicate"  # already sent on this stream
    GAP = "gap"  # something in between is missing: fetch from the mailbox


class DeliveryCursor:
    """Tracks the highest sequence pushed to a stream and the highest the client acked.

    Live notifications may be lost (pub/sub is lossy), duplicated or arrive during replay; the
    mailbox is the source of truth and a GAP verdict makes the stream fetch from it.
    """

    __slots__ = ("acked", "pushed", "replaying")

    def __init__(self, resume_after: int) -> None:
        self.pushed = resume_after
        self.acked = resume_after
        self.replaying = True

    def offer(self, seq: int) -> Verdict:
        if seq <= self.pushed:
            return Verdict.DUPLICATE
        if self.replaying or seq != self.pushed + 1:
            return Verdict.GAP
        self.pushed = seq
        return Verdict.PUSH

    def advance(self, seq: int) -> bool:
        """Record a fetched entry as pushed; False if it was already pushed."""
        if seq <= self.pushed:
            return False
        self.pushed = seq
        return True

    def can_ack(self, seq: int) -> bool:
        """A client may only ack what this stream has delivered."""
        return seq <= self.pushed

    def ack(self, seq: int) -> bool:
        """Record an ack; True when it moves the acked mark forward."""
        if seq > self.acked:
            self.acked = seq
            return True
        return False
