"""The ports: small Protocols for every outside dependency a service uses.

Services (chalicelib/services/) import these, entities and errors only — never boto3, pynamodb,
``adapters/`` or ``store/``. Each port has an AWS implementation (``adapters/`` and ``store/``),
sometimes a local twin beside it (``adapters/<concern>/local.py``), and in-memory fakes in the unit
tests. :mod:`chalicelib.wiring` picks the implementations.

The errors a port may raise are defined here too, so a service can catch them without knowing
which implementation raised them.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, Iterable, Optional, Protocol

from chalicelib.entities import (
    ApiKey,
    Application,
    Dataset,
    InferenceJob,
    InferenceJobStatus,
    Model,
    ServingResult,
    Session,
    Task,
    TrainJob,
    TrainJobStatus,
    Trial,
    TrialStatus,
    User,
    Worker,
)

# -- object storage ---------------------------------------------------------------------------


class BlobStore(Protocol):
    """One bucket of objects addressed by key (S3). A missing key raises ``errors.NotFound``."""

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...

    def put_file(self, key: str, fileobj: IO[bytes]) -> None: ...

    def get_bytes(self, key: str) -> bytes: ...

    def download_to(self, key: str, fileobj: IO[bytes]) -> None: ...

    def size(self, key: str) -> int: ...

    def delete(self, key: str) -> None: ...

    def copy(self, source_key: str, key: str) -> None:
        """A server-side copy within the bucket (``errors.NotFound`` when ``source_key`` is missing)."""
        ...

    def presigned_get(self, key: str, expires_seconds: int) -> str: ...

    def presigned_post(self, key: str, max_bytes: int, expires_seconds: int) -> dict[str, Any]: ...


class UrlFetcher(Protocol):
    """Downloads a user-given http(s) URL into ``out``, at most ``max_bytes``; returns the size."""

    def fetch(self, url: str, out: IO[bytes], max_bytes: int) -> int: ...


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...

    def verify(self, password_hash: str, password: str) -> bool: ...


# -- workflows and trial dispatch -------------------------------------------------------------


class WorkflowRunner(Protocol):
    """Executions of one state machine (Step Functions; moto locally)."""

    def start(self, name: str, payload: dict[str, Any]) -> str:
        """Start execution ``name`` (idempotent by name); returns its ARN."""

    def stop(self, execution_arn: Optional[str], cause: str) -> None:
        """Stop an execution if it still runs."""


class TaskTokens(Protocol):
    """Answers a waiting ``.waitForTaskToken`` task on behalf of a run that cannot."""

    def fail(self, token: str, error: str, cause: str) -> bool:
        """Fail the task; False if the token was already answered or its execution ended."""

    def succeed(self, token: str, output: Any) -> bool:
        """Complete the task with ``output``; False if nobody waits for it any more."""

    def fail_run(self, message: dict[str, Any], error: str, cause: str) -> bool:
        """Fail a run that died (``{"task_token", "trial"}``): its queue task, or, once its worker
        reported the start, its run task (whose token is at the trial's ``run_token_key``)."""


class TrialDispatcher(Protocol):
    """Where a trial (or a model description) runs: AWS Batch, or a local worker process."""

    def dispatch(self, message: dict[str, Any]) -> str:
        """Start running ``message`` (``{"task_token", "trial"}``); returns an id of the run."""


# -- endpoints --------------------------------------------------------------------------------


class EndpointFailure(Exception):
    """Base of endpoint errors (turned into domain errors by the predict service)."""


class EndpointUnavailable(EndpointFailure):
    """The endpoint does not exist, is not in service, or its process died."""


class EndpointTimeout(EndpointFailure):
    """No answer within the deadline."""


class EndpointRejected(EndpointFailure):
    """The model server answered 4xx: the queries are wrong (message from the server)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class EndpointModelError(EndpointFailure):
    """The model server answered ``model_error``: the model raised (anything but the kit's
    ``InvalidQuery``) or answered something unusable (message from the server)."""


@dataclass
class EndpointState:
    """``restarts``: how often the platform started the endpoint's dead server again since it was
    deployed, with the last time's reason and time (None: the runner cannot say, e.g. SageMaker)."""

    status: str  # Creating | InService | Restarting (its server died; it is started again) | Failed | Deleted
    reason: Optional[str] = None
    restarts: Optional[int] = None
    last_restart_reason: Optional[str] = None
    last_restart_at: Optional[datetime] = None


class EndpointRunner(Protocol):
    """Serves inference-job bundles: SageMaker endpoints, or local inference-server processes."""

    def deploy(self, name: str, bundle_key: str, gpu: bool = False, image: Optional[str] = None) -> None:
        """Start serving the bundle (a tar.gz in the data bucket) under ``name``; ``image``: the
        managed image to serve in (its reference: an ECR image URI on AWS, ``venv://DIR``
        locally; None: the inference image). A reference the runner cannot run is
        :class:`errors.Unprocessable`."""

    def state(self, name: str) -> EndpointState: ...

    def invoke(self, name: str, body: bytes, timeout_seconds: float) -> bytes:
        """POST ``body`` to the endpoint's /invocations, telling the server the deadline (so that
        it abandons a call nobody waits for); raises an :class:`EndpointFailure`."""

    def names(self, prefix: str) -> list[str]:
        """Every endpoint this runner holds whose name starts with ``prefix`` (on SageMaker also
        endpoint configs and models: what a failed or interrupted deploy may have left)."""

    def delete(self, name: str) -> None:
        """Delete the endpoint and whatever was made for it (config, model, autoscaling); an
        absent one is not an error."""


# -- serving metrics and the request queue ----------------------------------------------------


class MetricsSink(Protocol):
    """Where per-request metrics also go besides the app-metrics table (CloudWatch on AWS)."""

    def emit(self, app: str, latency_ms: float, queries: int, error: bool, default: bool) -> None: ...


class NoMetricsSink:
    """The sink when no metrics service is configured."""

    def emit(self, app: str, latency_ms: float, queries: int, error: bool, default: bool) -> None:
        return None


#: SQS's limit for one message (and for the sum of one batch).
MAX_QUEUE_MESSAGE_BYTES = 256 * 1024


class QueueUnreachable(Exception):
    """The request queue could not be asked."""


class RequestQueue(Protocol):
    """The queue API's request queue (SQS)."""

    def backlog(self) -> int: ...

    def send(self, bodies: list[str]) -> dict[int, str]:
        """Send every body; returns ``{index: reason}`` of those NOT sent."""


# -- repositories -----------------------------------------------------------------------------


class UserStore(Protocol):
    def add(self, user: User) -> None:
        """Store a new user; ``Conflict`` if the email is taken."""

    def get(self, email: str) -> Optional[User]: ...

    def list(self) -> list[User]: ...

    def mark_banned(self, email: str, at: datetime) -> User: ...

    def link_iam_principal(self, email: str, principal: str) -> User:
        """Link ``principal`` to the user; ``Conflict`` if another user has it, ``NotFound``
        if there is no such user. Linking a principal the user already has changes nothing."""

    def unlink_iam_principal(self, email: str, principal: str) -> User:
        """Unlink ``principal``; ``NotFound`` unless the user has it."""

    def get_by_iam_principal(self, principal: str) -> Optional[User]: ...


class SessionStore(Protocol):
    def add(self, session: Session) -> None: ...

    def get_live(self, token_hash: str, now: datetime) -> Optional[Session]: ...

    def delete(self, token_hash: str) -> None: ...


class ApiKeyStore(Protocol):
    def add(self, key: ApiKey) -> None: ...

    def get(self, key_id: str) -> Optional[ApiKey]: ...

    def list_by_owner(self, owner_email: str) -> list[ApiKey]: ...

    def delete(self, key_id: str, owner_email: str) -> None: ...


class DatasetStore(Protocol):
    def save(self, dataset: Dataset) -> None: ...

    def get(self, dataset_id: str) -> Optional[Dataset]: ...

    def list(self, owner_id: Optional[str] = None, task: Optional[Task] = None) -> list[Dataset]: ...

    def delete(self, dataset_id: str) -> None: ...


class ModelStore(Protocol):
    def add(self, model: Model) -> None:
        """Store a new model and claim its name for its owner; ``Conflict`` if taken."""

    def get(self, model_id: str) -> Optional[Model]: ...

    def list_all(self) -> list[Model]: ...

    def list_own_and_public(self, owner_id: str) -> list[Model]: ...

    def delete_unused(self, model: Model) -> None:
        """Delete the model unless a train job uses it (``Conflict``)."""

    def set_knob_config(self, model_id: str, knob_config: dict) -> None: ...


class CounterStore(Protocol):
    def increment(self, key: str, limit: Optional[int] = None) -> Optional[int]:
        """The counter's new value, or None if it already reached ``limit``."""


class TrainJobStore(Protocol):
    def add(self, job: TrainJob) -> None: ...

    def get(self, job_id: str) -> Optional[TrainJob]: ...

    def list_by_user(self, user_id: str) -> list[TrainJob]: ...

    def list_of_app(self, user_id: str, app: str) -> list[TrainJob]: ...

    def list_all(self) -> list[TrainJob]: ...

    def set_status(self, job_id: str, status: TrainJobStatus, only_from: tuple[TrainJobStatus, ...],
                   at: Optional[datetime] = None, error: Optional[str] = None) -> bool:
        """Change the status only from one of ``only_from``; False (no change) otherwise."""

    def put_worker(self, job_id: str, worker: Worker) -> None: ...

    def update_worker(self, job_id: str, key: str, **fields: Any) -> None: ...


class TrialStore(Protocol):
    def claim_fingerprint(self, job_id: str, model_id: str, fingerprint: str, trial_id: str) -> bool: ...

    def add(self, trial: Trial) -> None: ...

    def get(self, trial_id: str) -> Optional[Trial]: ...

    def list_of_job(self, job_id: str) -> list[Trial]: ...

    def finish(self, trial_id: str, status: TrialStatus, at: datetime,
               only_from: tuple[TrialStatus, ...] = (TrialStatus.PENDING, TrialStatus.RUNNING),
               **fields: Any) -> bool: ...


class InferenceJobStore(Protocol):
    def add(self, job: InferenceJob) -> None: ...

    def get(self, job_id: str) -> Optional[InferenceJob]: ...

    def list_by_user(self, user_id: str) -> list[InferenceJob]: ...

    def list_of_app(self, user_id: str, app: str) -> list[InferenceJob]: ...

    def list_live_of_app(self, user_id: str, app: str) -> list[InferenceJob]:
        """The app's STARTED or RUNNING jobs only (the predict path's read)."""

    def list_all(self) -> list[InferenceJob]: ...

    def set_status(self, job_id: str, status: InferenceJobStatus, only_from: tuple[InferenceJobStatus, ...],
                   at: Optional[datetime] = None, error: Optional[str] = None) -> bool: ...

    def set_restarts(self, job_id: str, restarts: int, last_restart: Optional[dict[str, Any]]) -> None:
        """Record the endpoint's restarts (``last_restart``: ``{"reason", "at"}``) on an existing job."""


@dataclass(frozen=True)
class ServingState:
    """What answers an app's predict requests, as one consistent read of the app's row gives it:
    the registered application (None if the app was never registered, or was deleted) and the
    ids of its live (STARTED or RUNNING) inference jobs. ``tracked`` is False for an app whose
    live jobs were never recorded on its row (jobs created before the row kept them)."""

    app: Optional[Application]
    live_job_ids: frozenset[str] = frozenset()
    tracked: bool = False


class ApplicationStore(Protocol):
    """Registered applications, and each app's serving record (its live inference jobs), kept
    on the same row whether the app is registered or not."""

    def add(self, app: Application) -> None: ...

    def get(self, user_id: str, name: str) -> Optional[Application]: ...

    def list_of_user(self, user_id: str) -> list[Application]: ...

    def save(self, app: Application) -> None: ...

    def switch_version(self, user_id: str, name: str, version: Optional[int], expected: Optional[int]) -> bool: ...

    def delete(self, user_id: str, name: str) -> None:
        """Unregister the app; its serving record (live inference jobs) stays."""

    def serving_state(self, user_id: str, name: str) -> ServingState:
        """The app and its live inference jobs, in one consistent read (the predict path's)."""

    def add_live_jobs(self, user_id: str, name: str, job_ids: Iterable[str]) -> None:
        """Record inference jobs as live (before they are stored as STARTED)."""

    def remove_live_job(self, user_id: str, name: str, job_id: str) -> None:
        """Forget a live inference job (before it is stored as STOPPED or ERRORED)."""


class AppMetricsStore(Protocol):
    def record(self, user_app: str, at: datetime, latency_ms: float, queries: int, error: bool, default: bool,
               batch_size: Optional[int] = None) -> None: ...

    def add_minute(self, user_app: str, minute: int, counters: dict[str, int], histogram: dict[int, int]) -> None:
        """Add counts to one app-minute (``minute``: epoch seconds // 60) in one atomic write:
        ``counters`` by name (requests, queries, errors, defaults, batches, batch_size_sum) and
        ``histogram`` by latency bucket (chalicelib.latency)."""

    def window(self, user_app: str, since: datetime) -> dict[str, Any]: ...


class ServingResultStore(Protocol):
    def put_many(self, results: Iterable[ServingResult]) -> None: ...

    def get(self, key: str, uri: str) -> Optional[ServingResult]: ...

    def list(self, key: str) -> list[ServingResult]: ...

    def take(self, result: ServingResult) -> bool: ...


# Projects and stress tests (seed 002): their own module, re-exported here.
from chalicelib.ports_stress import ProjectStore, StressTestJobStore  # noqa: E402,F401
# Logins (password policy, failed-login counters, audit log): their own module, re-exported here.
from chalicelib.ports_logins import AuditLog, LoginAttemptStore, LoginFailures, PasswordPolicy, PasswordRefusal  # noqa
from chalicelib.ports_images import (  # noqa: E402,F401 - managed images (seed 002), platform images (issue 13)
    BuildClaim, ImageBuilder, ImageBuildLedger, ManagedImageStore, PlatformImageBuild, PlatformImageBuilder,
)
from chalicelib.ports_events import EventPublisher, NoEventPublisher  # noqa: E402,F401 - job events (issue 12)
from chalicelib.ports_schedules import Scheduler, SchedulerClock  # noqa: E402,F401 - schedules (issue 12)
