"""The composition root: the one module that builds adapters, repositories and services.

``build(settings, **overrides)`` builds everything from one settings object; an override replaces
one part by name (``build(settings, endpoints=FakeRunner(), clock=frozen)``), so tests never patch
module globals. Twins are picked by URI scheme (``endpoints_uri``, ``trial_dispatch_uri``), like a
store registry. The API's handlers reach the process's services through :func:`services`, which
builds them from the environment's settings on first use (on Lambda) unless a caller (the local
stack, a test) has :func:`install`-ed its own.
"""
from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional

from chalicelib import resources
from chalicelib.direct_transfers import DirectTransfers
from chalicelib.image_archives import ArchiveLimits
from chalicelib.ports import (
    BlobStore,
    EndpointRunner,
    MetricsSink,
    NoMetricsSink,
    TaskTokens,
    TrialDispatcher,
)
from chalicelib.services import Clock, utc_now
from chalicelib.services.apps import ApplicationService
from chalicelib.services.audit import AuditService
from chalicelib.services.auth import AuthService
from chalicelib.services.bundles import BundleBuilder
from chalicelib.services.capture import CaptureBuffer
from chalicelib.services.continuous_tests import ContinuousTestService
from chalicelib.services.datasets import DatasetService
from chalicelib.services.dataset_checks import DatasetCheckJob
from chalicelib.services.events import EventService
from chalicelib.services.job_events import JobEvents, publishing_stores
from chalicelib.services.schedule_targets import ScheduleTargets
from chalicelib.services.ct_schedules import TARGET as CT_SCHEDULE_TARGET, CTScheduleService
from chalicelib.services.app_timeline import AppTimeline
from chalicelib.services.retrain_policies import RetrainLoopService
from chalicelib.services.retrain_deploy import RetrainDeployer
from chalicelib.services.ct_handover import CTHandover
from chalicelib.services.event_listeners import ListeningPublisher
from chalicelib.services.schedules import SchedulerClockService
from chalicelib.services.gpus import GpuSupport
from chalicelib.services.inference_jobs import InferenceJobService
from chalicelib.services.labels import LabelService
from chalicelib.services.login_throttle import LoginThrottle, ThrottleRule
from chalicelib.services.managed_images import ManagedImageService
from chalicelib.services.model_images import ModelImages, StressImages
from chalicelib.services.models import ModelService
from chalicelib.services.predict import PredictService
from chalicelib.services.queues import ServingQueueService
from chalicelib.services.projects import ProjectService
from chalicelib.services.serving_cache import ProcessServingStates
from chalicelib.services.stress_messages import StressMessageConfig
from chalicelib.services.stress_tests import StressTestService
from chalicelib.services.train_jobs import TrainJobService
from chalicelib.services.trial_loop import TrialLoop, TrialLoopConfig
from chalicelib.services.users import UserService
from chalicelib.settings import Settings
from chalicelib.wiring_datasets import dataset_check_dispatcher
from chalicelib.wiring_events import event_publisher
from chalicelib.wiring_events import scheduler as scheduler_for
from chalicelib.wiring_metrics import ct_metrics_sink
from chalicelib.services.ct_metrics import CTMetrics
from chalicelib.services.platform_images import PlatformImageService
from chalicelib.wiring_images import container_images, image_builder, platform_image_builder, serving_base
from chalicelib.wiring_runtimes import (
    child_aws_environment,
    endpoint_runner,
    gpu_support,
    trial_dispatcher,
)


@dataclass(frozen=True)
class Services:
    """Everything the API, the workflow handlers and the local stack call."""

    settings: Settings
    auth: AuthService
    audit: AuditService
    users: UserService
    datasets: DatasetService
    models: ModelService
    train_jobs: TrainJobService
    trial_loop: TrialLoop
    inference_jobs: InferenceJobService
    apps: ApplicationService
    predict: PredictService
    queues: ServingQueueService
    projects: ProjectService
    stress_tests: StressTestService
    managed_images: ManagedImageService
    endpoints: EndpointRunner
    trial_dispatcher: TrialDispatcher
    tokens: TaskTokens
    aws: Any  # chalicelib.adapters.aws.AwsClients: for the local stack's components
    labels: Any = None  # chalicelib.services.labels.LabelService (traffic capture's ground truth)
    events: Any = None  # chalicelib.services.events.EventService (GET /events)
    scheduler: Any = None  # chalicelib.ports.Scheduler (EventBridge Scheduler; the local scheduler locally)
    schedule_targets: Any = None  # services.schedule_targets.ScheduleTargets: what a schedule's firing invokes
    scheduler_clock: Any = None  # services.schedules.SchedulerClockService (POST /local/scheduler/advance)
    continuous_tests: Any = None  # ContinuousTestService (CT instances; its record steps wrap stress tests')
    ct_schedules: Any = None  # services.ct_schedules.CTScheduleService (CT instances' schedules and data sources)
    app_timeline: Any = None  # services.app_timeline.AppTimeline (GET /apps/{app}/timeline)
    retrain: Any = None  # services.retrain_policies.RetrainLoopService (apps' retrain policies; reacts to breaches)
    platform_images: Any = None  # services.platform_images.PlatformImageService (`kilele images build`, issue 13)

    def close(self) -> None:
        """Flush what is buffered (metrics); the local stack and tests call it when they stop."""
        self.predict.close()
        self.managed_images.close()


class _Parts:
    """Each part built once, on first use, unless ``overrides`` has it."""

    def __init__(self, settings: Settings, overrides: dict[str, Any]):
        self.settings = settings
        self._overrides = overrides
        self._built: dict[str, Any] = {}

    def get(self, name: str, factory: Callable[[], Any]) -> Any:
        if name in self._overrides:
            return self._overrides[name]
        if name not in self._built:
            self._built[name] = factory()
        return self._built[name]

    def unused_overrides(self, known: set[str]) -> set[str]:
        return set(self._overrides) - known


_KNOWN_PARTS = {
    "aws", "clock", "blobs", "hasher", "url_fetcher", "workflows", "tokens", "endpoints", "trial_dispatcher",
    "metrics_sink", "request_queue", "advisor", "users", "sessions", "api_keys", "datasets", "models",
    "train_jobs", "trials", "counters", "inference_jobs", "apps", "app_metrics", "serving_results",
    "projects", "stress_test_jobs", "stress_workflows", "password_policy", "login_attempts", "audit_events",
    "gpus", "managed_image_records", "image_builder", "image_workflows", "event_publisher", "platform_image_builder",
    "scheduler", "schedule_targets",
    "ct_instances", "dataset_check_dispatcher", "ct_metrics_sink",
}


def build(settings: Settings, **overrides: Any) -> Services:
    """Build every adapter and service from ``settings``; ``overrides`` replace parts by name
    (see ``_KNOWN_PARTS``: ports such as ``blobs``, ``endpoints``, the repositories, ``clock``)."""
    unknown = set(overrides) - _KNOWN_PARTS
    if unknown:
        raise TypeError(f"unknown parts to override: {', '.join(sorted(unknown))}")
    parts = _Parts(settings, overrides)
    aws = parts.get("aws", lambda: _aws_clients(settings))
    _bind_tables(settings)
    clock: Clock = parts.get("clock", lambda: utc_now)
    stores = _Stores(parts, aws)
    # Job records publish their state changes (issue 12): each store wrapped once, here.
    listeners: list[Callable[[Any], None]] = []  # in-process reactions to what is published (the retrain loop)
    publisher = ListeningPublisher(parts.get("event_publisher", lambda: event_publisher(settings, aws)), listeners)
    # Schedules (issue 12): a firing invokes a target registered by name on schedule_targets.
    schedule_targets = parts.get("schedule_targets", ScheduleTargets)
    scheduler = parts.get("scheduler", lambda: scheduler_for(settings, aws, schedule_targets))
    for name, store in publishing_stores(JobEvents(publisher), clock, train_jobs=stores.train_jobs,
                                         inference_jobs=stores.inference_jobs, stress_test_jobs=stores.stress_test_jobs,
                                         managed_images=stores.managed_images).items():
        setattr(stores, name, store)
    blobs: BlobStore = parts.get("blobs", lambda: _blobs(settings, aws))
    hasher = parts.get("hasher", lambda: _hasher(settings))
    workflows = parts.get("workflows", lambda: _workflows(settings, aws))
    tokens = parts.get("tokens", lambda: _tokens(aws))
    endpoints = parts.get("endpoints", lambda: endpoint_runner(settings, blobs, aws))
    dispatcher = parts.get("trial_dispatcher", lambda: trial_dispatcher(settings, aws, tokens))
    sink = parts.get("metrics_sink", lambda: _metrics_sink(settings))
    advisor = parts.get("advisor", _advisor)
    gpus: GpuSupport = parts.get("gpus", lambda: gpu_support(settings))

    managed_images = ManagedImageService(
        stores.managed_images, parts.get("image_builder", lambda: image_builder(settings, blobs, aws)),
        parts.get("image_workflows", lambda: _image_workflows(settings, aws)),
        poll_seconds=settings.image_poll_seconds, clock=clock)
    # Models' dependencies -> managed images; a slot waiting for one asks again as often as it is polled.
    containers = container_images(settings, aws)  # docker_image / custom_image: run as given, if they can
    model_images = ModelImages(managed_images, wait_seconds=max(1, settings.image_poll_seconds),
                               serving_base=serving_base(settings), containers=containers)
    dataset_check = DatasetCheckJob(stores.datasets, blobs, settings.max_dataset_bytes, archive_limits(settings))
    # Where IAM users move their own copies of files (chalicelib/direct_transfers.py).
    direct = DirectTransfers(settings.data_bucket, _direct_endpoint(settings))
    train_jobs = TrainJobService(
        stores.train_jobs, stores.trials, stores.counters, stores.models, stores.datasets, blobs, workflows,
        slots_per_model=settings.worker_slots_per_model, presigned_url_seconds=settings.presigned_url_seconds,
        clock=clock, gpus=gpus, images=model_images, direct=direct,
    )
    # One API process writing every app row (the local stack) may cache serving states: see serving_cache.py.
    app_store = ProcessServingStates(stores.apps) if settings.serving_state_cache is True else stores.apps
    inference = InferenceJobService(
        stores.inference_jobs, stores.train_jobs, stores.trials, train_jobs,
        BundleBuilder(blobs, stores.models, clock, model_images),
        blobs, endpoints, stage=settings.stage, public_api_url=settings.public_api_url,
        presigned_url_seconds=settings.presigned_url_seconds, clock=clock, apps=app_store, gpus=gpus,
        direct=direct,
        inference_image_uri=settings.sagemaker_image_uri,
    )
    apps = ApplicationService(app_store, inference, clock=clock)
    predict = PredictService(
        inference, apps, endpoints, stores.app_metrics, sink,
        timeout_seconds=settings.predict_timeout_seconds, max_queries=settings.max_queries_per_request,
        clock=clock, metrics_flush_seconds=settings.metrics_flush_seconds,
        # Built on the blob store (a test fakes that part): no part of its own to override.
        capture=CaptureBuffer(blobs, flush_seconds=settings.capture_flush_seconds,
                              max_records=settings.capture_max_records, max_bytes=settings.capture_max_bytes),
    )
    audit = AuditService(stores.audit_events, clock=clock)
    auth = AuthService(stores.users, stores.sessions, stores.api_keys, hasher, settings.session_ttl_seconds,
                       _login_throttle(settings, stores.login_attempts, clock), audit,
                       clock=clock, cache_seconds=settings.auth_cache_seconds)
    password_policy = parts.get("password_policy", lambda: _password_policy(settings))
    projects = ProjectService(stores.projects, clock=clock)
    stress_tests = StressTestService(
        stores.stress_test_jobs, projects, stores.datasets, blobs,
        parts.get("stress_workflows", lambda: _stress_workflows(settings, aws)),
        StressMessageConfig(bucket=settings.data_bucket, timeout_seconds=settings.stress_test_timeout_seconds,
                            heartbeat_seconds=settings.trial_heartbeat_seconds),
        heartbeat_timeout_seconds=settings.trial_heartbeat_timeout_seconds,
        queue_timeout_seconds=settings.trial_queue_timeout_seconds,
        presigned_url_seconds=settings.presigned_url_seconds, max_upload_bytes=settings.max_dataset_bytes,
        clock=clock, train_jobs=stores.train_jobs, trials=stores.trials, models=stores.models, apps=app_store,
        inference_jobs=stores.inference_jobs, images=StressImages(managed_images, containers), direct=direct,
    )
    continuous_tests = ContinuousTestService(stores.ct_instances, stress_tests, stores.stress_test_jobs, projects,
                                             blobs, publisher, settings.data_bucket, clock=clock,
                                             on_breaches=lambda instance, new: built.retrain.on_breaches(instance, new),
                                             metrics=_ct_metrics(parts, settings, clock,
                                                                 lambda i: ct_schedules.traffic_source(i)))
    # A CT instance's schedule fires run_incremental_continuous_test (issue 12 item 4).
    ct_schedules = CTScheduleService(continuous_tests, stores.ct_instances, scheduler, blobs, blobs, stores.users,
                                     app_store, settings.data_bucket, clock=clock,
                                     capture_settle_seconds=settings.capture_settle_seconds)
    schedule_targets.register(CT_SCHEDULE_TARGET, ct_schedules.run)
    built = Services(
        settings=settings,
        auth=auth,
        audit=audit,
        users=UserService(stores.users, hasher, password_policy, clock=clock, on_banned=auth.forget_user),
        datasets=DatasetService(
            stores.datasets, blobs, parts.get("url_fetcher", lambda: _url_fetcher(settings)),
            max_direct_upload_bytes=settings.max_direct_upload_bytes, max_dataset_bytes=settings.max_dataset_bytes,
            presigned_url_seconds=settings.presigned_url_seconds, clock=clock, archive_limits=archive_limits(settings),
            check_job=dataset_check, check_threshold_bytes=settings.dataset_check_threshold_bytes,
            check_timeout_seconds=settings.dataset_check_timeout_seconds,
            check_dispatcher=parts.get("dataset_check_dispatcher",
                                       lambda: dataset_check_dispatcher(settings, dataset_check, aws)),
            # Signed IAM users upload straight to S3 there; the endpoint only when S3 is local (moto).
            bucket=settings.data_bucket, direct_endpoint_url=_direct_endpoint(settings),
        ),
        models=ModelService(stores.models, blobs, settings.max_model_file_bytes, clock=clock, images=model_images),
        train_jobs=train_jobs,
        trial_loop=TrialLoop(
            stores.train_jobs, stores.trials, stores.counters, stores.models, stores.datasets, blobs, workflows,
            advisor, _trial_loop_config(settings), clock=clock, images=model_images,
        ),
        inference_jobs=inference,
        apps=apps,
        predict=predict,
        queues=ServingQueueService(
            parts.get("request_queue", lambda: _request_queue(settings, aws)), stores.serving_results,
            predict.predict_queries, max_backlog=settings.serving_queue_max_backlog,
            result_ttl_seconds=settings.serving_result_ttl_seconds, clock=clock,
        ),
        projects=projects,
        stress_tests=stress_tests,
        managed_images=managed_images,
        endpoints=endpoints,
        trial_dispatcher=dispatcher,
        tokens=tokens,
        aws=aws,
        labels=LabelService(app_store, blobs, settings.data_bucket, clock=clock),
        events=EventService(publisher),
        scheduler=scheduler,
        schedule_targets=schedule_targets,
        scheduler_clock=SchedulerClockService(scheduler),
        continuous_tests=continuous_tests,
        ct_schedules=ct_schedules,
        platform_images=PlatformImageService(
            parts.get("platform_image_builder", lambda: platform_image_builder(settings, aws)), JobEvents(publisher),
            clock=clock),
    )
    # The loop (issue 12 item 6): a breach of a CT on an app's traffic retrains by the app's policy.
    timeline = AppTimeline(blobs, publisher, app_store, clock=clock)
    retrain = RetrainLoopService(built.train_jobs, built.datasets, app_store, stores.users, blobs, blobs, timeline,
                                 ct_schedules.traffic_source, clock=clock)
    built = dataclasses.replace(built, app_timeline=timeline, retrain=retrain)  # the breach hook reads this one
    dataset_check.listeners.append(retrain.on_dataset_settled)  # a retrain's dataset built: its train job starts
    # A deployed retrain takes over the app's continuous test (a new CT instance on its training data).
    handover = CTHandover(continuous_tests, ct_schedules, built.train_jobs, built.stress_tests, stores.ct_instances,
                          timeline, blobs)
    deployer = RetrainDeployer(retrain, built.stress_tests, built.inference_jobs, built.apps, stores.users, blobs,
                               handover)
    listeners.append(deployer.on_event)  # a retrain's end and its holdout evaluation (published state changes)
    listeners.append(handover.on_event)  # the deployed version's first continuous test
    return built


class _Stores:
    """The repositories (DynamoDB through pynamodb, bound to the settings' tables)."""

    def __init__(self, parts: _Parts, aws: Any):
        from chalicelib.store import images, logins, queues, repositories, serving, stress, train_jobs, users

        settings = parts.settings
        self.users = parts.get("users", users.UserRepository)
        self.sessions = parts.get("sessions", repositories.SessionRepository)
        self.api_keys = parts.get("api_keys", repositories.ApiKeyRepository)
        self.datasets = parts.get("datasets", repositories.DatasetRepository)
        self.models = parts.get("models", repositories.ModelRepository)
        self.train_jobs = parts.get("train_jobs", train_jobs.TrainJobRepository)
        self.trials = parts.get("trials", train_jobs.TrialRepository)
        self.counters = parts.get("counters", train_jobs.CounterRepository)
        self.inference_jobs = parts.get("inference_jobs", serving.InferenceJobRepository)
        self.apps = parts.get("apps", serving.ApplicationRepository)
        self.app_metrics = parts.get("app_metrics", lambda: serving.AppMetricsRepository(
            settings.resource_name(resources.APP_METRICS.name), aws.client("dynamodb"),
            retention_seconds=settings.app_metrics_retention_days * 86400,
        ))
        self.serving_results = parts.get("serving_results", queues.ServingResultRepository)
        self.projects = parts.get("projects", stress.ProjectRepository)
        self.stress_test_jobs = parts.get("stress_test_jobs", stress.StressTestJobRepository)
        self.managed_images = parts.get("managed_image_records", images.ManagedImageRepository)
        self.ct_instances = parts.get("ct_instances", _ct_instance_repository)
        self.login_attempts = parts.get("login_attempts", logins.LoginAttemptRepository)
        self.audit_events = parts.get("audit_events", lambda: logins.AuditEventRepository(
            retention_seconds=settings.audit_retention_days * 86400))


def _ct_instance_repository() -> Any:
    from chalicelib.store.continuous import CTInstanceRepository

    return CTInstanceRepository()


def _aws_clients(settings: Settings) -> Any:
    from chalicelib.adapters.aws import AwsClients

    return AwsClients(settings.region, settings.aws_endpoint_url, settings.aws_access_key_id,
                      settings.aws_secret_access_key, settings.aws_service_endpoints)


def _bind_tables(settings: Settings) -> None:
    from chalicelib.store import models

    models.bind(settings.resource_name, settings.region, settings.dynamodb_endpoint_url or None,
                settings.aws_access_key_id or None, settings.aws_secret_access_key or None)


def _direct_endpoint(settings: Settings) -> Optional[str]:
    """The S3 endpoint IAM users move direct/ files at: the local stack's gate, else the
    emulator, else None (S3 itself)."""
    return settings.direct_s3_endpoint_url or settings.aws_endpoint_url or None


def _blobs(settings: Settings, aws: Any) -> BlobStore:
    from chalicelib.adapters.blobs import BlobStore as S3BlobStore

    return S3BlobStore(settings.data_bucket, aws.client("s3"))


def _hasher(settings: Settings) -> Any:
    from chalicelib.adapters.passwords import PasswordHasher

    return PasswordHasher(settings.password_hash_time_cost, settings.password_hash_memory_kib)


def _password_policy(settings: Settings) -> Any:
    from chalicelib.adapters.passwords import ZxcvbnPasswordPolicy

    return ZxcvbnPasswordPolicy(settings.password_min_length, settings.password_min_score)


def _login_throttle(settings: Settings, store: Any, clock: Clock) -> LoginThrottle:
    s = settings
    waits = (s.login_delay_seconds, s.login_max_delay_seconds, s.login_lockout_seconds)
    return LoginThrottle(store, ThrottleRule(s.login_free_failures, s.login_lockout_failures, *waits),
                         ThrottleRule(s.login_client_free_failures, s.login_client_lockout_failures, *waits),
                         s.login_failure_window_seconds, clock=clock)


def archive_limits(settings: Settings) -> ArchiveLimits:
    """The image-archive bounds, from the settings fields of the same names."""
    return ArchiveLimits(**{name: getattr(settings, name) for name in ArchiveLimits.__dataclass_fields__})


def _url_fetcher(settings: Settings) -> Any:
    from chalicelib.adapters.url_fetcher import AddressPolicy, UrlFetcher

    return UrlFetcher(settings.dataset_url_timeout_seconds, AddressPolicy(settings.dataset_url_allowed_networks))


def _workflows(settings: Settings, aws: Any) -> Any:
    from chalicelib.adapters.workflows import WorkflowRunner

    return WorkflowRunner(settings.train_worker_state_machine_arn, aws.client("stepfunctions"))


def _stress_workflows(settings: Settings, aws: Any) -> Any:
    from chalicelib.adapters.workflows import WorkflowRunner

    return WorkflowRunner(settings.stress_test_state_machine_arn, aws.client("stepfunctions"))


def _image_workflows(settings: Settings, aws: Any) -> Any:
    from chalicelib.adapters.workflows import WorkflowRunner

    return WorkflowRunner(settings.managed_image_state_machine_arn, aws.client("stepfunctions"))


def _tokens(aws: Any) -> TaskTokens:
    from chalicelib.adapters.task_tokens import SfnTaskTokens

    return SfnTaskTokens(aws.client("stepfunctions"), aws.client("s3"))


def _request_queue(settings: Settings, aws: Any) -> Any:
    from chalicelib.adapters.serving_queue import SqsRequestQueue

    return SqsRequestQueue(settings.resource_name(resources.SERVING_REQUESTS_QUEUE.name), aws.client("sqs"))


def _ct_metrics(parts: _Parts, settings: Settings, clock: Clock, traffic_source: Callable[[str], Any]) -> Any:
    """Continuous tests' CloudWatch metrics, per the app whose traffic a CT instance's schedule tests."""
    sink = parts.get("ct_metrics_sink", lambda: ct_metrics_sink(settings))
    if sink is None:
        return None
    return CTMetrics(sink, app_of=lambda instance_id: (traffic_source(instance_id) or (None, None))[1], clock=clock)


def _metrics_sink(settings: Settings) -> MetricsSink:
    if not settings.cloudwatch_metrics:
        return NoMetricsSink()
    from chalicelib.adapters.cloudwatch_metrics import CloudWatchMetricsSink

    return CloudWatchMetricsSink(stage=settings.stage)


def _advisor() -> Any:
    from chalicelib.advisor import propose  # optuna: imported only where trials are proposed

    return propose


def _trial_loop_config(settings: Settings) -> TrialLoopConfig:
    return TrialLoopConfig(
        bucket=settings.data_bucket,
        max_consecutive_errors=settings.max_consecutive_trial_errors,
        max_trials_per_execution=settings.max_trials_per_execution,
        trial_timeout_seconds=settings.trial_timeout_seconds,
        heartbeat_seconds=settings.trial_heartbeat_seconds,
        heartbeat_timeout_seconds=settings.trial_heartbeat_timeout_seconds,
        memory_limit_mb=settings.trial_memory_limit_mb,
        advisor_strategy=settings.advisor_strategy,
        queue_timeout_seconds=settings.trial_queue_timeout_seconds,
    )


# -- the process's services ---------------------------------------------------------------------

_installed: Optional[Services] = None
_install_lock = threading.Lock()


def services() -> Services:
    """The process's services: those installed, else built from the environment's settings."""
    global _installed
    current = _installed
    if current is not None:
        return current
    with _install_lock:
        if _installed is None:
            _installed = build(Settings())
        return _installed


def install(built: Optional[Services]) -> Optional[Services]:
    """Make ``built`` the process's services (None: build afresh on next use); returns the
    previous ones, so a caller can put them back."""
    global _installed
    with _install_lock:
        previous, _installed = _installed, built
    return previous


__all__ = ["Services", "build", "install", "services", "endpoint_runner", "trial_dispatcher",
           "child_aws_environment", "gpu_support",
           "image_builder"]
