"""UserService with the password policy; AuditService's reading rights and paging (on fakes)."""
from __future__ import annotations

import pytest

from chalicelib.entities import AuditEventType, UserType
from chalicelib.errors import Forbidden, InvalidInput


def test_a_refused_password_creates_no_user_and_says_why(h):
    admin = h.user(UserType.ADMIN)
    h.fakes.password_policy.refused["guessable"] = "This is a very common password."
    h.fakes.hasher.reset_calls()
    with pytest.raises(InvalidInput) as caught:
        h.services.users.create_user(admin, "dev@example.com", "guessable", UserType.MODEL_DEVELOPER)
    assert caught.value.message == "password: too weak: This is a very common password. Try a longer one."
    assert h.fakes.users.get("dev@example.com") is None and h.fakes.hasher.calls["hash"] == 0


def test_the_policy_is_given_the_email_and_its_parts(h):
    admin = h.user(UserType.ADMIN)
    h.services.users.create_user(admin, "ngozi.okafor@kilele.example", "fine", UserType.APP_DEVELOPER)
    assert h.fakes.password_policy.user_inputs[-1] == [
        "ngozi.okafor@kilele.example", "ngozi.okafor", "ngozi", "okafor", "kilele", "example"]


def test_the_seeded_superadmin_skips_the_policy(h):
    h.fakes.password_policy.refused["kilele"] = "too short"
    assert h.services.users.ensure_superadmin("root@kilele", "kilele").user_type is UserType.SUPERADMIN
    assert h.fakes.password_policy.calls["check"] == 0


@pytest.mark.parametrize("user_type", [UserType.MODEL_DEVELOPER, UserType.APP_DEVELOPER])
def test_only_admins_read_the_audit_log(h, user_type):
    with pytest.raises(Forbidden):
        h.services.audit.list_events(h.user(user_type))


def test_the_audit_log_pages_newest_first(h):
    admin = h.user(UserType.ADMIN)
    for number in range(5):
        h.services.audit.record(AuditEventType.LOGIN_FAILED, f"u{number}@example.com", "192.0.2.1")
        h.fakes.clock.advance(seconds=1)
    first = h.services.audit.list_events(admin, limit=2)
    assert [e["email"] for e in first["events"]] == ["u4@example.com", "u3@example.com"]
    assert first["events"][0]["outcome"] == "failure" and first["events"][0]["source_ip"] == "192.0.2.1"
    second = h.services.audit.list_events(admin, limit=2, page_token=first["next_page_token"])
    last = h.services.audit.list_events(admin, limit=2, page_token=second["next_page_token"])
    assert [e["email"] for e in second["events"] + last["events"]] == [
        "u2@example.com", "u1@example.com", "u0@example.com"]
    assert last["next_page_token"] is None
