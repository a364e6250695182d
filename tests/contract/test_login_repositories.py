"""The login repositories (failed-login counters, audit log) under moto and their in-memory fakes,
through one suite: what LoginThrottle and AuditService rely on."""
from __future__ import annotations

import functools
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest

from chalicelib.entities import AuditEvent, AuditEventType
from chalicelib.errors import InvalidInput
from settings_support import make_settings

from unit.services import fakes

UTC = timezone.utc
T0 = datetime(2026, 12, 1, 9, 0, 0, 123456, tzinfo=UTC)
RETENTION = timedelta(days=90)


@pytest.fixture(scope="module")
def moto_tables() -> Iterator[Any]:
    import botocore.loaders
    import botocore.session
    from moto import mock_aws

    from chalicelib.local.provision import provision

    patch = pytest.MonkeyPatch()
    patch.setattr(botocore.session, "create_loader", functools.lru_cache(maxsize=None)(botocore.loaders.create_loader))
    settings = make_settings()
    with mock_aws():
        provision(settings)
        yield settings
    patch.undo()


@pytest.fixture(params=["dynamodb", "memory"])
def attempts(request) -> Any:
    if request.param == "memory":
        return fakes.FakeLoginAttemptStore()
    from chalicelib.store import logins, models

    settings = request.getfixturevalue("moto_tables")
    models.bind(settings.resource_name, settings.region)
    return logins.LoginAttemptRepository()


@pytest.fixture(params=["dynamodb", "memory"])
def audit(request) -> Any:
    if request.param == "memory":
        return fakes.FakeAuditLog(RETENTION)
    from chalicelib.store import logins, models

    settings = request.getfixturevalue("moto_tables")
    models.bind(settings.resource_name, settings.region)
    # Each test its own months: the audit table is shared by the module's tests.
    return logins.AuditEventRepository(retention_seconds=int(RETENTION.total_seconds()))


def key() -> str:
    return f"account#{uuid.uuid4().hex[:10]}@example.com"


def test_failures_count_up_and_keep_the_last_time(attempts):
    k = key()
    assert attempts.get_many([k], T0) == {}
    attempts.add_failure(k, T0, 3600)
    second = attempts.add_failure(k, T0 + timedelta(seconds=2.5), 3600)
    assert (second.count, second.last_at) == (2, T0 + timedelta(seconds=2.5))
    assert attempts.get_many([k, key()], T0 + timedelta(seconds=3)) == {k: second}


def test_an_expired_counter_is_not_read_and_starts_again_at_one(attempts):
    k = key()
    attempts.add_failure(k, T0, 60)
    attempts.add_failure(k, T0, 60)
    later = T0 + timedelta(seconds=61)
    assert attempts.get_many([k], later) == {}  # expired, though TTL has not deleted it
    assert attempts.add_failure(k, later, 60).count == 1


def test_clear_forgets_a_counter(attempts):
    k = key()
    attempts.add_failure(k, T0, 60)
    attempts.clear(k)
    attempts.clear(k)  # clearing nothing is fine
    assert attempts.get_many([k], T0) == {}
    assert attempts.add_failure(k, T0, 60).count == 1


def event(at: datetime, email: str = "dev@example.com", **details: Any) -> AuditEvent:
    return AuditEvent(uuid.uuid4().hex, at, AuditEventType.LOGIN_FAILED, email, "192.0.2.1", details)


def test_audit_events_round_trip_newest_first_across_months(audit):
    start = datetime(2024, 1, 30, 23, 59, 59, 500000, tzinfo=UTC)  # a month of its own in the shared table
    events = [event(start + timedelta(days=d), email=f"u{d}@example.com", reason="wrong") for d in (0, 1, 2, 40)]
    for e in events:
        audit.add(e)
    now = start + timedelta(days=41)
    page, token = audit.page(now, 3)
    assert [e.email for e in page] == ["u40@example.com", "u2@example.com", "u1@example.com"]
    assert page[1] == events[2]
    rest, last = audit.page(now, 3, token)
    assert [e.email for e in rest] == ["u0@example.com"] and last is None


def test_expired_audit_events_are_left_out(audit):
    start = datetime(2023, 3, 1, 12, tzinfo=UTC)
    audit.add(event(start, email="old@example.com"))
    audit.add(event(start + timedelta(days=10), email="new@example.com"))
    page, token = audit.page(start + RETENTION + timedelta(days=1), 10)
    assert [e.email for e in page] == ["new@example.com"] and token is None


def test_a_page_token_not_given_by_the_log_is_invalid_input(audit):
    with pytest.raises(InvalidInput, match="page_token"):
        audit.page(T0, 10, "bm90LWEtdG9rZW4")
