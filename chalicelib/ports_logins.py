"""The ports of logins: the password policy, the failed-login counters and the audit log.

A section of :mod:`chalicelib.ports` kept in its own module (ports.py re-exports every name), so
each stays short. Services import them from ``chalicelib.ports``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Optional, Protocol

from chalicelib.entities.audit import AuditEvent


@dataclass(frozen=True)
class PasswordRefusal:
    """Why a password is refused, in words for the person who chose it."""

    reason: str
    suggestions: tuple[str, ...] = ()

    def message(self) -> str:
        return " ".join((self.reason, *self.suggestions)).strip()


class PasswordPolicy(Protocol):
    """Judges a new password (zxcvbn on AWS and locally)."""

    def check(self, password: str, user_inputs: Iterable[str] = ()) -> Optional[PasswordRefusal]:
        """None if ``password`` is acceptable; otherwise why not. ``user_inputs`` are words a
        guesser would try first (the email, its parts)."""


@dataclass(frozen=True)
class LoginFailures:
    """The failed logins counted for one key (an account or a client address)."""

    count: int
    last_at: datetime


class LoginAttemptStore(Protocol):
    """Failed-login counters shared by every API process (DynamoDB, items expire by TTL)."""

    def get_many(self, keys: list[str], now: datetime) -> dict[str, LoginFailures]:
        """The live counters among ``keys`` (expired ones are left out: TTL deletion lags)."""

    def add_failure(self, key: str, at: datetime, forget_after_seconds: int) -> LoginFailures:
        """Count one failure at ``at``, atomically across processes; the counter expires
        ``forget_after_seconds`` after its last failure and an expired one starts again at 1."""

    def clear(self, key: str) -> None:
        """Forget the counter (a successful login)."""


#: What an audit page token looks like: ``<month>.<20 digits of the time>.<event id>``, the
#: position after the last event of a page (nothing secret: the page showed it). Every string
#: it matches is a valid token (the OpenAPI document states it); only URL-safe characters.
AUDIT_PAGE_TOKEN_PATTERN = r"^[0-9]{4}-(?:0[1-9]|1[0-2])\.[0-9]{20}\.[A-Za-z0-9_-]{1,100}$"


class AuditLog(Protocol):
    """Security events (logins, API keys), kept for a retention period (DynamoDB TTL)."""

    def add(self, event: AuditEvent) -> None: ...

    def page(self, now: datetime, limit: int,
             page_token: Optional[str] = None) -> tuple[list[AuditEvent], Optional[str]]:
        """Up to ``limit`` unexpired events, newest first, after the page that gave
        ``page_token``; and the token of the next page (None on the last). ``InvalidInput``
        for a token that does not match :data:`AUDIT_PAGE_TOKEN_PATTERN`."""
