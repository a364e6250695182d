"""Repositories: entity in, entity out. DynamoDB errors become domain errors here."""
from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from typing import Any, Iterable, Optional

from pynamodb.connection import Connection
from pynamodb.exceptions import DoesNotExist, PutError, DeleteError, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib.entities import (
    AccessRight,
    ApiKey,
    Dataset,
    DatasetStatus,
    Model,
    Session,
    Task,
)
from chalicelib.errors import Conflict, NotFound
from chalicelib.store.models import (
    ApiKeyItem,
    DatasetItem,
    ModelItem,
    SessionItem,
    UniqueItem,
    new_connection,
)

_CONDITION_FAILED = "ConditionalCheckFailedException"
_TRANSACTION_CANCELED = "TransactionCanceledException"


def _failed_condition(error: Exception) -> bool:
    return getattr(error, "cause_response_code", None) in (_CONDITION_FAILED, _TRANSACTION_CANCELED)


def set_status_if(item: Any, status_attr: Any, status: Enum, only_from: Iterable[Enum],
                  actions: Iterable[Any] = ()) -> bool:
    """Update ``item`` to ``status`` (plus ``actions``) only if its status is one of
    ``only_from``; False (and no change) if it is not."""
    try:
        item.update(actions=[status_attr.set(status.value), *actions],
                    condition=status_attr.is_in(*[s.value for s in only_from]))
        return True
    except UpdateError as e:
        if _failed_condition(e):
            return False
        raise


def _iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat()


def _dt(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _opt_dt(value: Optional[str]) -> Optional[datetime]:
    return _dt(value) if value else None


def _opt_iso(value: Optional[datetime]) -> Optional[str]:
    return _iso(value) if value else None


class SessionRepository:
    def add(self, session: Session) -> None:
        SessionItem(
            session.token_hash,
            user_email=session.user_email,
            created_at=session.created_at,
            expires_at=int(session.expires_at.timestamp()),
        ).save()

    def get_live(self, token_hash: str, now: datetime) -> Optional[Session]:
        """The session if it exists and has not expired (TTL deletion is lazy, so check)."""
        try:
            item = SessionItem.get(token_hash, consistent_read=True)
        except DoesNotExist:
            return None
        if item.expires_at <= now.timestamp():
            return None
        return Session(
            token_hash=item.token_hash,
            user_email=item.user_email,
            created_at=item.created_at,
            expires_at=datetime.fromtimestamp(item.expires_at, tz=timezone.utc),
        )

    def delete(self, token_hash: str) -> None:
        SessionItem(token_hash).delete()


class ApiKeyRepository:
    def add(self, key: ApiKey) -> None:
        """Store a new key; :class:`Conflict` if its id is taken."""
        item = ApiKeyItem(
            key.key_id,
            owner_email=key.owner_email,
            name=key.name,
            secret_hash=key.secret_hash,
            created_at=_iso(key.created_at),
        )
        try:
            item.save(condition=ApiKeyItem.key_id.does_not_exist())
        except PutError as e:
            if _failed_condition(e):
                raise Conflict(f"an API key {key.key_id!r} already exists") from e
            raise

    def get(self, key_id: str) -> Optional[ApiKey]:
        try:
            return self._entity(ApiKeyItem.get(key_id, consistent_read=True))
        except DoesNotExist:
            return None

    def list_by_owner(self, owner_email: str) -> list[ApiKey]:
        return [self._entity(i) for i in ApiKeyItem.by_owner.query(owner_email)]

    def delete(self, key_id: str, owner_email: str) -> None:
        """Delete the key if ``owner_email`` owns it; :class:`NotFound` otherwise."""
        try:
            ApiKeyItem(key_id).delete(condition=ApiKeyItem.owner_email == owner_email)
        except DeleteError as e:
            if _failed_condition(e):
                raise NotFound(f"no API key {key_id!r}") from e
            raise

    @staticmethod
    def _entity(item: ApiKeyItem) -> ApiKey:
        return ApiKey(
            key_id=item.key_id,
            owner_email=item.owner_email,
            name=item.name,
            secret_hash=item.secret_hash,
            created_at=_dt(item.created_at),
        )


class DatasetRepository:
    def save(self, dataset: Dataset) -> None:
        DatasetItem(
            dataset.id,
            owner_id=dataset.owner_id,
            name=dataset.name,
            task=dataset.task.value,
            status=dataset.status.value,
            object_key=dataset.object_key,
            created_at=_iso(dataset.created_at),
            size_bytes=dataset.size_bytes,
            target_column=dataset.target_column,
            stats=dataset.stats,
            error=dataset.error,
            check_started_at=_iso(dataset.check_started_at) if dataset.check_started_at else None,
        ).save()

    def get(self, dataset_id: str) -> Optional[Dataset]:
        try:
            return self._entity(DatasetItem.get(dataset_id, consistent_read=True))
        except DoesNotExist:
            return None

    def list(self, owner_id: Optional[str] = None, task: Optional[Task] = None) -> list[Dataset]:
        """READY datasets, of one owner (or everyone's), optionally of one task, oldest first."""
        condition = DatasetItem.status == DatasetStatus.READY.value
        if task:
            condition &= DatasetItem.task == task.value
        if owner_id:
            items: Iterable[DatasetItem] = DatasetItem.by_owner.query(owner_id, filter_condition=condition)
        else:
            items = DatasetItem.scan(condition)
        return sorted((self._entity(i) for i in items), key=lambda d: d.created_at)

    def delete(self, dataset_id: str) -> None:
        DatasetItem(dataset_id).delete()

    @staticmethod
    def _entity(item: DatasetItem) -> Dataset:
        return Dataset(
            id=item.id,
            owner_id=item.owner_id,
            name=item.name,
            task=Task(item.task),
            status=DatasetStatus(item.status),
            object_key=item.object_key,
            created_at=_dt(item.created_at),
            size_bytes=int(item.size_bytes or 0),
            target_column=item.target_column,
            stats=_plain_map(item.stats) or {},
            error=item.error,
            check_started_at=_opt_dt(item.check_started_at),
        )


def _plain_map(value) -> Optional[dict]:
    """A raw pynamodb MapAttribute (or None) as a plain dict."""
    if value is None:
        return None
    return value.as_dict() if hasattr(value, "as_dict") else dict(value)


def _model_name_key(owner_id: str, name: str) -> str:
    return f"model-name#{owner_id}#{name}"


class TransactionalRepository:
    """Base of the repositories that write DynamoDB transactions, over one connection each."""

    def __init__(self, connection: Optional[Connection] = None):
        self._connection = connection

    def _transaction(self) -> TransactWrite:
        # One connection per repository: a new Connection builds a new botocore session and
        # client (~50 ms of loading service models) on every transaction.
        if self._connection is None:
            self._connection = new_connection()
        return TransactWrite(connection=self._connection)


class ModelRepository(TransactionalRepository):

    def add(self, model: Model) -> None:
        """Store a new model and claim its name for its owner, atomically."""
        item = ModelItem(
            model.id,
            owner_id=model.owner_id,
            name=model.name,
            task=model.task.value,
            model_class=model.model_class,
            object_key=model.object_key,
            created_at=_iso(model.created_at),
            access_right=model.access_right.value,
            dependencies=model.dependencies,
            docker_image=model.docker_image,
            image=model.image,
            train_job_count=model.train_job_count,
        )
        unique = UniqueItem(_model_name_key(model.owner_id, model.name), owner=model.id)
        try:
            with self._transaction() as tx:
                tx.save(unique, condition=UniqueItem.key.does_not_exist())
                tx.save(item, condition=ModelItem.id.does_not_exist())
        except TransactWriteError as e:
            if _failed_condition(e):
                raise Conflict(f"you already have a model named {model.name!r}") from e
            raise

    def get(self, model_id: str) -> Optional[Model]:
        try:
            return self._entity(ModelItem.get(model_id, consistent_read=True))
        except DoesNotExist:
            return None

    def list_by_owner(self, owner_id: str) -> list[Model]:
        return [self._entity(i) for i in ModelItem.by_owner.query(owner_id)]

    def list_public(self) -> list[Model]:
        return [self._entity(i) for i in ModelItem.by_access.query(AccessRight.PUBLIC.value)]

    def list_all(self) -> list[Model]:
        return [self._entity(i) for i in ModelItem.scan()]

    def list_own_and_public(self, owner_id: str) -> list[Model]:
        """A user's models and every PUBLIC one, each once."""
        by_id = {m.id: m for m in self.list_public()}
        by_id.update({m.id: m for m in self.list_by_owner(owner_id)})
        return list(by_id.values())

    def delete_unused(self, model: Model) -> None:
        """Delete the model and free its name, only if no train job uses it (checked atomically)."""
        try:
            with self._transaction() as tx:
                tx.delete(
                    ModelItem(model.id),
                    condition=ModelItem.id.exists() & (ModelItem.train_job_count == 0),
                )
                tx.delete(UniqueItem(_model_name_key(model.owner_id, model.name)))
        except TransactWriteError as e:
            if _failed_condition(e):
                raise Conflict(
                    f"model {model.name!r} is used by a train job and cannot be deleted"
                ) from e
            raise

    @staticmethod
    def _entity(item: ModelItem) -> Model:
        deps = _plain_map(item.dependencies) or {}
        return Model(
            id=item.id,
            owner_id=item.owner_id,
            name=item.name,
            task=Task(item.task),
            model_class=item.model_class,
            object_key=item.object_key,
            created_at=_dt(item.created_at),
            access_right=AccessRight(item.access_right),
            dependencies=deps,
            docker_image=item.docker_image,
            image=item.image,
            train_job_count=int(item.train_job_count or 0),
            knob_config=_plain_map(item.knob_config),
        )

    def set_knob_config(self, model_id: str, knob_config: dict) -> None:
        ModelItem(model_id).update(actions=[ModelItem.knob_config.set(knob_config)], condition=ModelItem.id.exists())
