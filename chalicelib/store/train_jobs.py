"""Train jobs, their workers and trials, and atomic counters."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from pynamodb.connection import Connection
from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib.entities import (
    Task,
    TrainJob,
    TrainJobStatus,
    Trial,
    TrialStatus,
    Worker,
    WorkerStatus,
)
from chalicelib.errors import Conflict
from chalicelib.store.models import CounterItem, ModelItem, TrainJobItem, TrialItem, UniqueItem, new_connection
from chalicelib.store.repositories import _dt, _failed_condition, _iso, _opt_dt, _opt_iso, _plain_map, set_status_if


class CounterRepository:
    def increment(self, key: str, limit: Optional[int] = None) -> Optional[int]:
        """Add one and return the new value; None (and no change) if it would exceed ``limit``."""
        condition = None
        if limit is not None:
            condition = CounterItem.value.does_not_exist() | (CounterItem.value < limit)
        try:
            item = CounterItem(key)
            item.update(actions=[CounterItem.value.add(1)], condition=condition)
            return int(item.value)
        except UpdateError as e:
            if _failed_condition(e):
                return None
            raise

    def get(self, key: str) -> int:
        try:
            return int(CounterItem.get(key, consistent_read=True).value or 0)
        except DoesNotExist:
            return 0


def _worker_entity(key: str, data: dict[str, Any]) -> Worker:
    return Worker(
        model_id=data["model_id"],
        model_name=data["model_name"],
        slot=int(data["slot"]),
        status=WorkerStatus(data.get("status", WorkerStatus.RUNNING.value)),
        execution_arn=data.get("execution_arn"),
        started_at=_opt_dt(data.get("started_at")),
        stopped_at=_opt_dt(data.get("stopped_at")),
        error=data.get("error"),
    )


def _worker_data(worker: Worker) -> dict[str, Any]:
    data = {
        "model_id": worker.model_id,
        "model_name": worker.model_name,
        "slot": worker.slot,
        "status": worker.status.value,
        "execution_arn": worker.execution_arn,
        "started_at": _opt_iso(worker.started_at),
        "stopped_at": _opt_iso(worker.stopped_at),
        "error": worker.error,
    }
    return {k: v for k, v in data.items() if v is not None}


class TrainJobRepository:
    def __init__(self, connection: Optional[Connection] = None):
        self._connection = connection

    def add(self, job: TrainJob) -> None:
        """Store a new job and count it as a user of each of its models, atomically (a model
        deleted meanwhile makes the whole write fail with :class:`Conflict`)."""
        item = self._item(job)
        if self._connection is None:  # one per repository: a new one loads botocore's models again
            self._connection = new_connection()
        connection = self._connection
        try:
            with TransactWrite(connection=connection) as tx:
                tx.save(item, condition=TrainJobItem.id.does_not_exist())
                for model_id in job.model_ids:
                    tx.update(
                        ModelItem(model_id),
                        actions=[ModelItem.train_job_count.add(1)],
                        condition=ModelItem.id.exists(),
                    )
        except TransactWriteError as e:
            if _failed_condition(e):
                raise Conflict("a model of this train job was deleted meanwhile; try again") from e
            raise

    def get(self, job_id: str) -> Optional[TrainJob]:
        try:
            return self._entity(TrainJobItem.get(job_id, consistent_read=True))
        except DoesNotExist:
            return None

    def list_by_user(self, user_id: str) -> list[TrainJob]:
        return [self._entity(i) for i in TrainJobItem.by_user.query(user_id)]

    def list_of_app(self, user_id: str, app: str) -> list[TrainJob]:
        return [self._entity(i) for i in TrainJobItem.by_app.query(f"{user_id}#{app}")]

    def list_all(self) -> list[TrainJob]:
        return [self._entity(i) for i in TrainJobItem.scan()]

    def set_status(
        self,
        job_id: str,
        status: TrainJobStatus,
        only_from: tuple[TrainJobStatus, ...],
        at: Optional[datetime] = None,
        error: Optional[str] = None,
    ) -> bool:
        """Move the job to ``status`` if it is in one of ``only_from``; False if it was not."""
        actions = []
        if status.is_final and at:
            actions.append(TrainJobItem.stopped_at.set(_iso(at)))
        if error:
            actions.append(TrainJobItem.error.set(error[:2000]))
        return set_status_if(TrainJobItem(job_id), TrainJobItem.status, status, only_from, actions)

    def put_worker(self, job_id: str, worker: Worker) -> None:
        TrainJobItem(job_id).update(actions=[TrainJobItem.workers[worker.key].set(_worker_data(worker))])

    def update_worker(self, job_id: str, key: str, **fields: Any) -> None:
        """Set fields of one worker (datetimes and enums are converted)."""
        actions = []
        for name, value in fields.items():
            if isinstance(value, datetime):
                value = _iso(value)
            elif hasattr(value, "value"):
                value = value.value
            actions.append(TrainJobItem.workers[key][name].set(value))
        TrainJobItem(job_id).update(actions=actions, condition=TrainJobItem.id.exists())

    @staticmethod
    def _item(job: TrainJob) -> TrainJobItem:
        return TrainJobItem(
            job.id,
            user_id=job.user_id,
            user_app=f"{job.user_id}#{job.app}",
            app=job.app,
            app_version=job.app_version,
            task=job.task.value,
            train_dataset_id=job.train_dataset_id,
            val_dataset_id=job.val_dataset_id,
            budget=job.budget,
            model_ids=job.model_ids,
            train_args=job.train_args,
            status=job.status.value,
            created_at=_iso(job.created_at),
            stopped_at=_opt_iso(job.stopped_at),
            error=job.error,
            workers={w.key: _worker_data(w) for w in job.workers.values()},
        )

    @staticmethod
    def _entity(item: TrainJobItem) -> TrainJob:
        workers = _plain_map(item.workers) or {}
        return TrainJob(
            id=item.id,
            user_id=item.user_id,
            app=item.app,
            app_version=int(item.app_version),
            task=Task(item.task),
            train_dataset_id=item.train_dataset_id,
            val_dataset_id=item.val_dataset_id,
            budget=_plain_map(item.budget) or {},
            model_ids=list(item.model_ids or []),
            created_at=_dt(item.created_at),
            status=TrainJobStatus(item.status),
            train_args=_plain_map(item.train_args) or {},
            workers={k: _worker_entity(k, _plain_map(v) or {}) for k, v in workers.items()},
            stopped_at=_opt_dt(item.stopped_at),
            error=item.error,
        )


class TrialRepository:
    def claim_fingerprint(self, job_id: str, model_id: str, fingerprint: str, trial_id: str) -> bool:
        """Claim a configuration for one trial of a job's model; False if another trial has it."""
        try:
            UniqueItem(f"trial#{job_id}#{model_id}#{fingerprint}", owner=trial_id).save(
                condition=UniqueItem.key.does_not_exist()
            )
            return True
        except PutError as e:
            if _failed_condition(e):
                return False
            raise

    def add(self, trial: Trial) -> None:
        self._item(trial).save(condition=TrialItem.id.does_not_exist())

    def get(self, trial_id: str) -> Optional[Trial]:
        try:
            return self._entity(TrialItem.get(trial_id, consistent_read=True))
        except DoesNotExist:
            return None

    def list_of_job(self, job_id: str) -> list[Trial]:
        """Every trial of a job, oldest first."""
        return [self._entity(i) for i in TrialItem.by_job.query(job_id)]

    def finish(
        self,
        trial_id: str,
        status: TrialStatus,
        at: datetime,
        only_from: tuple[TrialStatus, ...] = (TrialStatus.PENDING, TrialStatus.RUNNING),
        **fields: Any,
    ) -> bool:
        """Record a trial's end once (COMPLETED, ERRORED or TERMINATED); False if it had ended."""
        actions = [TrialItem.stopped_at.set(_iso(at))]
        actions += [getattr(TrialItem, name).set(value) for name, value in fields.items() if value is not None]
        return set_status_if(TrialItem(trial_id), TrialItem.status, status, only_from, actions)

    @staticmethod
    def _item(trial: Trial) -> TrialItem:
        return TrialItem(
            trial.id,
            train_job_id=trial.train_job_id,
            model_id=trial.model_id,
            model_name=trial.model_name,
            worker_key=trial.worker_key,
            number=trial.number,
            knobs=trial.knobs,
            fingerprint=trial.fingerprint,
            created_at=_iso(trial.created_at),
            status=trial.status.value,
            started_at=_opt_iso(trial.started_at),
            screening=trial.screening,
            model_check=trial.model_check,
            params_key=trial.params_key,
            logs_key=trial.logs_key,
            onnx_key=trial.onnx_key,
        )

    @staticmethod
    def _entity(item: TrialItem) -> Trial:
        return Trial(
            id=item.id,
            train_job_id=item.train_job_id,
            model_id=item.model_id,
            model_name=item.model_name,
            worker_key=item.worker_key,
            number=int(item.number),
            knobs=_plain_map(item.knobs) or {},
            fingerprint=item.fingerprint,
            created_at=_dt(item.created_at),
            status=TrialStatus(item.status),
            screening=bool(item.screening),
            model_check=bool(item.model_check),
            score=float(item.score) if item.score is not None else None,
            started_at=_opt_dt(item.started_at),
            stopped_at=_opt_dt(item.stopped_at),
            model_seconds=item.model_seconds,
            worker_seconds=item.worker_seconds,
            params_key=item.params_key,
            logs_key=item.logs_key,
            onnx_key=item.onnx_key,
            error_type=item.error_type,
            error_message=item.error_message,
        )


__all__ = ["CounterRepository", "TrainJobRepository", "TrialRepository"]
