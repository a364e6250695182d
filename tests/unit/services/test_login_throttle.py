"""The login throttle on its in-memory port: progressive delays, lockouts, per-account and
per-address counters, forgetting, and what AuthService does with it (429s, audit events)."""
from __future__ import annotations

import pytest

from chalicelib.entities import AuditEventType
from chalicelib.errors import TooManyRequests, Unauthenticated
from chalicelib.services.login_throttle import LoginThrottle, ThrottleRule
from unit.services.fakes import FakeClock, FakeLoginAttemptStore, services

ACCOUNT = ThrottleRule(free_failures=3, lockout_failures=10, delay_seconds=1.0, max_delay_seconds=60.0,
                       lockout_seconds=900)
CLIENT = ThrottleRule(free_failures=20, lockout_failures=100, delay_seconds=1.0, max_delay_seconds=60.0,
                      lockout_seconds=900)


def throttle(store=None, clock=None, account=ACCOUNT, client=CLIENT, forget_after=3600):
    clock = clock or FakeClock()
    return LoginThrottle(store or FakeLoginAttemptStore(), account, client, forget_after, clock=clock), clock


def fail(t: LoginThrottle, email="dev@example.com", ip="198.51.100.7", times=1) -> list:
    lockouts = []
    for _ in range(times):
        lockouts = t.begin(email, ip).failed()
    return lockouts


def test_the_wait_doubles_after_the_free_failures_up_to_the_cap_and_then_the_lockout():
    waits = [ACCOUNT.wait_after(n) for n in range(0, 11)]
    assert waits == [0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 900]
    capped = ThrottleRule(0, 100_000, 1.0, 10.0, 900)
    assert capped.wait_after(20) == 10 and capped.wait_after(10_000) == 10  # no overflow far past the cap
    assert ThrottleRule(3, 10, 0.0, 60.0, 900).wait_after(9) == 0  # no delays: only the lockout


def test_free_failures_pass_then_the_next_attempt_must_wait_and_says_how_long():
    t, clock = throttle()
    fail(t, times=3)
    t.begin("dev@example.com", "198.51.100.7")  # three free failures: no wait yet
    fail(t)
    with pytest.raises(TooManyRequests) as caught:
        t.begin("dev@example.com", "198.51.100.7")
    assert caught.value.retry_after == 1 and "wait 1 s" in caught.value.message
    assert caught.value.headers == {"Retry-After": "1"}
    clock.advance(seconds=1)
    fail(t)  # the fifth failure: two seconds
    clock.advance(seconds=1.5)
    with pytest.raises(TooManyRequests) as caught:
        t.begin("dev@example.com", "198.51.100.7")
    assert caught.value.retry_after == 1  # 0.5 s left, rounded up: never "0"
    clock.advance(seconds=0.5)
    t.begin("dev@example.com", "198.51.100.7")


def test_a_refused_attempt_is_not_counted():
    store = FakeLoginAttemptStore()
    t, _ = throttle(store)
    fail(t, times=4)
    for _ in range(50):
        with pytest.raises(TooManyRequests):
            t.begin("dev@example.com", "198.51.100.7")
    assert store.items["account#dev@example.com"][0] == 4
    assert store.calls["add_failure"] == 8  # 4 failures x (account, address)


def test_the_lockout_threshold_locks_the_account_and_reports_it_once_per_failure():
    no_delays = ThrottleRule(3, 5, 0.0, 0.0, 900)
    t, clock = throttle(account=no_delays)
    assert fail(t, times=4) == []
    [lockout] = fail(t)
    assert (lockout.scope, lockout.seconds, lockout.failures) == ("account", 900, 5)
    with pytest.raises(TooManyRequests) as caught:
        t.begin("dev@example.com", "198.51.100.7")
    assert caught.value.retry_after == 900 and "locked" in caught.value.message
    clock.advance(seconds=899)
    with pytest.raises(TooManyRequests):
        t.begin("dev@example.com", "203.0.113.9")  # another address: still locked
    clock.advance(seconds=1)
    [again] = fail(t)  # the first failure after a lockout locks again at once
    assert again.failures == 6


def test_other_accounts_are_unaffected_but_the_address_has_its_own_limit():
    t, _ = throttle(account=ThrottleRule(3, 10, 0.0, 0.0, 900), client=ThrottleRule(5, 8, 0.0, 0.0, 600))
    fail(t, email="victim@example.com", times=7)
    t.begin("other@example.com", "203.0.113.9")  # another account from another address: fine
    t.begin("other@example.com", "198.51.100.7")  # the attacker's address has 7 of its 8
    lockouts = fail(t, email="other@example.com")
    assert [(l.scope, l.failures) for l in lockouts] == [("client", 8)]
    with pytest.raises(TooManyRequests) as caught:
        t.begin("third@example.com", "198.51.100.7")
    assert caught.value.retry_after == 600 and "your address" in caught.value.message
    t.begin("victim@example.com", "203.0.113.9")  # the victim, elsewhere: 7 of 10, no delays


def test_without_an_address_only_the_account_counts():
    store = FakeLoginAttemptStore()
    t, _ = throttle(store)
    t.begin("dev@example.com", None).failed()
    assert list(store.items) == ["account#dev@example.com"]


def test_emails_count_whatever_their_case():
    t, _ = throttle(account=ThrottleRule(0, 2, 0.0, 0.0, 60))
    fail(t, email="Dev@Example.com")
    fail(t, email="dev@example.COM")
    with pytest.raises(TooManyRequests):
        t.begin("dev@example.com", "192.0.2.1")


def test_success_forgets_the_accounts_failures_but_not_the_addresss():
    store = FakeLoginAttemptStore()
    t, _ = throttle(store)
    fail(t, times=2)
    t.begin("dev@example.com", "198.51.100.7").succeeded()
    assert "account#dev@example.com" not in store.items
    assert store.items["client#198.51.100.7"][0] == 2
    store.reset_calls()
    t.begin("dev@example.com", "198.51.100.7").succeeded()
    assert store.calls["clear"] == 0  # a clean login writes nothing


def test_counters_are_forgotten_after_a_quiet_window_never_before_the_lockout_ends():
    t, clock = throttle(account=ThrottleRule(3, 5, 0.0, 0.0, 900), forget_after=60)
    fail(t, times=5)
    clock.advance(seconds=120)  # past the window, inside the lockout: the lockout holds
    with pytest.raises(TooManyRequests):
        t.begin("dev@example.com", "198.51.100.7")
    clock.advance(seconds=900)
    assert fail(t) == []  # forgotten: counting starts again at 1


# -- AuthService with the throttle and the audit log --------------------------------------------


@pytest.fixture
def h2():
    from settings_support import make_settings

    harness = services(make_settings(login_free_failures=2, login_lockout_failures=4, login_delay_seconds=5,
                                     login_lockout_seconds=300))
    yield harness
    harness.services.close()


def test_login_is_refused_with_429_once_throttled_even_with_the_right_password(h2):
    h2.user(email="dev@example.com", password="right")
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            h2.services.auth.login("dev@example.com", "wrong", "192.0.2.1")
    with pytest.raises(Unauthenticated):
        h2.services.auth.login("dev@example.com", "wrong", "192.0.2.1")  # the third: 5 s wait
    h2.fakes.hasher.reset_calls()
    with pytest.raises(TooManyRequests) as caught:
        h2.services.auth.login("dev@example.com", "right", "192.0.2.1")
    assert caught.value.retry_after == 5
    assert h2.fakes.hasher.calls["verify"] == 0  # refused before the password is checked
    h2.fakes.clock.advance(seconds=5)
    assert h2.services.auth.login("dev@example.com", "right", "192.0.2.1")["user"]["email"] == "dev@example.com"


def test_logins_failures_and_lockouts_are_audited(h2):
    h2.user(email="dev@example.com", password="right")
    h2.services.auth.login("dev@example.com", "right", "192.0.2.1")
    for _ in range(4):
        with pytest.raises(Unauthenticated):
            h2.services.auth.login("dev@example.com", "wrong", "192.0.2.1")
        h2.fakes.clock.advance(seconds=60)
    log = h2.fakes.audit_events
    assert [e.event for e in log.events] == [AuditEventType.LOGIN_SUCCEEDED] + [AuditEventType.LOGIN_FAILED] * 4 + [
        AuditEventType.LOGIN_LOCKED_OUT]
    locked = log.events[-1]
    assert (locked.email, locked.source_ip, locked.outcome) == ("dev@example.com", "192.0.2.1", "locked_out")
    assert locked.details == {"scope": "account", "seconds": 300, "failures": 4}
    assert log.events[1].details == {"reason": "wrong email or password"} and log.events[1].outcome == "failure"


def test_a_banned_users_right_password_is_audited_as_a_failure_without_counting(h2):
    h2.user(email="gone@example.com", password="right", banned=True)
    with pytest.raises(Unauthenticated, match="banned"):
        h2.services.auth.login("gone@example.com", "right", "192.0.2.1")
    [event] = h2.fakes.audit_events.events
    assert event.details == {"reason": "banned"} and h2.fakes.login_attempts.items == {}


def test_api_key_creation_and_revocation_are_audited(h2):
    dev = h2.user(email="dev@example.com")
    key = h2.services.auth.create_api_key(dev, "laptop", "192.0.2.1")
    h2.services.auth.revoke_api_key(dev, key["id"], "192.0.2.2")
    created, revoked = h2.fakes.audit_events.events
    assert (created.event, created.email, created.source_ip) == (AuditEventType.API_KEY_CREATED, dev.email, "192.0.2.1")
    assert created.details == {"key_id": key["id"], "name": "laptop"} and key["key"] not in str(created.details)
    assert (revoked.event, revoked.source_ip, revoked.details["key_id"]) == (
        AuditEventType.API_KEY_REVOKED, "192.0.2.2", key["id"])
