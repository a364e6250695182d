"""Plain domain entities: what services work with and what the API returns.

The store converts its pynamodb items to these at its boundary, so nothing above the store
knows about DynamoDB.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Optional


class UserType(str, Enum):
    SUPERADMIN = "SUPERADMIN"
    ADMIN = "ADMIN"
    MODEL_DEVELOPER = "MODEL_DEVELOPER"
    APP_DEVELOPER = "APP_DEVELOPER"

    @property
    def is_admin(self) -> bool:
        return self in (UserType.SUPERADMIN, UserType.ADMIN)


class Task(str, Enum):
    TABULAR_CLASSIFICATION = "TABULAR_CLASSIFICATION"
    TABULAR_REGRESSION = "TABULAR_REGRESSION"
    IMAGE_CLASSIFICATION = "IMAGE_CLASSIFICATION"


class AccessRight(str, Enum):
    PRIVATE = "PRIVATE"
    PUBLIC = "PUBLIC"


class DatasetStatus(str, Enum):
    UPLOADING = "UPLOADING"  # presigned upload handed out, file not yet checked
    READY = "READY"


def _iso(value: Optional[datetime]) -> Optional[str]:
    return value.isoformat() if value else None


@dataclass
class User:
    id: str
    email: str
    user_type: UserType
    password_hash: str
    created_at: datetime
    banned_at: Optional[datetime] = None

    @property
    def is_banned(self) -> bool:
        return self.banned_at is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "user_type": self.user_type.value,
            "datetime_created": _iso(self.created_at),
            "banned_date": _iso(self.banned_at),
        }


@dataclass
class Session:
    token_hash: str
    user_email: str
    created_at: datetime
    expires_at: datetime


@dataclass
class ApiKey:
    key_id: str
    owner_email: str
    name: str
    secret_hash: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.key_id, "name": self.name, "datetime_created": _iso(self.created_at)}


@dataclass
class Dataset:
    id: str
    owner_id: str
    name: str
    task: Task
    status: DatasetStatus
    object_key: str
    created_at: datetime
    size_bytes: int = 0
    target_column: Optional[str] = None
    stats: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "task": self.task.value,
            "status": self.status.value,
            "size_bytes": self.size_bytes,
            "target_column": self.target_column,
            "stats": self.stats,
            "owner_id": self.owner_id,
            "datetime_created": _iso(self.created_at),
        }


@dataclass
class Model:
    id: str
    owner_id: str
    name: str
    task: Task
    model_class: str
    object_key: str
    created_at: datetime
    access_right: AccessRight = AccessRight.PRIVATE
    dependencies: dict[str, str] = field(default_factory=dict)
    docker_image: Optional[str] = None
    train_job_count: int = 0  # train jobs that use the model; deletion is refused while > 0
    knob_config: Optional[dict[str, Any]] = None  # learnt from the worker on first training

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("object_key")
        data["user_id"] = data.pop("owner_id")
        data["task"] = self.task.value
        data["access_right"] = self.access_right.value
        data["datetime_created"] = _iso(data.pop("created_at"))
        return data


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
            "datetime_started": _iso(self.started_at),
            "datetime_stopped": _iso(self.stopped_at),
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
            "datetime_started": _iso(self.created_at),
            "datetime_stopped": _iso(self.stopped_at),
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
            "score": self.score,
            "datetime_created": _iso(self.created_at),
            "datetime_started": _iso(self.started_at),
            "datetime_stopped": _iso(self.stopped_at),
            "model_seconds": self.model_seconds,
            "worker_seconds": self.worker_seconds,
            "has_parameters": self.params_key is not None and self.status is TrialStatus.COMPLETED,
            "has_onnx": self.onnx_key is not None,
            "error": self.error_message,
            "error_type": self.error_type,
        }


#: Statuses of a queue API result.
OK = "ok"
ERROR = "error"


def queue_key(user_id: str, queue: str) -> str:
    """The results partition of one user's named queue."""
    return f"{user_id}#{queue}"


@dataclass
class ServingResult:
    """A queue API result (Cluster Serving's output queue), per queue and uri."""

    queue_key: str
    uri: str
    status: str  # OK | ERROR
    created_at: datetime
    expires_at: int  # epoch seconds (the table's TTL attribute)
    value: Optional[str] = None  # the prediction as JSON text
    error: Optional[str] = None
    default: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "status": self.status,
            "value": self.decoded_value(),
            "error": self.error,
            "default": self.default,
            "created_at": _iso(self.created_at),
            "expires_at": self.expires_at,
        }

    def decoded_value(self) -> Any:
        return json.loads(self.value) if self.value is not None else None


class InferenceJobStatus(str, Enum):
    STARTED = "STARTED"  # endpoint being created
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    ERRORED = "ERRORED"


@dataclass
class InferenceJob:
    """An ensemble of a stopped train job's best trials (one per model), served by one endpoint."""

    id: str
    user_id: str
    app: str
    app_version: int
    train_job_id: str
    task: Task
    endpoint_name: str
    bundle_key: str
    members: list[dict[str, Any]]
    created_at: datetime
    status: InferenceJobStatus = InferenceJobStatus.STARTED
    budget: dict[str, float] = field(default_factory=dict)
    predictor_url: Optional[str] = None
    stopped_at: Optional[datetime] = None
    error: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "app": self.app,
            "app_version": self.app_version,
            "train_job_id": self.train_job_id,
            "task": self.task.value,
            "status": self.status.value,
            "user_id": self.user_id,
            "budget": self.budget,
            "predictor_url": self.predictor_url,
            "endpoint_name": self.endpoint_name,
            "workers": [{"trial": m} for m in self.members],
            "datetime_started": _iso(self.created_at),
            "datetime_stopped": _iso(self.stopped_at),
            "error": self.error,
        }


class InputType(str, Enum):
    """Clipper's application input types."""

    INTS = "ints"
    FLOATS = "floats"
    DOUBLES = "doubles"
    STRINGS = "strings"
    BYTES = "bytes"


@dataclass
class Application:
    """Serving settings of an app (Clipper's application): what it accepts, how long a client
    waits (latency SLO) before the default output, which version answers, top-N."""

    user_id: str
    name: str
    created_at: datetime
    input_type: Optional[InputType] = None
    default_output: Any = None
    slo_micros: int = 1_000_000
    top_n: Optional[int] = None
    version: Optional[int] = None  # None: the latest version with a running inference job
    previous_version: Optional[int] = None  # before the last switch (-1: "the latest"); for rollback

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_type": self.input_type.value if self.input_type else None,
            "default_output": self.default_output,
            "slo_micros": self.slo_micros,
            "top_n": self.top_n,
            "version": self.version,
            "previous_version": self.previous_version,
            "datetime_created": _iso(self.created_at),
        }


class StopReason(str, Enum):
    """Why a train-job worker slot stops proposing trials: the ``reason`` code of a
    ``{"action": "stop", "reason": <code>, "detail": <text for people>}`` proposal."""

    JOB_FINAL = "JOB_FINAL"  # the train job is STOPPED or ERRORED
    CONSECUTIVE_ERRORS = "CONSECUTIVE_ERRORS"  # too many trials in a row failed
    TIME_BUDGET = "TIME_BUDGET"  # TIME_HOURS reached
    TRIAL_BUDGET = "TRIAL_BUDGET"  # MODEL_TRIAL_COUNT reached
    MODEL_DELETED = "MODEL_DELETED"
    KNOB_SPACE_EXHAUSTED = "KNOB_SPACE_EXHAUSTED"  # the advisor has no untried configuration left

    @property
    def is_error(self) -> bool:
        """Does the slot end on an error (its detail becomes the worker's ``error``)?"""
        return self is StopReason.CONSECUTIVE_ERRORS
