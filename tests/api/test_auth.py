"""Login sessions, logout, session expiry, API keys, bans and malformed credentials."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from api_support import assert_error
from api_support import PASSWORD, SUPERADMIN


WRONG_CREDENTIALS = "wrong email or password"


class FakeClock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(client, install_services) -> FakeClock:
    """The running app's services read time from this clock (it starts mid-second)."""
    fake = FakeClock(datetime(2026, 1, 1, 12, 0, 0, 500_000, tzinfo=timezone.utc))
    install_services(clock=fake)
    return fake


@pytest.fixture
def developer(make_user):
    return make_user("MODEL_DEVELOPER", email="dev@example.com")


def me(api, **headers):
    return api.call("GET", "/users/me", headers=headers or None)


# --- login and sessions ----------------------------------------------------------------------

def test_login_answers_a_token_and_the_user(client):
    r = client.call("POST", "/tokens", {"email": SUPERADMIN[0], "password": SUPERADMIN[1]})
    assert r.status_code == 200, r.data
    assert set(r.data) == {"token", "expires_at", "user"}
    assert len(r.data["token"]) >= 32
    assert r.data["user"]["email"] == SUPERADMIN[0] and r.data["user"]["user_type"] == "SUPERADMIN"
    assert "password_hash" not in r.data["user"]
    expires = datetime.fromisoformat(r.data["expires_at"])
    assert timedelta(minutes=59) < expires - datetime.now(timezone.utc) <= timedelta(hours=1)


def test_login_email_is_case_insensitive(client, developer):
    r = client.call("POST", "/tokens", {"email": "Dev@Example.COM", "password": PASSWORD})
    assert r.status_code == 200, r.data


@pytest.mark.parametrize(
    "email, password",
    [(SUPERADMIN[0], "wrong-password"), ("nobody@example.com", "kilele"), ("nobody@example.com", "x")],
    ids=["wrong password", "unknown email", "unknown email, other password"],
)
def test_bad_credentials_share_one_message(client, email, password):
    r = client.call("POST", "/tokens", {"email": email, "password": password})
    assert assert_error(r, 401, "unauthenticated") == WRONG_CREDENTIALS


@pytest.mark.parametrize(
    "body, field",
    [({"email": SUPERADMIN[0]}, "password"), ({"password": "x"}, "email"),
     ({"email": "not-an-email", "password": "x"}, "email"), ({"email": SUPERADMIN[0], "password": ""}, "password")],
)
def test_login_with_a_malformed_body(client, body, field):
    assert_error(client.call("POST", "/tokens", body), 400, "invalid_input", field)


def test_token_works(superadmin):
    r = me(superadmin)
    assert r.status_code == 200 and r.data["email"] == SUPERADMIN[0]


def test_no_credentials(client):
    assert_error(me(client), 401, "unauthenticated", "Authorization: Bearer", "x-api-key")


def test_logout_revokes_only_that_session(client, superadmin):
    other_session = client.login(*SUPERADMIN)
    r = superadmin.call("DELETE", "/tokens/current")
    assert r.status_code == 200 and r.data == {"logged_out": True}
    assert_error(me(superadmin), 401, "unauthenticated", "invalid or has expired")
    assert me(other_session).status_code == 200


def test_logout_with_an_api_key_is_refused(superadmin):
    key = superadmin.call("POST", "/api-keys", {"name": "ci"}).data["key"]
    r = superadmin.anonymous().call("DELETE", "/tokens/current", headers={"x-api-key": key})
    assert_error(r, 400, "invalid_input", "session token")


def test_session_expires_after_its_ttl(client, clock):
    r = client.call("POST", "/tokens", {"email": SUPERADMIN[0], "password": SUPERADMIN[1]})
    token = {"Authorization": f"Bearer {r.data['token']}"}
    expires_at = datetime.fromisoformat(r.data["expires_at"])
    assert clock.now + timedelta(seconds=3599) < expires_at <= clock.now + timedelta(hours=1)

    clock.now = expires_at - timedelta(microseconds=1)
    assert me(client, **token).status_code == 200
    clock.now = expires_at
    assert_error(me(client, **token), 401, "unauthenticated", "expired")


def test_a_new_login_after_expiry_works(client, clock):
    old = client.login(*SUPERADMIN)
    clock.advance(hours=2)
    assert me(old).status_code == 401
    assert me(client.login(*SUPERADMIN)).status_code == 200


# --- API keys --------------------------------------------------------------------------------

def test_api_key_is_shown_once_and_listed_without_the_key(developer):
    r = developer.call("POST", "/api-keys", {"name": "laptop"})
    assert r.status_code == 201, r.data
    assert set(r.data) == {"id", "name", "datetime_created", "key"}
    assert r.data["name"] == "laptop" and r.data["key"].startswith("kk_")
    listed = developer.call("GET", "/api-keys")
    assert listed.status_code == 200
    assert listed.data == [{"id": r.data["id"], "name": "laptop", "datetime_created": r.data["datetime_created"]}]
    assert r.data["key"] not in str(listed.data)


def test_api_key_name_defaults(developer):
    r = developer.call("POST", "/api-keys", {})
    assert r.status_code == 201 and r.data["name"] == "default"


def test_api_key_authenticates(developer):
    key = developer.call("POST", "/api-keys", {}).data["key"]
    r = me(developer.anonymous(), **{"x-api-key": key})
    assert r.status_code == 200 and r.data["email"] == "dev@example.com"


def test_revoked_api_key_stops_working(developer):
    created = developer.call("POST", "/api-keys", {}).data
    r = developer.call("DELETE", f"/api-keys/{created['id']}")
    assert r.status_code == 200 and r.data["revoked"] is True and "key" not in r.data
    assert_error(me(developer.anonymous(), **{"x-api-key": created["key"]}), 401, "unauthenticated", "revoked")
    assert developer.call("GET", "/api-keys").data == []
    assert_error(developer.call("DELETE", f"/api-keys/{created['id']}"), 404, "not_found", created["id"])


def test_revoking_another_users_key_is_not_found(developer, make_user):
    owner = make_user("APP_DEVELOPER")
    created = owner.call("POST", "/api-keys", {}).data
    assert_error(developer.call("DELETE", f"/api-keys/{created['id']}"), 404, "not_found", "no API key")
    assert me(owner.anonymous(), **{"x-api-key": created["key"]}).status_code == 200


def test_revoking_an_unknown_key_is_not_found(developer):
    assert_error(developer.call("DELETE", "/api-keys/nope"), 404, "not_found", "'nope'")


@pytest.mark.parametrize("mangle", [
    lambda key: key + "x",                       # wrong secret
    lambda key: key.split(".")[0],               # no secret
    lambda key: "kk_unknown." + key.split(".")[1],  # unknown id
    lambda key: "garbage",
], ids=["wrong secret", "no secret", "unknown id", "garbage"])
def test_wrong_api_keys(developer, mangle):
    key = developer.call("POST", "/api-keys", {}).data["key"]
    r = me(developer.anonymous(), **{"x-api-key": mangle(key)})
    assert_error(r, 401, "unauthenticated", "API key is invalid")


# --- bans ------------------------------------------------------------------------------------

def test_banned_users_token_and_api_key_stop_at_once(superadmin, developer):
    key = developer.call("POST", "/api-keys", {}).data["key"]
    assert superadmin.call("POST", "/users/ban", {"email": "dev@example.com"}).status_code == 200
    assert_error(me(developer), 401, "unauthenticated", "banned")
    assert_error(me(developer.anonymous(), **{"x-api-key": key}), 401, "unauthenticated", "banned")
    r = superadmin.call("POST", "/tokens", {"email": "dev@example.com", "password": PASSWORD})
    assert_error(r, 401, "unauthenticated", "banned")


def test_banned_user_with_a_wrong_password_gets_the_usual_message(superadmin, developer):
    superadmin.call("POST", "/users/ban", {"email": "dev@example.com"})
    r = superadmin.call("POST", "/tokens", {"email": "dev@example.com", "password": "nope"})
    assert assert_error(r, 401, "unauthenticated") == WRONG_CREDENTIALS


# --- malformed credentials -------------------------------------------------------------------

@pytest.mark.parametrize("authorization", [
    "Bearer", "Bearer ", "Bearer not-a-token", "Token abc", "Basic dXNlcjpwYXNz", "abc", "",
])
def test_malformed_authorization_header(client, authorization):
    assert_error(me(client, Authorization=authorization), 401, "unauthenticated")


def test_token_in_another_scheme_is_not_accepted(superadmin, client):
    token = superadmin.headers["Authorization"].split(" ", 1)[1]
    assert_error(me(client, Authorization=f"Token {token}"), 401, "unauthenticated")
    assert me(client, Authorization=f"bearer {token}").status_code == 200  # the scheme is case-insensitive
