"""Repositories of logins: failed-login counters and the audit log (DynamoDB, through pynamodb)."""
from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from typing import Optional

from pynamodb.exceptions import UpdateError

from chalicelib.entities import AuditEvent, AuditEventType
from chalicelib.errors import InvalidInput
from chalicelib.ports_logins import AUDIT_PAGE_TOKEN_PATTERN, LoginFailures
from chalicelib.store.models import AuditEventItem, LoginAttemptItem
from chalicelib.store.repositories import _failed_condition, _plain_map

UTC = timezone.utc
_TRIES = 5


class LoginAttemptRepository:
    """One item per key, ``failures`` counted with DynamoDB's atomic ADD."""

    def get_many(self, keys: list[str], now: datetime) -> dict[str, LoginFailures]:
        found: dict[str, LoginFailures] = {}
        for item in LoginAttemptItem.batch_get(list(dict.fromkeys(keys)), consistent_read=True):
            if item.expires_at > now.timestamp():  # TTL deletion lags (and never happens in moto)
                found[item.key] = self._failures(item)
        return found

    def add_failure(self, key: str, at: datetime, forget_after_seconds: int) -> LoginFailures:
        now = at.timestamp()
        stamp = [LoginAttemptItem.last_failure_at.set(now),
                 LoginAttemptItem.expires_at.set(math.ceil(now + forget_after_seconds))]
        item = LoginAttemptItem(key)
        # If a concurrent first failure creates the item between our two writes, the next ADD
        # counts on top of it instead of overwriting it with 1. DynamoDB needs two rounds at most;
        # moto (the local stack) can show another thread's half-written item, hence a few more.
        for _ in range(_TRIES):
            try:
                item.update(actions=[LoginAttemptItem.failures.add(1), *stamp],
                            condition=LoginAttemptItem.expires_at > now)
                return self._failures(item)
            except UpdateError as e:
                if not _failed_condition(e):
                    raise
            try:  # no live counter (none yet, or an expired one TTL has not deleted): start at 1
                item.update(actions=[LoginAttemptItem.failures.set(1), *stamp],
                            condition=LoginAttemptItem.key.does_not_exist() | (LoginAttemptItem.expires_at <= now))
                return self._failures(item)
            except UpdateError as e:
                if not _failed_condition(e):
                    raise
        raise RuntimeError(f"could not count a failed login for {key!r} in {_TRIES} tries")

    def clear(self, key: str) -> None:
        LoginAttemptItem(key).delete()

    @staticmethod
    def _failures(item: LoginAttemptItem) -> LoginFailures:
        return LoginFailures(int(item.failures), datetime.fromtimestamp(float(item.last_failure_at), tz=UTC))


def _month(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m")


def _previous_month(month: str) -> str:
    year, number = (int(part) for part in month.split("-"))
    return f"{year - 1}-12" if number == 1 else f"{year}-{number - 1:02d}"


def _sort_key(event: AuditEvent) -> str:
    # Fixed width (microseconds, "Z"), so the string order is the time order.
    return f"{event.at.astimezone(UTC).strftime(_STAMP_FORMAT)}#{event.id}"


_TOKEN = re.compile(AUDIT_PAGE_TOKEN_PATTERN)
_STAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def _encode_token(month: str, sort_key: str) -> str:
    stamp, _, event_id = sort_key.partition("#")
    return f"{month}.{''.join(c for c in stamp if c.isdigit())}.{event_id}"


def _decode_token(token: str, now: datetime) -> tuple[str, str]:
    """The month and sort key after which the next page starts. Any token the pattern matches
    is a position (Python's reading of it, as pydantic's and the document's generators read it);
    a month after ``now``'s is read as ``now``'s, so a token cannot make a page query the months
    of centuries to come (one query per month)."""
    match = _TOKEN.match(token)
    if not match:
        raise InvalidInput("page_token is not one this API gave; start again without it")
    month, digits, event_id = token.split(".", 2)
    event_id = event_id.rstrip("\n")  # the pattern's $ allows one trailing newline
    d = digits
    sort_key = f"{d[0:4]}-{d[4:6]}-{d[6:8]}T{d[8:10]}:{d[10:12]}:{d[12:14]}.{d[14:20]}Z#{event_id}"
    return min(month, _month(now)), sort_key


class AuditEventRepository:
    """Events by month and time; each expires ``retention_seconds`` after it happened."""

    def __init__(self, retention_seconds: int):
        self._retention = retention_seconds

    def add(self, event: AuditEvent) -> None:
        AuditEventItem(
            _month(event.at), _sort_key(event), id=event.id, at=event.at, event=event.event.value, email=event.email,
            source_ip=event.source_ip, details=dict(event.details),
            expires_at=math.ceil(event.at.timestamp() + self._retention),
        ).save()

    def page(self, now: datetime, limit: int,
             page_token: Optional[str] = None) -> tuple[list[AuditEvent], Optional[str]]:
        month, after = _decode_token(page_token, now) if page_token else (_month(now), None)
        oldest = _month(now - timedelta(seconds=self._retention))
        items: list[AuditEventItem] = []
        while len(items) <= limit and month >= oldest:  # one more than asked: is there a next page?
            condition = AuditEventItem.sort_key < after if after else None
            items.extend(AuditEventItem.query(
                month, range_key_condition=condition, filter_condition=AuditEventItem.expires_at > now.timestamp(),
                scan_index_forward=False, consistent_read=True, limit=limit + 1 - len(items),
            ))
            month, after = _previous_month(month), None
        page = items[:limit]
        token = _encode_token(page[-1].month, page[-1].sort_key) if len(items) > limit else None
        return [self._entity(item) for item in page], token

    @staticmethod
    def _entity(item: AuditEventItem) -> AuditEvent:
        return AuditEvent(id=item.id, at=item.at, event=AuditEventType(item.event), email=item.email,
                          source_ip=item.source_ip, details=_plain_map(item.details) or {})
