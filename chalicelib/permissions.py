"""Who may do what: the role matrix in one table (Rafiki's rules, seed 001)."""
from __future__ import annotations

from enum import Enum

from chalicelib.entities import AccessRight, Model, User, UserType
from chalicelib.errors import Forbidden

ADMINS = frozenset({UserType.SUPERADMIN, UserType.ADMIN})
EVERYONE = frozenset(UserType)


class Action(str, Enum):
    LIST_USERS = "list users"
    CREATE_USER = "create users"
    BAN_USER = "ban users"
    MANAGE_DATASETS = "manage datasets"
    MANAGE_MODELS = "create or delete models"
    VIEW_MODELS = "view models"
    MANAGE_API_KEYS = "manage API keys"
    MANAGE_TRAIN_JOBS = "manage train jobs"
    MANAGE_INFERENCE_JOBS = "manage inference jobs and apps"
    STOP_ALL_JOBS = "stop all jobs"
    CLEAN_UP_ENDPOINTS = "delete endpoints no inference job serves"
    MANAGE_STRESS_TESTS = "manage projects and stress tests"
    READ_AUDIT_LOG = "read the audit log"
    MANAGE_IMAGES = "create and delete managed images"
    VIEW_IMAGES = "view managed images"
    BUILD_PLATFORM_IMAGES = "build the platform's worker and inference images"


ALLOWED: dict[Action, frozenset[UserType]] = {
    Action.LIST_USERS: ADMINS,
    Action.CREATE_USER: ADMINS,
    Action.BAN_USER: ADMINS,
    Action.MANAGE_DATASETS: EVERYONE,
    Action.MANAGE_MODELS: ADMINS | {UserType.MODEL_DEVELOPER},
    Action.VIEW_MODELS: EVERYONE,
    Action.MANAGE_API_KEYS: EVERYONE,
    Action.MANAGE_TRAIN_JOBS: EVERYONE,
    Action.MANAGE_INFERENCE_JOBS: EVERYONE,
    Action.STOP_ALL_JOBS: frozenset({UserType.SUPERADMIN}),
    Action.CLEAN_UP_ENDPOINTS: ADMINS,
    Action.MANAGE_STRESS_TESTS: EVERYONE,
    Action.READ_AUDIT_LOG: ADMINS,
    Action.MANAGE_IMAGES: EVERYONE,  # RIME's users make the images their stress tests run in; delete: own only
    Action.VIEW_IMAGES: EVERYONE,  # images are shared: find one with your libraries before building another
    Action.BUILD_PLATFORM_IMAGES: ADMINS,  # every job runs in them: an operator's act (issue 13)
}


def owns_or_admin(actor: User, owner_id: str) -> bool:
    """The resource of ``owner_id`` is the actor's own, or the actor is an admin."""
    return owner_id == actor.id or actor.user_type.is_admin


def can_view_model(actor: User, model: Model) -> bool:
    """Own models, PUBLIC ones, and (for admins) every model."""
    return model.access_right is AccessRight.PUBLIC or owns_or_admin(actor, model.owner_id)


def require(actor: User, action: Action) -> None:
    """Raise :class:`Forbidden` unless ``actor``'s role may perform ``action``."""
    if actor.user_type not in ALLOWED[action]:
        raise Forbidden(f"{actor.user_type.value} users cannot {action.value}")


def require_can_manage_user_type(actor: User, target: UserType) -> None:
    """Only a superadmin creates or bans admins; nobody creates or bans a superadmin."""
    if target is UserType.SUPERADMIN:
        raise Forbidden("superadmins cannot be created or banned through the API")
    if target is UserType.ADMIN and actor.user_type is not UserType.SUPERADMIN:
        raise Forbidden("only a superadmin can create or ban admins")
