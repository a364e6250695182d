"""Who may do what, through the API: every role against every action (Rafiki's rules, seed 001).

A refused action answers 403 ``forbidden`` and changes nothing; an allowed one answers 2xx and
has its effect. Each action checks its effect as the superadmin (who sees everything).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pytest
from api_support import MODEL_SOURCE, TABULAR_CSV, assert_error, b64
from api_support import PASSWORD, SUPERADMIN, Api

ROLES = ("SUPERADMIN", "ADMIN", "MODEL_DEVELOPER", "APP_DEVELOPER")

# "yes": allowed (2xx), "no": refused (403).
MATRIX = """
action                    SUPERADMIN  ADMIN  MODEL_DEVELOPER  APP_DEVELOPER
create ADMIN              yes         no     no               no
create MODEL_DEVELOPER    yes         yes    no               no
create APP_DEVELOPER      yes         yes    no               no
create SUPERADMIN         no          no     no               no
ban ADMIN                 yes         no     no               no
ban MODEL_DEVELOPER       yes         yes    no               no
ban APP_DEVELOPER         yes         yes    no               no
ban SUPERADMIN            no          no     no               no
list users                yes         yes    no               no
create model              yes         yes    yes              no
delete model              yes         yes    yes              no
list models               yes         yes    yes              yes
create dataset            yes         yes    yes              yes
list datasets             yes         yes    yes              yes
create api key            yes         yes    yes              yes
"""


def _parse(table: str) -> dict[tuple[str, str], bool]:
    lines = table.strip().splitlines()
    roles = lines[0].split()[1:]
    assert tuple(roles) == ROLES
    allowed = {}
    for line in lines[1:]:
        words = line.split()
        action, answers = " ".join(words[:-len(roles)]), words[-len(roles):]
        for role, answer in zip(roles, answers):
            allowed[(action, role)] = {"yes": True, "no": False}[answer]
    return allowed


ALLOWED = _parse(MATRIX)


@dataclass
class World:
    superadmin: Api
    actor: Api
    role: str
    make_user: Callable[..., Api]

    def user(self, email: str) -> dict[str, Any]:
        return next(u for u in self.superadmin.call("GET", "/users").data if u["email"] == email)


# Each action returns (response, whether its effect is visible to the superadmin afterwards).

def create_user_of(user_type: str):
    def act(w: World):
        email = f"new-{user_type.lower()}@example.com"
        r = w.actor.call("POST", "/users", {"email": email, "password": PASSWORD, "user_type": user_type})
        return r, any(u["email"] == email for u in w.superadmin.call("GET", "/users").data)
    return act


def ban_user_of(user_type: str):
    def act(w: World):
        email = SUPERADMIN[0] if user_type == "SUPERADMIN" else w.make_user(user_type).email
        r = w.actor.call("POST", "/users/ban", {"email": email})
        return r, w.user(email)["banned_date"] is not None
    return act


def list_users(w: World):
    r = w.actor.call("GET", "/users")
    return r, r.status_code == 200 and SUPERADMIN[0] in {u["email"] for u in r.data}


def create_model(w: World):
    body = {"name": "m", "task": "TABULAR_CLASSIFICATION", "model_class": "MyModel",
            "model_file_base64": b64(MODEL_SOURCE)}
    r = w.actor.call("POST", "/models", body)
    return r, len(w.superadmin.call("GET", "/models").data) == 1


def delete_model(w: World):
    """Delete a model of one's own; app developers, who cannot own one, try a PUBLIC model."""
    owner = w.superadmin if w.role == "APP_DEVELOPER" else w.actor
    body = {"name": "m", "task": "TABULAR_CLASSIFICATION", "model_class": "MyModel",
            "model_file_base64": b64(MODEL_SOURCE), "access_right": "PUBLIC"}
    model_id = owner.call("POST", "/models", body).data["id"]
    r = w.actor.call("DELETE", f"/models/{model_id}")
    return r, w.superadmin.call("GET", f"/models/{model_id}").status_code == 404


def list_models(w: World):
    r = w.actor.call("GET", "/models")
    return r, r.status_code == 200 and r.data == []


def create_dataset(w: World):
    body = {"name": "d", "task": "TABULAR_CLASSIFICATION", "content_base64": b64(TABULAR_CSV)}
    r = w.actor.call("POST", "/datasets", body)
    return r, len(w.superadmin.call("GET", "/datasets").data) == 1


def list_datasets(w: World):
    r = w.actor.call("GET", "/datasets")
    return r, r.status_code == 200 and r.data == []


def create_api_key(w: World):
    r = w.actor.call("POST", "/api-keys", {"name": "k"})
    return r, [k["name"] for k in w.actor.call("GET", "/api-keys").data] == ["k"]


ACTIONS: dict[str, Callable[[World], tuple[Any, bool]]] = {
    **{f"create {t}": create_user_of(t) for t in ROLES},
    **{f"ban {t}": ban_user_of(t) for t in ROLES},
    "list users": list_users,
    "create model": create_model,
    "delete model": delete_model,
    "list models": list_models,
    "create dataset": create_dataset,
    "list datasets": list_datasets,
    "create api key": create_api_key,
}


def test_matrix_covers_every_action_and_role():
    assert set(ALLOWED) == {(action, role) for action in ACTIONS for role in ROLES}


@pytest.fixture(params=ROLES)
def world(request, superadmin, make_user) -> World:
    role = request.param
    actor = superadmin if role == "SUPERADMIN" else make_user(role)
    return World(superadmin, actor, role, make_user)


@pytest.mark.parametrize("action", list(ACTIONS))
def test_role_matrix(world, action):
    response, effect = ACTIONS[action](world)
    if ALLOWED[(action, world.role)]:
        assert 200 <= response.status_code < 300, (response.status_code, response.data)
        assert effect, "the action answered 2xx but did not happen"
    else:
        assert_error(response, 403, "forbidden")
        assert not effect, "a refused action changed something"


# --- the rest of the user rules --------------------------------------------------------------

@pytest.mark.parametrize("role", ["SUPERADMIN", "ADMIN"])
def test_nobody_bans_themselves(superadmin, make_user, role):
    actor = superadmin if role == "SUPERADMIN" else make_user(role)
    assert_error(actor.call("POST", "/users/ban", {"email": actor.email}), 403, "forbidden", "cannot ban yourself")
    assert actor.call("GET", "/users/me").status_code == 200


def test_self_ban_is_caught_whatever_the_email_case(make_user):
    admin = make_user("ADMIN", email="boss@example.com")
    assert_error(admin.call("POST", "/users/ban", {"email": "Boss@Example.com"}), 403, "forbidden", "yourself")


def test_banning_twice_conflicts(superadmin, make_user):
    email = make_user("APP_DEVELOPER").email
    first = superadmin.call("POST", "/users/ban", {"email": email})
    assert first.status_code == 200 and first.data["banned_date"]
    assert_error(superadmin.call("POST", "/users/ban", {"email": email}), 409, "conflict", "already banned")


def test_banning_an_unknown_user(superadmin):
    assert_error(superadmin.call("POST", "/users/ban", {"email": "ghost@example.com"}), 404, "not_found", "ghost@example.com")


@pytest.mark.parametrize("second_email", ["dup@example.com", "DUP@example.com"])
def test_duplicate_email_conflicts(superadmin, second_email):
    body = {"email": "dup@example.com", "password": PASSWORD, "user_type": "APP_DEVELOPER"}
    assert superadmin.call("POST", "/users", body).status_code == 201
    again = {**body, "email": second_email, "user_type": "MODEL_DEVELOPER"}
    assert_error(superadmin.call("POST", "/users", again), 409, "conflict", "already exists")
    users = [u for u in superadmin.call("GET", "/users").data if u["email"] == "dup@example.com"]
    assert [u["user_type"] for u in users] == ["APP_DEVELOPER"]


def test_admin_cannot_create_an_admin_message(make_user):
    admin = make_user("ADMIN")
    body = {"email": "a2@example.com", "password": PASSWORD, "user_type": "ADMIN"}
    assert_error(admin.call("POST", "/users", body), 403, "forbidden", "only a superadmin")


@pytest.mark.parametrize("body, field", [
    ({"email": "x@example.com", "password": PASSWORD, "user_type": "ROOT"}, "user_type"),
    ({"email": "x@example.com", "password": "short", "user_type": "ADMIN"}, "password"),
    ({"email": "x", "password": PASSWORD, "user_type": "ADMIN"}, "email"),
    ({"email": "x@example.com", "password": PASSWORD, "user_type": "ADMIN", "extra": 1}, "extra"),
])
def test_create_user_with_a_bad_body(superadmin, body, field):
    assert_error(superadmin.call("POST", "/users", body), 400, "invalid_input", field)
    assert len(superadmin.call("GET", "/users").data) == 1


def test_user_listing_has_no_password_hashes(superadmin, make_user):
    make_user("MODEL_DEVELOPER")
    users = superadmin.call("GET", "/users").data
    assert [u["user_type"] for u in users] == ["SUPERADMIN", "MODEL_DEVELOPER"]
    for user in users:
        assert set(user) == {"id", "email", "user_type", "datetime_created", "banned_date", "iam_principals"}
