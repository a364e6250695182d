"""Logins through the API: the password policy, throttling (429 + Retry-After, lockouts, per
account and per address) and the audit log admins read."""
from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import pytest
from api_support import PASSWORD, SUPERADMIN, assert_error
from chalice.local import LambdaEventConverter

from unit.services.fakes import FakeClock

ATTACKER, ELSEWHERE = "198.51.100.7", "203.0.113.9"


@pytest.fixture
def clock() -> FakeClock:
    # A microsecond per reading, as a real clock moves: a failure and the lockout it starts are
    # two events in that order.
    return FakeClock(tick=timedelta(microseconds=1))


@pytest.fixture
def service_overrides(clock) -> dict[str, Any]:
    return {"clock": clock}  # the waits and lockouts run on this clock, not on the test's speed


@pytest.fixture
def from_address(monkeypatch):
    """``from_address("198.51.100.7")``: later requests come from that address (API Gateway's
    requestContext.identity.sourceIp; Chalice's test gateway says 127.0.0.1 otherwise)."""
    return lambda address: monkeypatch.setattr(LambdaEventConverter, "LOCAL_SOURCE_IP", address)


def login(api, email: str, password: str):
    return api.call("POST", "/tokens", {"email": email, "password": password})


# -- the password policy --------------------------------------------------------------------------


@pytest.mark.parametrize("password, reason", [
    ("123456", "it has 6 characters; use at least 8"),
    ("      ", "it has 6 characters; use at least 8"),
    ("password1", "This is a very common password"),
    ("dev.example", "strength"),  # the user's own email, rearranged
])
def test_weak_passwords_are_refused_with_the_reason(superadmin, password, reason):
    body = {"email": "dev@example.com", "password": password, "user_type": "MODEL_DEVELOPER"}
    assert_error(superadmin.call("POST", "/users", body), 400, "invalid_input", "password: too weak", reason)
    assert [u["email"] for u in superadmin.call("GET", "/users").data] == [SUPERADMIN[0]]


def test_a_strong_password_is_accepted_and_logs_in(superadmin, client):
    body = {"email": "dev@example.com", "password": "iris-tree-sunrise-42", "user_type": "MODEL_DEVELOPER"}
    assert superadmin.call("POST", "/users", body).status_code == 201
    assert login(client, "dev@example.com", "iris-tree-sunrise-42").status_code == 200


def test_the_thresholds_are_settings(superadmin, override_settings):
    override_settings(password_min_length=4, password_min_score=0)
    body = {"email": "dev@example.com", "password": "1234", "user_type": "MODEL_DEVELOPER"}
    assert superadmin.call("POST", "/users", body).status_code == 201


# -- throttling -----------------------------------------------------------------------------------


def test_200_wrong_passwords_get_429s_with_retry_after_past_the_free_failures(client, make_user, clock):
    make_user("MODEL_DEVELOPER", email="dev@example.com")
    answers = [login(client, "dev@example.com", f"guess-{n}") for n in range(200)]
    statuses = [a.status_code for a in answers]
    # 3 free failures, the 4th makes the next attempt wait 1 s: the clock stands still, so all wait.
    assert statuses == [401] * 4 + [429] * 196
    for answer in answers[4:]:
        assert answer.headers["Retry-After"] == "1"
        assert_error(answer, 429, "too_many_requests", "too many failed logins for this account", "wait 1 s")
    clock.advance(seconds=1)
    assert login(client, "dev@example.com", "guess-200").status_code == 401  # the 5th failure: 2 s
    late = login(client, "dev@example.com", PASSWORD)
    assert late.status_code == 429 and late.headers["Retry-After"] == "2"
    clock.advance(seconds=2)
    assert login(client, "dev@example.com", PASSWORD).status_code == 200  # and it forgets the failures
    assert login(client, "dev@example.com", "wrong").status_code == 401


def test_a_locked_account_refuses_the_right_password_and_others_are_unaffected(client, make_user, clock,
                                                                               override_settings):
    override_settings(login_delay_seconds=0, login_lockout_failures=10, login_lockout_seconds=900)
    make_user("MODEL_DEVELOPER", email="victim@example.com")
    make_user("MODEL_DEVELOPER", email="bystander@example.com")
    assert [login(client, "victim@example.com", f"guess-{n}").status_code for n in range(10)] == [401] * 10
    right = login(client, "victim@example.com", PASSWORD)
    assert_error(right, 429, "too_many_requests", "locked for 900 s")
    wrong = login(client, "victim@example.com", "guess-10")
    assert (wrong.status_code, wrong.data, wrong.headers["Retry-After"]) == (429, right.data, "900")  # same answer
    assert login(client, "bystander@example.com", PASSWORD).status_code == 200  # same address, other account
    clock.advance(seconds=899)
    assert login(client, "victim@example.com", PASSWORD).headers["Retry-After"] == "1"
    clock.advance(seconds=1)
    assert login(client, "victim@example.com", PASSWORD).status_code == 200


def test_unknown_emails_are_throttled_like_known_ones(client, make_user):
    make_user("MODEL_DEVELOPER", email="dev@example.com")
    for email in ("dev@example.com", "ghost@example.com"):
        statuses = [login(client, email, "wrong").status_code for _ in range(6)]
        assert statuses == [401] * 4 + [429] * 2, email


def test_one_address_spraying_many_accounts_is_stopped_and_others_are_not(client, make_user, override_settings,
                                                                        from_address):
    override_settings(login_client_free_failures=3, login_client_lockout_failures=6, login_lockout_seconds=600)
    make_user("MODEL_DEVELOPER", email="dev@example.com")
    from_address(ATTACKER)
    statuses = [login(client, f"user{n}@example.com", "Summer2026!").status_code for n in range(8)]
    assert statuses == [401] * 4 + [429] * 4  # the 4th failure makes the address wait
    for_dev = login(client, "dev@example.com", PASSWORD)  # the attacker's address waits for every account
    assert_error(for_dev, 429, "too_many_requests", "your address")
    from_address(ELSEWHERE)
    assert login(client, "dev@example.com", PASSWORD).status_code == 200


# -- the audit log --------------------------------------------------------------------------------


def test_admins_read_logins_lockouts_and_key_events_newest_first(client, superadmin, make_user, override_settings,
                                                                 from_address, clock):
    override_settings(login_delay_seconds=0, login_lockout_failures=2)

    def then(action):  # one second apart, so "newest first" is one order
        clock.advance(seconds=1)
        return action()

    dev = then(lambda: make_user("MODEL_DEVELOPER", email="dev@example.com"))
    from_address(ATTACKER)
    then(lambda: login(client, "dev@example.com", "wrong-1"))
    then(lambda: login(client, "dev@example.com", "wrong-2"))
    locked = then(lambda: login(client, "dev@example.com", PASSWORD))  # refused unchecked: no event
    assert locked.status_code == 429
    from_address(ELSEWHERE)
    key = then(lambda: dev.call("POST", "/api-keys", {"name": "laptop"}).data)
    then(lambda: dev.call("DELETE", f"/api-keys/{key['id']}"))

    events = superadmin.call("GET", "/audit-events").data["events"]
    summary = [(e["event"], e["email"], e["source_ip"], e["outcome"]) for e in events]
    assert summary == [
        ("api_key.revoked", "dev@example.com", ELSEWHERE, "success"),
        ("api_key.created", "dev@example.com", ELSEWHERE, "success"),
        ("login.locked_out", "dev@example.com", ATTACKER, "locked_out"),
        ("login.failed", "dev@example.com", ATTACKER, "failure"),
        ("login.failed", "dev@example.com", ATTACKER, "failure"),
        ("login.succeeded", "dev@example.com", "127.0.0.1", "success"),  # make_user's login
        ("login.succeeded", SUPERADMIN[0], "127.0.0.1", "success"),
    ]
    assert events[1]["details"] == {"key_id": key["id"], "name": "laptop"}
    assert key["key"].split(".")[1] not in str(events)  # never the key's secret
    assert events[2]["details"] == {"scope": "account", "seconds": 900, "failures": 2}
    assert all(e["datetime"] and e["id"] for e in events)


def test_the_audit_log_pages(superadmin, make_user, clock):
    for number in range(3):
        clock.advance(seconds=1)
        make_user("APP_DEVELOPER")  # each logs in once
    first = superadmin.call("GET", "/audit-events?limit=3").data
    second = superadmin.call("GET", f"/audit-events?limit=3&page_token={first['next_page_token']}").data
    assert len(first["events"]) == 3 and len(second["events"]) == 1 and second["next_page_token"] is None
    everything = superadmin.call("GET", "/audit-events").data["events"]
    assert first["events"] + second["events"] == everything
    assert_error(superadmin.call("GET", "/audit-events?page_token=bm9wZQ"), 400, "invalid_input", "page_token")
    assert_error(superadmin.call("GET", "/audit-events?limit=0"), 400, "invalid_input", "limit")


@pytest.mark.parametrize("user_type", ["MODEL_DEVELOPER", "APP_DEVELOPER"])
def test_only_admins_read_the_audit_log(make_user, user_type, client):
    assert_error(make_user(user_type).call("GET", "/audit-events"), 403, "forbidden", "audit log")
    assert_error(client.call("GET", "/audit-events"), 401, "unauthenticated")
    admin = make_user("ADMIN")
    assert admin.call("GET", "/audit-events").status_code == 200


def test_the_local_gateway_takes_the_address_from_the_connection_not_from_a_header(client, superadmin):
    from app import app
    from chalicelib.local.gateway import ChaliceWsgiApp

    body = json.dumps({"email": "nobody@example.com", "password": "wrong"}).encode()
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/tokens", "QUERY_STRING": "", "CONTENT_TYPE": "application/json",
               "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "REMOTE_ADDR": "192.0.2.44",
               "HTTP_X_FORWARDED_FOR": "10.9.9.9"}  # a client can send any header: never trusted
    statuses: list[str] = []
    ChaliceWsgiApp(app)(environ, lambda status, headers: statuses.append(status))
    assert statuses == ["401 Unauthorized"]
    events = superadmin.call("GET", "/audit-events").data["events"]
    assert [e["source_ip"] for e in events if e["email"] == "nobody@example.com"] == ["192.0.2.44"]
