"""AuthService's per-process cache of authenticated callers, on fakes: a caller costs one store
read per cache period; a session's expiry, a ban, logout and revocation made in this process
apply at once; a ban made elsewhere applies within the cache period."""
from __future__ import annotations

import pytest

from chalicelib.entities import UserType
from chalicelib.errors import Unauthenticated
from chalicelib.settings import Settings

pytestmark = pytest.mark.skipif("auth_cache_seconds" not in Settings.model_fields,
                                reason="the auth cache (setting auth_cache_seconds) has not landed")


def logged_in(h, email="dev@example.com"):
    h.user(email=email, password="pw")
    return h.services.auth.login(email, "pw")["token"]


def test_a_caller_is_read_from_the_stores_once_per_cache_period(h):
    token = logged_in(h)
    for _ in range(3):
        h.services.auth.authenticate(token, None)
    assert (h.fakes.sessions.calls["get_live"], h.fakes.users.calls["get"]) == (1, 2)  # login + first request
    h.fakes.clock.advance(seconds=h.settings.auth_cache_seconds)
    h.services.auth.authenticate(token, None)
    assert h.fakes.sessions.calls["get_live"] == 2


def test_a_cached_session_still_expires_on_time(h):
    token = logged_in(h)
    h.fakes.clock.advance(seconds=h.settings.session_ttl_seconds - 1)
    h.services.auth.authenticate(token, None)
    h.fakes.clock.advance(seconds=1)
    with pytest.raises(Unauthenticated, match="expired"):
        h.services.auth.authenticate(token, None)


def test_a_ban_here_ends_a_cached_callers_access_at_once(h):
    admin = h.user(UserType.ADMIN)
    token = logged_in(h)
    key = h.services.auth.create_api_key(h.fakes.users.get("dev@example.com"), "ci")["key"]
    h.services.auth.authenticate(token, None)
    h.services.auth.authenticate(None, key)
    h.services.users.ban_user(admin, "dev@example.com")
    for credentials in ((token, None), (None, key)):
        with pytest.raises(Unauthenticated, match="banned"):
            h.services.auth.authenticate(*credentials)


def test_a_ban_made_elsewhere_applies_within_the_cache_period(h):
    token = logged_in(h)
    h.services.auth.authenticate(token, None)
    h.fakes.users.mark_banned("dev@example.com", h.fakes.clock.now)  # by another process
    h.fakes.clock.advance(seconds=h.settings.auth_cache_seconds)
    with pytest.raises(Unauthenticated, match="banned"):
        h.services.auth.authenticate(token, None)


def test_logout_and_revocation_end_cached_access_at_once(h):
    token = logged_in(h)
    dev = h.fakes.users.get("dev@example.com")
    created = h.services.auth.create_api_key(dev, "ci")
    h.services.auth.authenticate(token, None)
    h.services.auth.authenticate(None, created["key"])
    h.services.auth.logout(token)
    h.services.auth.revoke_api_key(dev, created["id"])
    with pytest.raises(Unauthenticated):
        h.services.auth.authenticate(token, None)
    with pytest.raises(Unauthenticated):
        h.services.auth.authenticate(None, created["key"])


def test_a_cached_api_key_still_needs_its_secret(h):
    h.user(email="dev@example.com")
    key = h.services.auth.create_api_key(h.fakes.users.get("dev@example.com"), "ci")["key"]
    h.services.auth.authenticate(None, key)
    with pytest.raises(Unauthenticated):
        h.services.auth.authenticate(None, key.rsplit(".", 1)[0] + ".wrong-secret")
