"""Serving: inference jobs, applications and queue API results."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Optional

from chalicelib.entities.accounts import Task, iso_or_none


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
            "created_at": iso_or_none(self.created_at),
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
    # How often the platform started the endpoint's dead server again (None: it cannot say, as
    # on SageMaker, which replaces failed instances itself), and the last time: {"reason", "at"}.
    restarts: Optional[int] = None
    last_restart: Optional[dict[str, Any]] = None

    @property
    def predictor_host(self) -> Optional[str]:
        """Seed 001's ``predictor_host`` (seed 000's ``query_host``): ``POST
        http://{predictor_host}/predict`` with the caller's key is the app's predict route. The
        API serves every app at one address, so the "host" carries the app's path:
        ``127.0.0.1:8000/apps/iris_app``."""
        if not self.predictor_url:
            return None
        return self.predictor_url.split("://", 1)[-1].removesuffix("/predict")

    def workers(self) -> list[dict[str, Any]]:
        """One worker per served trial, as the seeds list them: the service that runs it (the
        job's endpoint, which serves the whole ensemble), its status, its replicas (serving
        processes at start: one; SageMaker's autoscaling may add instances) and the trial; beside
        them, how often the serving process was restarted after it died and the last restart's
        ``{"reason", "at"}`` (the whole ensemble is one process: every worker shows the same)."""
        return [{"service_id": self.endpoint_name, "status": self.status.value, "replicas": 1,
                 "datetime_started": iso_or_none(self.created_at), "datetime_stopped": iso_or_none(self.stopped_at),
                 "trial": member, "restarts": self.restarts, "last_restart": self.last_restart}
                for member in self.members]

    def to_dict(self) -> dict[str, Any]:
        host = self.predictor_host
        return {
            "id": self.id,
            "app": self.app,
            "app_version": self.app_version,
            "train_job_id": self.train_job_id,
            "task": self.task.value,
            "status": self.status.value,
            "user_id": self.user_id,
            "budget": self.budget,
            "predictor_host": host,
            "query_host": host,
            "predictor_url": self.predictor_url,
            "endpoint_name": self.endpoint_name,
            "workers": self.workers(),
            "datetime_started": iso_or_none(self.created_at),
            "datetime_stopped": iso_or_none(self.stopped_at),
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
    # Traffic capture: the percentage of predict requests whose queries and answers are written
    # to S3 in SageMaker Data Capture's layout (chalicelib/capture_format.py); 0: off.
    capture_percent: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_type": self.input_type.value if self.input_type else None,
            "default_output": self.default_output,
            "slo_micros": self.slo_micros,
            "top_n": self.top_n,
            "version": self.version,
            "previous_version": self.previous_version,
            "capture_percent": self.capture_percent,
            "datetime_created": iso_or_none(self.created_at),
        }
