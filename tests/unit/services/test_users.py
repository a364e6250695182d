"""UserService on fakes: creating, listing and banning users; the superadmin at start-up."""
from __future__ import annotations

import pytest

from chalicelib.entities import UserType
from chalicelib.errors import Conflict, Forbidden, NotFound


def test_an_admin_creates_a_user_with_a_hashed_password(h):
    admin = h.user(UserType.ADMIN)
    out = h.services.users.create_user(admin, "dev@example.com", "pw", UserType.MODEL_DEVELOPER)
    assert out["email"] == "dev@example.com" and out["user_type"] == "MODEL_DEVELOPER"
    assert h.fakes.users.get("dev@example.com").password_hash == "hash:pw"
    assert out["datetime_created"] == h.fakes.clock.now.isoformat()


def test_a_duplicate_email_is_a_conflict(h):
    admin = h.user(UserType.ADMIN)
    h.services.users.create_user(admin, "dev@example.com", "pw", UserType.MODEL_DEVELOPER)
    with pytest.raises(Conflict):
        h.services.users.create_user(admin, "dev@example.com", "other", UserType.APP_DEVELOPER)
    assert h.fakes.users.get("dev@example.com").user_type is UserType.MODEL_DEVELOPER


@pytest.mark.parametrize("actor_type, target_type", [
    (UserType.MODEL_DEVELOPER, UserType.APP_DEVELOPER),  # not an admin
    (UserType.ADMIN, UserType.ADMIN),  # only a superadmin makes admins
    (UserType.SUPERADMIN, UserType.SUPERADMIN),  # nobody makes superadmins
])
def test_who_may_create_whom(h, actor_type, target_type):
    actor = h.user(actor_type)
    with pytest.raises(Forbidden):
        h.services.users.create_user(actor, "new@example.com", "pw", target_type)
    assert h.fakes.users.get("new@example.com") is None


def test_a_superadmin_creates_an_admin(h):
    root = h.user(UserType.SUPERADMIN)
    assert h.services.users.create_user(root, "a@example.com", "pw", UserType.ADMIN)["user_type"] == "ADMIN"


def test_ensure_superadmin_is_idempotent_and_keeps_the_password(h):
    first = h.services.users.ensure_superadmin("root@kilele", "pw")
    again = h.services.users.ensure_superadmin("root@kilele", "another")
    assert first.id == again.id and first.user_type is UserType.SUPERADMIN
    assert h.fakes.users.get("root@kilele").password_hash == "hash:pw"
    assert h.fakes.users.calls["add"] == 1


def test_ensure_superadmin_survives_a_concurrent_creation(h):
    original_get = h.fakes.users.get
    seen = []

    def racing_get(email):  # the first read misses; another starter creates it meanwhile
        seen.append(email)
        if len(seen) == 1:
            h.user(UserType.SUPERADMIN, email=email, password="theirs")
            return None
        return original_get(email)

    h.fakes.users.get = racing_get
    user = h.services.users.ensure_superadmin("root@kilele", "mine")
    assert user.email == "root@kilele" and user.password_hash == "hash:theirs"


def test_users_are_listed_by_admins_only(h):
    admin = h.user(UserType.ADMIN, email="a@example.com")
    h.fakes.clock.advance(seconds=1)
    dev = h.user(UserType.MODEL_DEVELOPER, email="d@example.com")
    assert [u["email"] for u in h.services.users.list_users(admin)] == ["a@example.com", "d@example.com"]
    with pytest.raises(Forbidden):
        h.services.users.list_users(dev)


def test_an_admin_bans_a_developer_once(h):
    admin = h.user(UserType.ADMIN)
    h.user(UserType.MODEL_DEVELOPER, email="dev@example.com")
    out = h.services.users.ban_user(admin, "dev@example.com")
    assert out["banned_date"] == h.fakes.clock.now.isoformat()
    assert h.fakes.users.get("dev@example.com").is_banned
    with pytest.raises(Conflict):
        h.services.users.ban_user(admin, "dev@example.com")


def test_banning_is_refused_for_oneself_unknown_users_and_peers(h):
    admin = h.user(UserType.ADMIN, email="admin@example.com")
    h.user(UserType.ADMIN, email="peer@example.com")
    dev = h.user(UserType.MODEL_DEVELOPER, email="dev@example.com")
    with pytest.raises(Forbidden, match="yourself"):
        h.services.users.ban_user(admin, "admin@example.com")
    with pytest.raises(NotFound):
        h.services.users.ban_user(admin, "ghost@example.com")
    with pytest.raises(Forbidden):
        h.services.users.ban_user(admin, "peer@example.com")
    with pytest.raises(Forbidden):
        h.services.users.ban_user(dev, "peer@example.com")
    assert not any(u.is_banned for u in h.fakes.users.list())
