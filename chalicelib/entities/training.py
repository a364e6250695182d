"""Train jobs, their workers and trials."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Optional

from chalicelib.entities.accounts import Task, iso_or_none


class BudgetOption(str, Enum):
    TIME_HOURS = "TIME_HOURS"
    GPU_COUNT = "GPU_COUNT"
    MODEL_TRIAL_COUNT = "MODEL_TRIAL_COUNT"


BUDGET_DEFAULTS: dict[BudgetOption, float] = {
    BudgetOption.TIME_HOURS: 0.1,
    BudgetOption.GPU_COUNT: 0,
    BudgetOption.MODEL_TRIAL_COUNT: -1,
}


class TrainJobStatus(str, Enum):
    STARTED = "STARTED"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    ERRORED = "ERRORED"

    @property
    def is_final(self) -> bool:
        return self in (TrainJobStatus.STOPPED, TrainJobStatus.ERRORED)


class WorkerStatus(str, Enum):
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    ERRORED = "ERRORED"


class TrialStatus(str, Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    ERRORED = "ERRORED"
    TERMINATED = "TERMINATED"  # ended by stop_train_job before it finished


@dataclass
class Worker:
    """One search slot of a train job: a loop of trials of one model (one Step Functions
    execution at a time)."""

    model_id: str
    model_name: str
    slot: int
    status: WorkerStatus = WorkerStatus.RUNNING
    execution_arn: Optional[str] = None
    started_at: Optional[datetime] = None
    stopped_at: Optional[datetime] = None
    error: Optional[str] = None

    @property
    def key(self) -> str:
        return f"{self.model_id}-{self.slot}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "service_id": self.key,
            "model_id": self.model_id,
            "model_name": self.model_name,
            "slot": self.slot,
            "status": self.status.value,
            "execution_arn": self.execution_arn,
            "datetime_started": iso_or_none(self.started_at),
            "datetime_stopped": iso_or_none(self.stopped_at),
            "error": self.error,
        }


@dataclass
class TrainJob:
    id: str
    user_id: str
    app: str
    app_version: int
    task: Task
    train_dataset_id: str
    val_dataset_id: str
    budget: dict[str, float]
    model_ids: list[str]
    created_at: datetime
    status: TrainJobStatus = TrainJobStatus.STARTED
    train_args: dict[str, Any] = field(default_factory=dict)
    workers: dict[str, Worker] = field(default_factory=dict)
    stopped_at: Optional[datetime] = None
    error: Optional[str] = None

    def budget_value(self, option: BudgetOption) -> float:
        return float(self.budget.get(option.value, BUDGET_DEFAULTS[option]))

    def to_dict(self, with_workers: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "app": self.app,
            "app_version": self.app_version,
            "task": self.task.value,
            "status": self.status.value,
            "user_id": self.user_id,
            "train_dataset_id": self.train_dataset_id,
            "val_dataset_id": self.val_dataset_id,
            "budget": self.budget,
            "model_ids": self.model_ids,
            "train_args": self.train_args,
            "datetime_started": iso_or_none(self.created_at),
            "datetime_stopped": iso_or_none(self.stopped_at),
            "error": self.error,
        }
        if with_workers:
            data["workers"] = [w.to_dict() for w in sorted(self.workers.values(), key=lambda w: (w.model_name, w.slot))]
        return data


@dataclass
class Trial:
    id: str
    train_job_id: str
    model_id: str
    model_name: str
    worker_key: str
    number: int
    knobs: dict[str, Any]
    fingerprint: str
    created_at: datetime
    status: TrialStatus = TrialStatus.PENDING
    screening: bool = False
    score: Optional[float] = None
    started_at: Optional[datetime] = None
    stopped_at: Optional[datetime] = None
    model_seconds: Optional[float] = None
    worker_seconds: Optional[float] = None
    params_key: Optional[str] = None
    logs_key: Optional[str] = None
    onnx_key: Optional[str] = None
    error_type: Optional[str] = None
    error_message: Optional[str] = None
    # A failed model check (the worker could not load the model or read its knob config):
    # recorded like a trial, with its logs, so the failure has a record; never ranked or served.
    model_check: bool = False

    @property
    def fully_trained(self) -> bool:
        """COMPLETED as a full trial, with parameters: the only kind ranked as a job's best and
        served. A screening trial (PolicyKnob EARLY_STOP / QUICK_EVAL on) trained briefly or was
        scored on part of the validation set: its score is not comparable with full trials'."""
        return (self.status is TrialStatus.COMPLETED and not self.screening and not self.model_check
                and self.params_key is not None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "train_job_id": self.train_job_id,
            "model_id": self.model_id,
            "model_name": self.model_name,
            "worker": self.worker_key,
            "no": self.number,
            "knobs": self.knobs,
            "status": self.status.value,
            "screening": self.screening,
            "model_check": self.model_check,
            # beside the seed's fields: a screening trial's score is a screening score, never a
            # fully trained model's; only fully trained trials are ranked and served
            "fully_trained": self.fully_trained,
            "score": self.score,
            "datetime_created": iso_or_none(self.created_at),
            "datetime_started": iso_or_none(self.started_at),
            "datetime_stopped": iso_or_none(self.stopped_at),
            "model_seconds": self.model_seconds,
            "worker_seconds": self.worker_seconds,
            "has_parameters": self.params_key is not None and self.status is TrialStatus.COMPLETED,
            "has_onnx": self.onnx_key is not None,
            "error": self.error_message,
            "error_type": self.error_type,
        }


#: Statuses of a queue API result.


class StopReason(str, Enum):
    """Why a train-job worker slot stops proposing trials: the ``reason`` code of a
    ``{"action": "stop", "reason": <code>, "detail": <text for people>}`` proposal."""

    JOB_FINAL = "JOB_FINAL"  # the train job is STOPPED or ERRORED
    CONSECUTIVE_ERRORS = "CONSECUTIVE_ERRORS"  # too many trials in a row failed
    TIME_BUDGET = "TIME_BUDGET"  # TIME_HOURS reached
    TRIAL_BUDGET = "TRIAL_BUDGET"  # MODEL_TRIAL_COUNT reached
    MODEL_DELETED = "MODEL_DELETED"
    KNOB_SPACE_EXHAUSTED = "KNOB_SPACE_EXHAUSTED"  # the advisor has no untried configuration left
    IMAGE_FAILED = "IMAGE_FAILED"  # the model's managed image failed to build (or was deleted)

    @property
    def is_error(self) -> bool:
        """Does the slot end on an error (its detail becomes the worker's ``error``)?"""
        return self in (StopReason.CONSECUTIVE_ERRORS, StopReason.IMAGE_FAILED)
