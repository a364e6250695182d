"""Brute-force defence for logins: failed-login counters per account and per client address,
progressive delays, and a temporary lockout.

Each failed login counts once for the account (the email as given, whether or not it exists, so
the answers reveal nothing about which emails do) and once for the client's address. Past the
free failures each further one makes the next attempt wait longer (the delay doubles, up to a
cap); at the lockout threshold the account (or address) is locked for a while. During a wait or
a lockout an attempt is refused with 429 and a ``Retry-After`` *before* the password is checked,
so the right password is refused too (the answer does not tell whether it was right) and a
refused attempt costs no password hash. The API thread never sleeps: the client is told when to
come back.

A success forgets the account's counter. The address's counter is left to expire: someone who
holds one account could otherwise clear their address's counter between guesses at others.

The counters live in a store every API process shares (DynamoDB): a check and the failure it
leads to are two steps, so concurrent attempts that all pass one check may each fail once more
before the next check refuses them; API Gateway throttling and the WAF rate rule bound that burst.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional

from chalicelib.errors import TooManyRequests
from chalicelib.ports import LoginAttemptStore, LoginFailures
from chalicelib.services import Clock, utc_now

ACCOUNT, CLIENT = "account", "client"


@dataclass(frozen=True)
class ThrottleRule:
    """How failures of one scope (an account, or a client address) slow the next attempt."""

    free_failures: int  # failures allowed without any wait
    lockout_failures: int  # this many failures lock the scope for ``lockout_seconds``
    delay_seconds: float  # the wait after the first failure past the free ones; doubles after each next one
    max_delay_seconds: float
    lockout_seconds: int

    def wait_after(self, failures: int) -> float:
        """Seconds the next attempt must wait after the last of ``failures`` failures."""
        if failures >= self.lockout_failures:
            return float(self.lockout_seconds)
        if failures <= self.free_failures or self.delay_seconds <= 0:
            return 0.0
        return min(self.max_delay_seconds, self.delay_seconds * 2 ** min(failures - self.free_failures - 1, 32))


@dataclass(frozen=True)
class Lockout:
    """A failure that started a lockout: of which scope, for how long."""

    scope: str
    seconds: int
    failures: int


class LoginAttempt:
    """One login attempt that passed the throttle: report how it ended."""

    def __init__(self, throttle: "LoginThrottle", keys: dict[str, str], had_account_failures: bool):
        self._throttle = throttle
        self._keys = keys
        self._had_account_failures = had_account_failures

    def failed(self) -> list[Lockout]:
        """Count the failure for the account and the address; the lockouts it started."""
        return self._throttle.count_failure(self._keys)

    def succeeded(self) -> None:
        """Forget the account's failures (only if it had some: no write on a clean login)."""
        if self._had_account_failures:
            self._throttle.forget(self._keys[ACCOUNT])


class LoginThrottle:
    def __init__(self, store: LoginAttemptStore, account: ThrottleRule, client: ThrottleRule,
                 forget_after_seconds: int, clock: Clock = utc_now):
        """``forget_after_seconds``: a counter is forgotten this long after its last failure
        (never before its lockout or wait has ended)."""
        self._store = store
        self._rules = {ACCOUNT: account, CLIENT: client}
        longest_wait = max(max(r.lockout_seconds, r.max_delay_seconds) for r in self._rules.values())
        self._forget_after = math.ceil(max(forget_after_seconds, longest_wait))
        self._clock = clock

    def begin(self, email: str, source_ip: Optional[str]) -> LoginAttempt:
        """Let a login attempt go on, or raise ``TooManyRequests`` (with ``retry_after``) while
        the account or the address must wait or is locked out."""
        keys = {ACCOUNT: f"account#{email.strip().lower()}"}
        if source_ip:
            keys[CLIENT] = f"client#{source_ip}"
        now = self._clock()
        found = self._store.get_many(list(keys.values()), now)
        waits = {scope: self._remaining(scope, found.get(key), now) for scope, key in keys.items()}
        scope = max(waits, key=lambda s: waits[s])
        if waits[scope] > 0:
            raise TooManyRequests(self._message(scope, found[keys[scope]].count, waits[scope]), math.ceil(waits[scope]))
        return LoginAttempt(self, keys, keys[ACCOUNT] in found)

    def _remaining(self, scope: str, failures: Optional[LoginFailures], now: datetime) -> float:
        if failures is None:
            return 0.0
        until = failures.last_at + timedelta(seconds=self._rules[scope].wait_after(failures.count))
        return max(0.0, (until - now).total_seconds())

    def _message(self, scope: str, failures: int, wait: float) -> str:
        who = "this account" if scope == ACCOUNT else "your address"
        seconds = math.ceil(wait)
        if failures >= self._rules[scope].lockout_failures:
            return (f"too many failed logins for {who}: it is locked for {seconds} s; "
                    "no password is checked until then")
        return f"too many failed logins for {who}: wait {seconds} s before the next attempt"

    def forget(self, key: str) -> None:
        """Forget one counter (``account#<email>`` or ``client#<address>``)."""
        self._store.clear(key)

    def count_failure(self, keys: dict[str, str]) -> list[Lockout]:
        """Count one failure under each of ``keys`` (by scope); the lockouts it started."""
        now, lockouts = self._clock(), []
        for scope, key in keys.items():
            rule = self._rules[scope]
            failures = self._store.add_failure(key, now, self._forget_after)
            # At or past the threshold every failure starts a lockout: once one ends, the next
            # failure locks the scope again.
            if failures.count >= rule.lockout_failures:
                lockouts.append(Lockout(scope, rule.lockout_seconds, failures.count))
        return lockouts
