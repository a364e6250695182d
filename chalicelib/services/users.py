"""Users and roles (Rafiki's rules)."""
from __future__ import annotations

from typing import Any, Callable, Optional

from chalicelib.entities import User, UserType
from chalicelib.errors import Conflict, Forbidden, InvalidInput, NotFound
from chalicelib.iam_principals import principal_of
from chalicelib.permissions import Action, require, require_can_manage_user_type
from chalicelib.services import Clock, new_id, utc_now
from chalicelib.ports import PasswordHasher, PasswordPolicy, UserStore


def _words_of(email: str) -> list[str]:
    """The email and its parts: what a guesser tries first, so a password made of them is weak."""
    local, _, domain = email.partition("@")
    return [email, local, *local.replace("_", ".").replace("-", ".").split("."), *domain.split(".")]


class UserService:
    def __init__(self, users: UserStore, hasher: PasswordHasher, password_policy: PasswordPolicy,
                 clock: Clock = utc_now, on_banned: Optional[Callable[[str], None]] = None):
        """``on_banned(email)`` runs after a ban is stored (the auth cache forgets the user).
        ``password_policy`` judges every password set through the API."""
        self._users = users
        self._on_banned = on_banned
        self._hasher = hasher
        self._policy = password_policy
        self._clock = clock

    def create_user(self, actor: User, email: str, password: str, user_type: UserType) -> dict[str, Any]:
        """Create a user; ``InvalidInput`` saying why if the password is too weak."""
        require(actor, Action.CREATE_USER)
        require_can_manage_user_type(actor, user_type)
        self.check_password(email, password)
        return self._add(email, password, user_type).to_dict()

    def check_password(self, email: str, password: str) -> None:
        """Raise ``InvalidInput`` (with the policy's reason and suggestions) unless ``password``
        is strong enough for the account ``email``."""
        refusal = self._policy.check(password, _words_of(email))
        if refusal is not None:
            raise InvalidInput(f"password: too weak: {refusal.message()}")

    def ensure_superadmin(self, email: str, password: str) -> User:
        """Create the superadmin if missing (idempotent; an existing one keeps its password).

        The platform seeds it directly, without the password policy: the local stack's demo
        superadmin has the documented password "kilele"; a deployed stage's bootstrap checks
        the password itself (chalicelib/bootstrap.py)."""
        existing = self._users.get(email)
        if existing:
            return existing
        try:
            return self._add(email, password, UserType.SUPERADMIN)
        except Conflict:  # created concurrently by another starter
            return self._users.get(email)  # type: ignore[return-value]

    def list_users(self, actor: User) -> list[dict[str, Any]]:
        require(actor, Action.LIST_USERS)
        return [u.to_dict() for u in self._users.list()]

    def ban_user(self, actor: User, email: str) -> dict[str, Any]:
        """Ban a user; their sessions and API keys stop working on their next request."""
        require(actor, Action.BAN_USER)
        if email == actor.email:
            raise Forbidden("you cannot ban yourself")
        target = self._users.get(email)
        if not target:
            raise NotFound(f"no user with email {email!r}")
        require_can_manage_user_type(actor, target.user_type)
        banned = self._users.mark_banned(email, self._clock())
        if self._on_banned:
            self._on_banned(email)
        return banned.to_dict()

    def link_iam_principal(self, actor: User, email: str, principal_arn: str) -> dict[str, Any]:
        """Let the IAM user or role ``principal_arn`` act as user ``email`` (requests signed
        with SigV4 through the stack's IAM API); an assumed-role ARN links its role."""
        target = self._managed_target(actor, email)
        return self._users.link_iam_principal(target.email, principal_of(principal_arn)).to_dict()

    def unlink_iam_principal(self, actor: User, email: str, principal_arn: str) -> dict[str, Any]:
        """Stop ``principal_arn``'s signed requests from acting as user ``email``."""
        target = self._managed_target(actor, email)
        unlinked = self._users.unlink_iam_principal(target.email, principal_of(principal_arn))
        if self._on_banned:  # the auth cache forgets the user, so the principal stops at once here
            self._on_banned(email)
        return unlinked.to_dict()

    def _managed_target(self, actor: User, email: str) -> User:
        require(actor, Action.BAN_USER)  # the admins who may ban a user may manage its identities
        target = self._users.get(email)
        if not target:
            raise NotFound(f"no user with email {email!r}")
        require_can_manage_user_type(actor, target.user_type)
        return target

    def _add(self, email: str, password: str, user_type: UserType) -> User:
        user = User(
            id=new_id(),
            email=email,
            user_type=user_type,
            password_hash=self._hasher.hash(password),
            created_at=self._clock(),
        )
        self._users.add(user)
        return user
