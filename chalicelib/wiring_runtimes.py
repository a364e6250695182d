"""The composition root's section for where user code runs: the twins of trial dispatch and of
inference endpoints, each chosen by the scheme of its URI setting (``trial_dispatch_uri``:
``batch://`` or ``local://DIR``; ``endpoints_uri``: ``sagemaker://`` or ``local://DIR``), like a
store registry, and whether those runtimes have GPUs. Kept apart so wiring.py stays short."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from chalicelib.ports import BlobStore, EndpointRunner, TaskTokens, TrialDispatcher
from chalicelib.services.gpus import GpuSupport
from chalicelib.settings import Settings, process_environment


def scheme_of(uri: str, setting: str, schemes: tuple[str, ...]) -> tuple[str, str]:
    """(scheme, rest) of a backend URI setting; a ValueError naming the setting when its scheme is not one of ``schemes``."""
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme not in schemes:
        raise ValueError(f"{setting} must start with {' or '.join(s + '://' for s in schemes)}, got {uri!r}")
    return scheme, rest


def default_work_dir(name: str) -> Path:
    """Where a local twin keeps its files when its URI names no folder."""
    return Path(tempfile.gettempdir()) / f"kilele-{name}"


def child_aws_environment(settings: Settings) -> dict[str, str]:
    """The AWS variables a trusted child process (the worker's supervisor) needs to reach the
    same AWS (moto, locally) as this process."""
    values = {"AWS_DEFAULT_REGION": settings.region, "AWS_REGION": settings.region}
    if settings.aws_endpoint_url:
        values["AWS_ENDPOINT_URL"] = settings.aws_endpoint_url
    if settings.aws_endpoint_url_dynamodb:
        values["AWS_ENDPOINT_URL_DYNAMODB"] = settings.aws_endpoint_url_dynamodb
    if settings.aws_access_key_id:
        values.update(AWS_ACCESS_KEY_ID=settings.aws_access_key_id,
                      AWS_SECRET_ACCESS_KEY=settings.aws_secret_access_key)
    return values


def endpoint_runner(settings: Settings, blobs: BlobStore, aws: Any) -> EndpointRunner:
    """Where inference jobs are served, chosen by the scheme of ``endpoints_uri``."""
    scheme, rest = scheme_of(settings.endpoints_uri, "KILELE_ENDPOINTS_URI", ("local", "sagemaker"))
    if scheme == "sagemaker":
        from chalicelib.adapters.endpoints.sagemaker import SageMakerEndpointRunner, runtime_clients

        return SageMakerEndpointRunner(
            settings.data_bucket, settings.sagemaker_image_uri, settings.sagemaker_gpu_image_uri,
            settings.sagemaker_role_arn, instance_type=settings.sagemaker_instance_type,
            serverless=settings.sagemaker_serverless, sagemaker=aws.client("sagemaker"),
            runtime=runtime_clients(aws), autoscaling=aws.client("application-autoscaling"),
        )
    from chalicelib.adapters.endpoints.local import LocalEndpointRunner
    from chalicelib.adapters.endpoints.restarts import RestartPolicy

    # The inference server runs model code: it gets no AWS or Kilele settings at all.
    environment = process_environment(drop_prefixes=("AWS_", "KILELE_"))
    restarts = RestartPolicy(backoff_seconds=settings.local_endpoint_restart_backoff_seconds,
                             max_restarts=settings.local_endpoint_max_restarts,
                             window_seconds=settings.local_endpoint_restart_window_seconds)
    return LocalEndpointRunner(blobs, Path(rest) if rest else default_work_dir("endpoints"), environment=environment,
                               memory_limit_mb=settings.local_endpoint_memory_limit_mb, restart_policy=restarts)


def gpu_support(settings: Settings) -> GpuSupport:
    """Whether trials and endpoints can get GPUs: ``gpus_available`` when set, else what each
    runner has (see the setting's description). Each ``*_missing`` is why not ("" if they can)."""
    if settings.gpus_available is not None:
        missing = "" if settings.gpus_available else "gpus_available is false"
        return GpuSupport(settings.gpus_available, settings.gpus_available, missing, missing)
    from chalicelib.adapters.gpus import NO_LOCAL_GPU, visible_gpus

    batch = scheme_of(settings.trial_dispatch_uri, "KILELE_TRIAL_DISPATCH_URI", ("batch", "local"))[0] == "batch"
    sagemaker = scheme_of(settings.endpoints_uri, "KILELE_ENDPOINTS_URI", ("local", "sagemaker"))[0] == "sagemaker"
    local = "" if (not batch or not sagemaker) and visible_gpus() else NO_LOCAL_GPU
    training = ("" if settings.batch_gpu_job_queue and settings.batch_gpu_job_definition
                else "no AWS Batch GPU job queue and job definition are configured") if batch else local
    serving = ("" if settings.sagemaker_gpu_image_uri else "no SageMaker GPU inference image is configured") \
        if sagemaker else local
    return GpuSupport(not training, not serving, training, serving)


def trial_dispatcher(settings: Settings, aws: Any, tokens: TaskTokens) -> TrialDispatcher:
    """Where trials run, chosen by the scheme of ``trial_dispatch_uri``."""
    scheme, rest = scheme_of(settings.trial_dispatch_uri, "KILELE_TRIAL_DISPATCH_URI", ("batch", "local"))
    if scheme == "batch":
        from chalicelib.adapters.trial_dispatch.batch import BatchTrialDispatcher

        return BatchTrialDispatcher(
            cpu_queue=settings.batch_cpu_job_queue, gpu_queue=settings.batch_gpu_job_queue,
            job_definition=settings.batch_job_definition, gpu_job_definition=settings.batch_gpu_job_definition,
            batch=aws.client("batch"), tokens=tokens,
        )
    from chalicelib.adapters.trial_dispatch.local import LocalTrialDispatcher

    environment = process_environment(drop_prefixes=("AWS_", "KILELE_"), extra=child_aws_environment(settings))
    warm = settings.local_max_parallel_trials if settings.local_warm_trial_workers else 0
    return LocalTrialDispatcher(Path(rest) if rest else default_work_dir("trials"), tokens,
                                python=sys.executable, environment=environment, warm_workers=warm)
