"""The users table: accounts, bans, and the IAM principals linked to each account."""
from __future__ import annotations

from datetime import datetime
from typing import Optional

from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError, UpdateError

from chalicelib.entities import User, UserType
from chalicelib.errors import Conflict, NotFound
from chalicelib.store.models import UniqueItem, UserItem
from chalicelib.store.repositories import TransactionalRepository, _failed_condition


def _principal_key(principal: str) -> str:
    return f"iam-principal#{principal}"


def _cancelled(error: TransactWriteError, index: int) -> bool:
    """Whether the transaction's ``index``-th operation is the one whose condition failed."""
    reasons = getattr(error, "cancellation_reasons", None) or []
    return index < len(reasons) and reasons[index] is not None and reasons[index].code == "ConditionalCheckFailed"


class UserRepository(TransactionalRepository):
    def add(self, user: User) -> None:
        """Store a new user; :class:`Conflict` if the email is taken."""
        item = UserItem(
            user.email,
            id=user.id,
            user_type=user.user_type.value,
            password_hash=user.password_hash,
            created_at=user.created_at,
            banned_at=user.banned_at,
        )
        try:
            item.save(condition=UserItem.email.does_not_exist())
        except PutError as e:
            if _failed_condition(e):
                raise Conflict(f"a user with email {user.email!r} already exists") from e
            raise

    def get(self, email: str) -> Optional[User]:
        try:
            return self._entity(UserItem.get(email, consistent_read=True))
        except DoesNotExist:
            return None

    def list(self) -> list[User]:
        return sorted((self._entity(i) for i in UserItem.scan()), key=lambda u: u.created_at)

    def mark_banned(self, email: str, at: datetime) -> User:
        """Set ``banned_at`` once; :class:`Conflict` if already banned."""
        item = UserItem(email)
        try:
            item.update(
                actions=[UserItem.banned_at.set(at)],
                condition=UserItem.email.exists() & UserItem.banned_at.does_not_exist(),
            )
        except UpdateError as e:
            if _failed_condition(e):
                raise Conflict(f"user {email!r} is already banned") from e
            raise
        return self._entity(item)

    def link_iam_principal(self, email: str, principal: str) -> User:
        """Claim ``principal`` for the user and add it to the user's set, in one transaction:
        two admins linking one role to two users at once cannot both succeed."""
        existing = self.get(email)
        if existing is None:
            raise NotFound(f"no user with email {email!r}")
        if principal in existing.iam_principals:
            return existing
        try:
            with self._transaction() as tx:
                tx.save(UniqueItem(_principal_key(principal), owner=email),
                        condition=UniqueItem.key.does_not_exist())
                tx.update(UserItem(email), actions=[UserItem.iam_principals.add({principal})],
                          condition=UserItem.email.exists())
        except TransactWriteError as e:
            if _cancelled(e, 0):
                owner = self._owner_of(principal)
                if owner == email:  # linked concurrently by another request for the same user
                    return self.get(email)  # type: ignore[return-value]
                raise Conflict(f"{principal} is already linked to another user") from e
            if _cancelled(e, 1):
                raise NotFound(f"no user with email {email!r}") from e
            raise
        return self.get(email)  # type: ignore[return-value]

    def unlink_iam_principal(self, email: str, principal: str) -> User:
        try:
            with self._transaction() as tx:
                tx.delete(UniqueItem(_principal_key(principal)), condition=UniqueItem.owner == email)
                tx.update(UserItem(email), actions=[UserItem.iam_principals.delete({principal})],
                          condition=UserItem.email.exists())
        except TransactWriteError as e:
            if _failed_condition(e):
                raise NotFound(f"{principal} is not linked to user {email!r}") from e
            raise
        return self.get(email)  # type: ignore[return-value]

    def get_by_iam_principal(self, principal: str) -> Optional[User]:
        email = self._owner_of(principal)
        return self.get(email) if email else None

    @staticmethod
    def _owner_of(principal: str) -> Optional[str]:
        try:
            return UniqueItem.get(_principal_key(principal), consistent_read=True).owner
        except DoesNotExist:
            return None

    @staticmethod
    def _entity(item: UserItem) -> User:
        return User(
            id=item.id,
            email=item.email,
            user_type=UserType(item.user_type),
            password_hash=item.password_hash,
            created_at=item.created_at,
            banned_at=item.banned_at,
            iam_principals=tuple(sorted(item.iam_principals or ())),
        )
