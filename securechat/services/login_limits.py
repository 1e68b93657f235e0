"""Login rate limits that an attacker cannot turn against the account they attack.

Following NIST SP 800-63B section 5.2.2 (rate limiting), the limits compose like this, for an
attempt on account A from source S (an IPv4 address or an IPv6 /64, domain/sources.py):

1. (A, S) pair: after ``auth.max_failures_per_pair`` failures within ``auth.failure_window_s``
   the pair is locked for ``auth.lockout_s`` (growing delays before that). This is the only
   lock, and it holds only the attacker's own pair: A from any other source is unaffected.
2. Allow-list: a source A logged in from successfully within ``auth.known_source_days`` is
   *known* for A. Known attempts skip (3) and (4) and hash in the first lane.
3. Account A: each consecutive failure beyond ``auth.login_delay_after_failures`` doubles a
   delay (0.5 s, 1 s, 2 s ... up to ``auth.max_login_delay_s``) before the password is checked:
   the account slows down, the right password still works. After ``auth.max_failures_per_user``
   (at most 100) consecutive failures A accepts only known sources until the window passes.
4. Source S: beyond ``auth.max_failures_per_peer`` failures (any accounts) its attempts wait a
   growing delay too, but S is never locked out: other users behind the same NAT who logged in
   from it before (known) are not slowed at all.
5. Successes: at most ``auth.logins_per_account_per_hour`` (bursts of ``auth.login_burst``),
   refused before any hash, so an account repeating its own correct login cannot keep bcrypt
   busy. Only someone who knows the password can use this budget up.

A success resets (1) and (3). All state is per process (docs/operations.md, scale-out).
"""

from __future__ import annotations

from dataclasses import dataclass

from securechat.config import AuthConfig
from securechat.domain.ratelimit import (
    FailureCounter,
    FailureThrottle,
    KeyedBuckets,
    RecentSet,
    growing_delay,
)
from securechat.errors import ResourceExhausted

#: Attempts of one account waiting out a delay at once; more are refused (retry-after).
MAX_DELAYED_PER_ACCOUNT = 4
#: Seconds between the growing delays of a pair, before its lock.
PAIR_DELAY_CAP = 2.0


@dataclass(frozen=True, slots=True)
class Attempt:
    account: str
    source: str
    known: bool

    @property
    def pair(self) -> str:
        return f"{self.account}\x00{self.source}"


class LoginLimits:
    def __init__(self, config: AuthConfig) -> None:
        self.config = config
        self.pairs = FailureThrottle(
            config.max_failures_per_pair, config.failure_window_s, config.lockout_s
        )
        self.accounts = FailureCounter(config.failure_window_s)
        self.sources = FailureCounter(config.failure_window_s)
        self.known = RecentSet(config.known_source_days * 86400.0)
        self.successes = KeyedBuckets(
            config.logins_per_account_per_hour / 3600.0, config.login_burst
        )
        self._delayed: dict[str, int] = {}

    def begin(self, account: str, source: str, now: float) -> Attempt:
        """Admit an attempt, or raise ResourceExhausted (with retry-after) before any hash."""
        attempt = Attempt(account, source, self.known.recent(f"{account}\x00{source}", now))
        wait = self.pairs.retry_after(attempt.pair, now)
        if wait:
            raise ResourceExhausted(
                "too many failed logins for this account from your address: wait before "
                "trying again",
                retry_after=wait,
            )
        if not attempt.known and self.accounts.count(account, now) >= (
            self.config.max_failures_per_user
        ):
            raise ResourceExhausted(
                "this account has had too many failed logins: for now it accepts logins only "
                "from addresses it logged in from before",
                retry_after=self.accounts.retry_after(account, now),
            )
        wait = self.successes.wait(account, now)
        if wait:
            raise ResourceExhausted("too many logins for this account", retry_after=wait)
        return attempt

    def delay(self, attempt: Attempt, now: float) -> float:
        """Seconds to hold the attempt before its password is checked."""
        delay = self.pairs.delay(attempt.pair, now)
        if not attempt.known:
            cap = self.config.max_login_delay_s
            delay = max(
                delay,
                growing_delay(
                    self.accounts.count(attempt.account, now),
                    self.config.login_delay_after_failures,
                    cap,
                ),
                growing_delay(
                    self.sources.count(attempt.source, now), self.config.max_failures_per_peer, cap
                ),
            )
        return min(delay, max(PAIR_DELAY_CAP, self.config.max_login_delay_s))

    def hold(self, attempt: Attempt, delay: float) -> None:
        """Count an attempt that is about to wait ``delay``; refuse one too many."""
        held = self._delayed.get(attempt.account, 0)
        if held >= MAX_DELAYED_PER_ACCOUNT:
            raise ResourceExhausted(
                "too many logins for this account are waiting: try again shortly",
                retry_after=delay,
            )
        self._delayed[attempt.account] = held + 1

    def release(self, attempt: Attempt) -> None:
        held = self._delayed.get(attempt.account, 0) - 1
        if held > 0:
            self._delayed[attempt.account] = held
        else:
            self._delayed.pop(attempt.account, None)

    def failed(self, attempt: Attempt, now: float) -> None:
        self.pairs.fail(attempt.pair, now)
        self.accounts.fail(attempt.account, now)
        self.sources.fail(attempt.source, now)
        if self.pairs.retry_after(attempt.pair, now):
            self.known.discard(attempt.pair)  # a locked pair is no longer trusted

    def refused(self, source: str, now: float) -> None:
        """A refusal that checked no password (e.g. a certificate that does not match)."""
        self.sources.fail(source, now)

    def succeeded(self, attempt: Attempt, now: float) -> None:
        self.pairs.succeed(attempt.pair)
        self.accounts.succeed(attempt.account)
        self.successes.take(attempt.account, now)
        self.known.add(attempt.pair, now)
