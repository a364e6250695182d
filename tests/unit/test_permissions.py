"""The role matrix (Rafiki's rules, seed 001), checked on the table itself."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from chalicelib.entities import User, UserType
from chalicelib.errors import Forbidden
from chalicelib.permissions import ALLOWED, Action, require, require_can_manage_user_type

SA, AD, MD, AP = UserType.SUPERADMIN, UserType.ADMIN, UserType.MODEL_DEVELOPER, UserType.APP_DEVELOPER

EXPECTED = {
    Action.LIST_USERS: {SA, AD},
    Action.CREATE_USER: {SA, AD},
    Action.BAN_USER: {SA, AD},
    Action.MANAGE_DATASETS: {SA, AD, MD, AP},
    Action.MANAGE_MODELS: {SA, AD, MD},
    Action.VIEW_MODELS: {SA, AD, MD, AP},
    Action.MANAGE_API_KEYS: {SA, AD, MD, AP},
    Action.MANAGE_TRAIN_JOBS: {SA, AD, MD, AP},
    Action.MANAGE_INFERENCE_JOBS: {SA, AD, MD, AP},
    Action.STOP_ALL_JOBS: {SA},
    Action.CLEAN_UP_ENDPOINTS: {SA, AD},
    Action.MANAGE_STRESS_TESTS: {SA, AD, MD, AP},
    Action.READ_AUDIT_LOG: {SA, AD},
    Action.MANAGE_IMAGES: {SA, AD, MD, AP},
    Action.VIEW_IMAGES: {SA, AD, MD, AP},
    Action.BUILD_PLATFORM_IMAGES: {SA, AD},
}


def user(user_type: UserType) -> User:
    return User("id", f"{user_type.value.lower()}@example.com", user_type, "hash", datetime.now(timezone.utc))


def test_every_action_has_a_rule():
    assert set(ALLOWED) == set(Action) == set(EXPECTED)


@pytest.mark.parametrize("action", list(Action), ids=lambda a: a.name)
@pytest.mark.parametrize("user_type", list(UserType), ids=lambda t: t.name)
def test_require(action, user_type):
    if user_type in EXPECTED[action]:
        require(user(user_type), action)
    else:
        with pytest.raises(Forbidden) as caught:
            require(user(user_type), action)
        assert caught.value.message == f"{user_type.value} users cannot {action.value}"


@pytest.mark.parametrize(
    "actor, target, allowed",
    [
        (SA, AD, True), (SA, MD, True), (SA, AP, True), (SA, SA, False),
        (AD, AD, False), (AD, MD, True), (AD, AP, True), (AD, SA, False),
    ],
)
def test_who_manages_which_user_type(actor, target, allowed):
    if allowed:
        require_can_manage_user_type(user(actor), target)
    else:
        with pytest.raises(Forbidden) as caught:
            require_can_manage_user_type(user(actor), target)
        expected = "only a superadmin" if target is AD else "superadmins cannot be created or banned"
        assert expected in caught.value.message


def test_admin_roles():
    assert {t for t in UserType if t.is_admin} == {SA, AD}
