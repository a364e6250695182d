"""AuthService on fakes: login, sessions and their expiry, API keys, authenticate."""
from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.entities import UserType
from chalicelib.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from chalicelib.services.auth import API_KEY_PREFIX


def test_login_gives_a_session_token_that_authenticates(h):
    dev = h.user(UserType.MODEL_DEVELOPER, email="dev@example.com", password="pw")
    h.fakes.clock.set(h.fakes.clock.now.replace(microsecond=700_000))
    out = h.services.auth.login("dev@example.com", "pw")
    assert out["user"]["email"] == "dev@example.com"
    # whole seconds: the expiry announced is the one the store enforces
    expected = (h.fakes.clock.now + timedelta(seconds=h.settings.session_ttl_seconds)).replace(microsecond=0)
    assert out["expires_at"] == expected.isoformat()
    assert h.services.auth.authenticate(out["token"], None).id == dev.id
    # the store keeps a digest of the token, never the token itself
    assert len(h.fakes.sessions.items) == 1 and out["token"] not in h.fakes.sessions.items


def test_a_wrong_password_or_unknown_email_is_refused_alike(h):
    h.user(email="dev@example.com", password="pw")
    with pytest.raises(Unauthenticated, match="wrong email or password"):
        h.services.auth.login("dev@example.com", "nope")
    with pytest.raises(Unauthenticated, match="wrong email or password"):
        h.services.auth.login("ghost@example.com", "pw")
    assert h.fakes.sessions.items == {}
    assert h.fakes.hasher.calls["verify"] == 2  # an unknown email costs a hash check too


def test_a_banned_user_cannot_log_in(h):
    h.user(email="gone@example.com", password="pw", banned=True)
    with pytest.raises(Unauthenticated, match="banned"):
        h.services.auth.login("gone@example.com", "pw")
    assert h.fakes.sessions.items == {}


def test_a_session_expires_with_the_clock(h):
    h.user(email="dev@example.com", password="pw")
    token = h.services.auth.login("dev@example.com", "pw")["token"]
    h.fakes.clock.advance(seconds=h.settings.session_ttl_seconds - 1)
    assert h.services.auth.authenticate(token, None).email == "dev@example.com"
    h.fakes.clock.advance(seconds=1)
    with pytest.raises(Unauthenticated, match="expired"):
        h.services.auth.authenticate(token, None)


def test_logout_ends_the_session(h):
    h.user(email="dev@example.com", password="pw")
    token = h.services.auth.login("dev@example.com", "pw")["token"]
    assert h.services.auth.logout(token) == {"logged_out": True}
    with pytest.raises(Unauthenticated):
        h.services.auth.authenticate(token, None)
    with pytest.raises(InvalidInput):
        h.services.auth.logout(None)


def test_a_user_banned_after_login_is_refused_at_once(h):
    h.user(email="dev@example.com", password="pw")
    token = h.services.auth.login("dev@example.com", "pw")["token"]
    h.fakes.users.mark_banned("dev@example.com", h.fakes.clock.now)
    with pytest.raises(Unauthenticated, match="banned"):
        h.services.auth.authenticate(token, None)


def test_no_credentials_or_garbage_are_refused(h):
    with pytest.raises(Unauthenticated):
        h.services.auth.authenticate(None, None)
    with pytest.raises(Unauthenticated):
        h.services.auth.authenticate("not-a-token", None)
    for key in ("garbage", f"{API_KEY_PREFIX}nodot", f"{API_KEY_PREFIX}abc.def", ""):
        with pytest.raises(Unauthenticated):
            h.services.auth.authenticate(None, key or None)


def test_an_api_key_is_shown_once_and_authenticates(h):
    dev = h.user(email="dev@example.com")
    created = h.services.auth.create_api_key(dev, "ci")
    assert created["key"].startswith(API_KEY_PREFIX) and created["name"] == "ci"
    stored = h.fakes.api_keys.get(created["id"])
    assert stored.owner_email == "dev@example.com"
    assert created["key"].split(".", 1)[1] not in stored.secret_hash  # only a digest is stored
    assert "key" not in h.services.auth.list_api_keys(dev)[0]
    assert h.services.auth.authenticate(None, created["key"]).id == dev.id


def test_an_api_key_with_a_wrong_secret_is_refused(h):
    dev = h.user(email="dev@example.com")
    key = h.services.auth.create_api_key(dev, "ci")["key"]
    key_id = key.removeprefix(API_KEY_PREFIX).split(".")[0]
    with pytest.raises(Unauthenticated, match="invalid or has been revoked"):
        h.services.auth.authenticate(None, f"{API_KEY_PREFIX}{key_id}.wrongsecret")


def test_api_keys_are_listed_per_owner_oldest_first(h):
    dev, other = h.user(email="dev@example.com"), h.user(email="other@example.com")
    h.services.auth.create_api_key(dev, "first")
    h.fakes.clock.advance(seconds=1)
    h.services.auth.create_api_key(dev, "second")
    h.services.auth.create_api_key(other, "theirs")
    assert [k["name"] for k in h.services.auth.list_api_keys(dev)] == ["first", "second"]
    assert [k["name"] for k in h.services.auth.list_api_keys(other)] == ["theirs"]


def test_a_revoked_api_key_stops_working(h):
    dev = h.user(email="dev@example.com")
    created = h.services.auth.create_api_key(dev, "ci")
    assert h.services.auth.revoke_api_key(dev, created["id"])["revoked"] is True
    assert h.fakes.api_keys.items == {}
    with pytest.raises(Unauthenticated):
        h.services.auth.authenticate(None, created["key"])


def test_only_the_owner_revokes_a_key(h):
    dev, other = h.user(email="dev@example.com"), h.user(email="other@example.com")
    created = h.services.auth.create_api_key(dev, "ci")
    with pytest.raises(NotFound):
        h.services.auth.revoke_api_key(other, created["id"])
    with pytest.raises(NotFound):
        h.services.auth.revoke_api_key(dev, "no-such-key")
    assert h.fakes.api_keys.calls["delete"] == 0  # refused before the store is asked
    assert h.services.auth.authenticate(None, created["key"]).id == dev.id


def test_the_api_key_of_a_banned_user_is_refused(h):
    dev = h.user(email="dev@example.com")
    key = h.services.auth.create_api_key(dev, "ci")["key"]
    h.fakes.users.mark_banned("dev@example.com", h.fakes.clock.now)
    with pytest.raises(Unauthenticated, match="banned"):
        h.services.auth.authenticate(None, key)


def test_api_keys_need_the_right_to_manage_them(h, monkeypatch):
    from chalicelib import permissions
    from chalicelib.permissions import Action

    dev = h.user(email="dev@example.com")
    monkeypatch.setitem(permissions.ALLOWED, Action.MANAGE_API_KEYS, frozenset({UserType.SUPERADMIN}))
    with pytest.raises(Forbidden):
        h.services.auth.create_api_key(dev, "ci")
    assert h.fakes.api_keys.items == {}
