"""The one module that builds objects: adapters, repositories and services, from settings."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache

from chalicelib import resources
from chalicelib.adapters.blobs import BlobStore
from chalicelib.adapters.passwords import PasswordHasher
from chalicelib.adapters.trial_dispatch import BatchTrialDispatcher
from chalicelib.adapters.url_fetcher import UrlFetcher
from chalicelib.adapters.cloudwatch_metrics import CloudWatchMetricsSink
from chalicelib.adapters.endpoints import EndpointRunner, SageMakerEndpointRunner
from chalicelib.adapters.serving_queue import SqsRequestQueue
from chalicelib.adapters.workflows import WorkflowRunner
from chalicelib.advisor import propose
from chalicelib.services.apps import ApplicationService
from chalicelib.services.auth import AuthService
from chalicelib.services.bundles import BundleBuilder
from chalicelib.services.inference_jobs import InferenceJobService
from chalicelib.services.predict import MetricsSink, PredictService
from chalicelib.services.queues import ServingQueueService
from chalicelib.services.train_jobs import TrainJobService
from chalicelib.services.trial_loop import TrialLoop, TrialLoopConfig
from chalicelib.services.datasets import DatasetService
from chalicelib.services.models import ModelService
from chalicelib.services.users import UserService
from chalicelib.settings import Settings, get_settings
from chalicelib.store.repositories import (
    ApiKeyRepository,
    DatasetRepository,
    ModelRepository,
    SessionRepository,
    UserRepository,
)
from chalicelib.store.queues import ServingResultRepository
from chalicelib.store.serving import AppMetricsRepository, ApplicationRepository, InferenceJobRepository
from chalicelib.store.train_jobs import CounterRepository, TrainJobRepository, TrialRepository


@dataclass(frozen=True)
class Services:
    settings: Settings
    auth: AuthService
    users: UserService
    datasets: DatasetService
    models: ModelService
    train_jobs: TrainJobService
    trial_loop: TrialLoop
    inference_jobs: InferenceJobService
    apps: ApplicationService
    predict: PredictService
    queues: ServingQueueService


def build_services(settings: Settings) -> Services:
    hasher = PasswordHasher(settings.password_hash_time_cost, settings.password_hash_memory_kib)
    users = UserRepository()
    blobs = BlobStore(settings.data_bucket)
    models, datasets = ModelRepository(), DatasetRepository()
    jobs, trials, counters = TrainJobRepository(), TrialRepository(), CounterRepository()
    workflows = WorkflowRunner(settings.train_worker_state_machine_arn)
    train_job_service = TrainJobService(
        jobs, trials, counters, models, datasets, blobs, workflows,
        slots_per_model=settings.worker_slots_per_model,
        presigned_url_seconds=settings.presigned_url_seconds,
    )
    endpoints = endpoint_runner(settings)
    inference = InferenceJobService(
        InferenceJobRepository(), jobs, trials, train_job_service, BundleBuilder(blobs, models), blobs, endpoints,
        stage=settings.stage, public_api_url=settings.public_api_url,
        presigned_url_seconds=settings.presigned_url_seconds,
    )
    apps = ApplicationService(ApplicationRepository(), inference)
    metrics = AppMetricsRepository(settings.resource_name(resources.APP_METRICS.name),
                                   retention_seconds=settings.app_metrics_retention_days * 86400)
    sink = CloudWatchMetricsSink(stage=settings.stage) if settings.cloudwatch_metrics else MetricsSink()
    predict = PredictService(inference, apps, endpoints, metrics, sink,
                             timeout_seconds=settings.predict_timeout_seconds,
                             max_queries=settings.max_queries_per_request)
    return Services(
        settings=settings,
        auth=AuthService(users, SessionRepository(), ApiKeyRepository(), hasher, settings.session_ttl_seconds),
        users=UserService(users, hasher),
        datasets=DatasetService(
            datasets,
            blobs,
            UrlFetcher(settings.dataset_url_timeout_seconds),
            max_direct_upload_bytes=settings.max_direct_upload_bytes,
            max_dataset_bytes=settings.max_dataset_bytes,
            presigned_url_seconds=settings.presigned_url_seconds,
        ),
        models=ModelService(models, blobs, settings.max_model_file_bytes),
        train_jobs=train_job_service,
        trial_loop=TrialLoop(
            jobs, trials, counters, models, datasets, blobs, workflows, propose,
            TrialLoopConfig(
                bucket=settings.data_bucket,
                trials_table=settings.resource_name(resources.TRIALS.name),
                jobs_table=settings.resource_name(resources.TRAIN_JOBS.name),
                max_consecutive_errors=settings.max_consecutive_trial_errors,
                max_trials_per_execution=settings.max_trials_per_execution,
                trial_timeout_seconds=settings.trial_timeout_seconds,
                heartbeat_seconds=settings.trial_heartbeat_seconds,
                heartbeat_timeout_seconds=settings.trial_heartbeat_timeout_seconds,
                memory_limit_mb=settings.trial_memory_limit_mb,
                advisor_strategy=settings.advisor_strategy,
            ),
        ),
        inference_jobs=inference,
        apps=apps,
        predict=predict,
        queues=ServingQueueService(
            SqsRequestQueue(settings.resource_name(resources.SERVING_REQUESTS_QUEUE.name)), ServingResultRepository(),
            predict.predict_queries, max_backlog=settings.serving_queue_max_backlog,
            result_ttl_seconds=settings.serving_result_ttl_seconds,
        ),
    )


def endpoint_runner(settings: Settings) -> EndpointRunner:
    """Where inference jobs are served, chosen by the scheme of ``endpoints_uri``."""
    scheme, _, rest = settings.endpoints_uri.partition("://")
    if scheme == "sagemaker":
        return SageMakerEndpointRunner(
            settings.data_bucket, settings.sagemaker_image_uri, settings.sagemaker_gpu_image_uri,
            settings.sagemaker_role_arn, instance_type=settings.sagemaker_instance_type,
            serverless=settings.sagemaker_serverless,
        )
    if scheme == "local":
        from chalicelib.local.endpoint_runner import local_endpoint_runner

        return local_endpoint_runner(settings.data_bucket, rest or os.path.join(tempfile.gettempdir(), "kilele-endpoints"))
    raise ValueError(f"KILELE_ENDPOINTS_URI must start with local:// or sagemaker://, got {settings.endpoints_uri!r}")


@lru_cache(maxsize=1)
def services() -> Services:
    """The process-wide services (built on first use, so importing the app stays cheap)."""
    return build_services(get_settings())


@lru_cache(maxsize=1)
def trial_dispatcher() -> BatchTrialDispatcher:
    """The AWS trial dispatcher (the local stack runs trials with its own runner)."""
    settings = get_settings()
    return BatchTrialDispatcher(
        cpu_queue=settings.batch_cpu_job_queue,
        gpu_queue=settings.batch_gpu_job_queue,
        job_definition=settings.batch_job_definition,
        gpu_job_definition=settings.batch_gpu_job_definition,
    )
