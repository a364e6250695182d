"""Response schemas: what each route answers on success, for the OpenAPI document (issue 9).

Field names are the services' (``to_dict`` of the entities, and the dicts services build), and
the seeds' where the seeds name them: these models describe the API, they do not shape it. The
API returns the services' dicts as they are; tests/api/test_response_schemas.py validates real
answers against the document, so a field added, renamed or retyped in a service without its
model here fails there (and in the schemathesis pass).

Conventions: every field is always present (required); ``Optional[X]`` means the value may be
``null``; a resource model allows no other field (``additionalProperties: false``), except
where the value is the user's or an engine's own (knobs, stats, configs), which are open
objects. Serving, queues, stress tests, projects and managed images are in
schemas_responses_serving.py.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.entities import (
    AccessRight,
    AuditEventType,
    DatasetStatus,
    Task,
    TrainJobStatus,
    TrialStatus,
    UserType,
    WorkerStatus,
)
from chalicelib.entities.events import EventKind
from chalicelib.entities.images import BuildState


class Out(BaseModel):
    """A response body: every field always there, no other (``additionalProperties: false``)."""

    model_config = ConfigDict(extra="forbid")


class OpenOut(BaseModel):
    """A response body whose fields beside the declared ones are not fixed (documents, engines)."""

    model_config = ConfigDict(extra="allow")


# -- meta ---------------------------------------------------------------------------------------


class LimitsOut(Out):
    max_direct_upload_bytes: int
    max_dataset_bytes: int
    max_model_file_bytes: int


class ComponentHealthOut(OpenOut):
    """One component of the local stack (moto, api, runners, consumers, watcher...)."""

    ok: bool
    detail: Optional[str]


class HealthOut(Out):
    """``GET /``. ``components`` is added by the local stack (chalicelib/local/watch.py); when
    one is down the answer is a 503 whose body also carries ``error`` (the Error schema)."""

    service: str
    version: str
    status: Literal["ok", "unavailable"]
    limits: LimitsOut
    components: dict[str, ComponentHealthOut] = None  # type: ignore[assignment]  # local stack only


class OpenApiDocumentOut(OpenOut):
    """This document (OpenAPI 3.1)."""

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]


# -- users, sessions, API keys, audit -----------------------------------------------------------


class UserOut(Out):
    id: str
    email: str
    user_type: UserType
    datetime_created: Optional[datetime]
    banned_date: Optional[datetime]
    iam_principals: list[str]  # IAM user or role ARNs whose SigV4-signed requests act as this user


class SessionOut(Out):
    """A login: the bearer token (valid until ``expires_at``) and who it is for."""

    token: str
    expires_at: datetime
    user: UserOut


class LoggedOutOut(Out):
    logged_out: Literal[True]


class ApiKeyOut(Out):
    """An API key as listed: never the key itself."""

    id: str
    name: str
    datetime_created: Optional[datetime]


class CreatedApiKeyOut(ApiKeyOut):
    key: str  # shown only in this answer


class RevokedApiKeyOut(ApiKeyOut):
    revoked: Literal[True]


class AuditEventOut(Out):
    id: str
    datetime: datetime
    event: AuditEventType
    outcome: Literal["success", "failure", "locked_out"]
    email: str
    source_ip: Optional[str]
    details: dict[str, Any]


class AuditEventsOut(Out):
    events: list[AuditEventOut]
    next_page_token: Optional[str]  # null on the last page


class EventDetailOut(Out):
    """chalicelib/entities/events.py's ``EventDetail``."""

    id: str
    kind: EventKind
    status: str
    previous_status: Optional[str]
    reason: Optional[str]
    owner_id: str
    project_id: Optional[str]
    app: Optional[str]
    time: datetime
    links: dict[str, str]
    data: dict[str, Any]


class EventOut(Out):
    """An event as EventBridge carries it (its own field names: ``detail-type``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    event_id: Optional[str]
    source: Literal["kilele"]
    detail_type: str = Field(alias="detail-type")
    detail: EventDetailOut


class EventsOut(Out):
    events: list[EventOut]
    next_page_token: Optional[str]  # given after the last page too: ask again later for what came since


# -- datasets and models ------------------------------------------------------------------------


class DatasetOut(Out):
    id: str
    name: str
    task: Task
    status: DatasetStatus
    size_bytes: int
    target_column: Optional[str]
    stats: dict[str, Any]  # what the format check found (rows, columns, classes...)
    error: Optional[str] = None  # why an INVALID dataset was refused
    owner_id: str
    datetime_created: Optional[datetime]


class PresignedPostOut(Out):
    """An HTTP form upload: POST the file to ``url`` with ``fields`` as form fields."""

    url: str
    fields: dict[str, str]


class DirectUploadOut(Out):
    """Where a SigV4-signed IAM user may put the file itself with S3's own API (multipart):
    the key is under ``direct/<IAM user name>/``, which infra's transfer policy lets only that
    user write. ``endpoint_url`` is set only on the local stack (its moto S3)."""

    bucket: str
    key: str
    endpoint_url: Optional[str]


class DirectDownloadOut(Out):
    """Where a SigV4-signed IAM user may read the file itself with S3's own API (ranged GETs):
    the key is under ``direct/<IAM user name>/``, which infra's transfer policy lets only that
    user read. ``endpoint_url`` is set only on the local stack (its S3 gate)."""

    bucket: str
    key: str
    endpoint_url: Optional[str]


class DatasetUploadOut(Out):
    dataset: DatasetOut
    upload: PresignedPostOut
    direct: Optional[DirectUploadOut]  # null unless the request was signed by an IAM user


class ModelImageOut(Out):
    """The managed image a model's dependencies resolved to, and its build's state."""

    name: str
    status: Optional[BuildState]  # null: the image was deleted
    error: Optional[str]


class ModelOut(Out):
    id: str
    name: str
    task: Task
    model_class: str
    access_right: AccessRight
    dependencies: dict[str, str]
    docker_image: Optional[str]
    train_job_count: int
    knob_config: Optional[dict[str, Any]]  # learnt on first training
    user_id: str
    datetime_created: Optional[datetime]
    # The managed image its dependencies resolved to (null: the worker runtime): its name and
    # build state, or only its name where the platform wires no managed images.
    image: Optional[Union[ModelImageOut, str]]


# -- train jobs and trials ----------------------------------------------------------------------


class TrainJobCreatedOut(Out):
    id: str
    app: str
    app_version: int


class TrainJobOut(Out):
    id: str
    app: str
    app_version: int
    task: Task
    status: TrainJobStatus
    user_id: str
    train_dataset_id: str
    val_dataset_id: str
    budget: dict[str, float]
    model_ids: list[str]
    train_args: dict[str, Any]
    datetime_started: Optional[datetime]
    datetime_stopped: Optional[datetime]
    error: Optional[str]


class TrainWorkerOut(Out):
    """One search slot of a train job (a loop of trials of one model)."""

    service_id: str
    model_id: str
    model_name: str
    slot: int
    status: WorkerStatus
    execution_arn: Optional[str]
    datetime_started: Optional[datetime]
    datetime_stopped: Optional[datetime]
    error: Optional[str]


class TrainJobDetailOut(TrainJobOut):
    workers: list[TrainWorkerOut]
    # {model id: its managed image}, for models that have one; absent where the platform wires
    # no managed images.
    images: dict[str, ModelImageOut] = None  # type: ignore[assignment]


class TrialOut(Out):
    id: str
    train_job_id: str
    model_id: str
    model_name: str
    worker: str
    no: int
    knobs: dict[str, Any]
    status: TrialStatus
    screening: bool
    model_check: bool
    fully_trained: bool
    score: Optional[float]
    datetime_created: Optional[datetime]
    datetime_started: Optional[datetime]
    datetime_stopped: Optional[datetime]
    model_seconds: Optional[float]
    worker_seconds: Optional[float]
    has_parameters: bool
    has_onnx: bool
    error: Optional[str]
    error_type: Optional[str]


class TrialDetailOut(TrialOut):
    model_class: Optional[str]  # null when the model was deleted since


class TrialLogsOut(Out):
    trial_id: str
    status: TrialStatus
    logs: str


class TrialParametersOut(Out):
    trial_id: str
    format: Literal["npz"]
    url: str  # presigned, short-lived
    direct: Optional[DirectDownloadOut]  # null unless the request was signed by an IAM user


__all__ = [
    "Out", "OpenOut", "LimitsOut", "ComponentHealthOut", "HealthOut", "OpenApiDocumentOut", "UserOut", "SessionOut",
    "LoggedOutOut", "ApiKeyOut", "CreatedApiKeyOut", "RevokedApiKeyOut", "AuditEventOut", "AuditEventsOut", "EventDetailOut", "EventOut", "EventsOut",
    "DatasetOut", "PresignedPostOut", "DirectDownloadOut", "DatasetUploadOut", "ModelImageOut", "ModelOut", "TrainJobCreatedOut", "TrainJobOut",
    "TrainWorkerOut", "TrainJobDetailOut", "TrialOut", "TrialDetailOut", "TrialLogsOut", "TrialParametersOut",
]
