"""Projects and stress-test jobs (seed 002)."""
from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from typing import Any, Optional

from pynamodb.connection import Connection
from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.entities import Project, StressTestJob, StressTestStatus
from chalicelib.errors import Conflict
from chalicelib.store.models import UniqueItem, new_connection
from chalicelib.store.models_rime import ProjectItem, StressTestItem
from chalicelib.store.repositories import _dt, _failed_condition, _iso, _opt_dt, _opt_iso, _plain_map, set_status_if


def _project_name_key(owner_id: str, name: str) -> str:
    return f"project-name#{owner_id}#{name}"


class ProjectRepository:
    def __init__(self, connection: Optional[Connection] = None):
        self._connection = connection

    def add(self, project: Project) -> None:
        """Store a new project and claim its name for its owner, atomically."""
        if self._connection is None:  # one per repository: a new one loads botocore's models again
            self._connection = new_connection()
        item = ProjectItem(project.id, owner_id=project.owner_id, name=project.name,
                           description=project.description, created_at=_iso(project.created_at))
        unique = UniqueItem(_project_name_key(project.owner_id, project.name), owner=project.id)
        try:
            with TransactWrite(connection=self._connection) as tx:
                tx.save(unique, condition=UniqueItem.key.does_not_exist())
                tx.save(item, condition=ProjectItem.id.does_not_exist())
        except TransactWriteError as e:
            if _failed_condition(e):
                raise Conflict(f"you already have a project named {project.name!r}") from e
            raise

    def get(self, project_id: str) -> Optional[Project]:
        try:
            return self._entity(ProjectItem.get(project_id, consistent_read=True))
        except DoesNotExist:
            return None

    def get_by_name(self, owner_id: str, name: str) -> Optional[Project]:
        try:
            unique = UniqueItem.get(_project_name_key(owner_id, name), consistent_read=True)
        except DoesNotExist:
            return None
        return self.get(unique.owner)

    def list_by_owner(self, owner_id: str) -> list[Project]:
        return [self._entity(i) for i in ProjectItem.by_owner.query(owner_id)]

    def list_all(self) -> list[Project]:
        return sorted((self._entity(i) for i in ProjectItem.scan()), key=lambda p: p.created_at)

    @staticmethod
    def _entity(item: ProjectItem) -> Project:
        return Project(id=item.id, owner_id=item.owner_id, name=item.name, description=item.description or "",
                       created_at=_dt(item.created_at))


def _stored(name: str, value: Any) -> Any:
    """A field value as the item keeps it."""
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).timestamp() if name == "expires_at" else _iso(value)
    if isinstance(value, Enum):
        return value.value
    return value


class StressTestJobRepository:
    def add(self, job: StressTestJob) -> None:
        self._item(job).save(condition=StressTestItem.id.does_not_exist())

    def get(self, job_id: str, now: datetime) -> Optional[StressTestJob]:
        try:
            item = StressTestItem.get(job_id, consistent_read=True)
        except DoesNotExist:
            return None
        return self._entity(item) if item.expires_at > now.timestamp() else None

    def list_by_owner(self, owner_id: str, now: datetime) -> list[StressTestJob]:
        items = StressTestItem.by_owner.query(owner_id, scan_index_forward=False,
                                              filter_condition=StressTestItem.expires_at > int(now.timestamp()))
        return [self._entity(i) for i in items if i.expires_at > now.timestamp()]

    def list_all(self, now: datetime) -> list[StressTestJob]:
        jobs = [self._entity(i) for i in StressTestItem.scan(StressTestItem.expires_at > int(now.timestamp()))
                if i.expires_at > now.timestamp()]
        return sorted(jobs, key=lambda j: j.created_at, reverse=True)

    def set_status(self, job_id: str, status: StressTestStatus, only_from: tuple[StressTestStatus, ...],
                   **fields: Any) -> bool:
        actions = [getattr(StressTestItem, name).set(_stored(name, value))
                   for name, value in fields.items() if value is not None]
        return set_status_if(StressTestItem(job_id), StressTestItem.status, status, only_from, actions)

    def update(self, job_id: str, **fields: Any) -> None:
        actions = [getattr(StressTestItem, name).set(_stored(name, value))
                   for name, value in fields.items() if value is not None]
        if actions:
            StressTestItem(job_id).update(actions=actions, condition=StressTestItem.id.exists())

    @staticmethod
    def _item(job: StressTestJob) -> StressTestItem:
        return StressTestItem(
            job.id,
            owner_id=job.owner_id,
            project_id=job.project_id,
            name=job.name,
            config=job.config,
            status=job.status.value,
            created_at=_iso(job.created_at),
            expires_at=int(job.expires_at.timestamp()),
            test_run_id=job.test_run_id,
            started_at=_opt_iso(job.started_at),
            finished_at=_opt_iso(job.finished_at),
            error=job.error,
            progress=job.progress,
            ram_request_megabytes=job.ram_request_megabytes,
            cpu_request_millicores=job.cpu_request_millicores,
            rime_managed_image=job.rime_managed_image,
            custom_image=job.custom_image,
            execution_arn=job.execution_arn,
            logs_key=job.logs_key,
            results_prefix=job.results_prefix,
            summary=job.summary,
        )

    @staticmethod
    def _entity(item: StressTestItem) -> StressTestJob:
        return StressTestJob(
            id=item.id,
            owner_id=item.owner_id,
            project_id=item.project_id,
            name=item.name,
            config=_plain_map(item.config) or {},
            created_at=_dt(item.created_at),
            expires_at=datetime.fromtimestamp(float(item.expires_at), tz=timezone.utc),
            status=StressTestStatus(item.status),
            test_run_id=item.test_run_id,
            started_at=_opt_dt(item.started_at),
            finished_at=_opt_dt(item.finished_at),
            error=item.error,
            progress=item.progress,
            ram_request_megabytes=int(item.ram_request_megabytes),
            cpu_request_millicores=int(item.cpu_request_millicores),
            rime_managed_image=item.rime_managed_image,
            custom_image=_plain_map(item.custom_image),
            execution_arn=item.execution_arn,
            logs_key=item.logs_key,
            results_prefix=item.results_prefix,
            summary=_plain_map(item.summary) or {},
        )


__all__ = ["ProjectRepository", "StressTestJobRepository"]
