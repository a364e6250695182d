"""The one place that reads the environment.

Every knob is a field of :class:`Settings`, read from ``KILELE_*`` variables (and the region and
endpoint from the standard ``AWS_*`` ones). Code that needs another configuration (the local
stack, a test) builds ``Settings(**values)`` or ``settings.model_copy(update=...)``; nothing
writes the environment. :func:`process_environment` is the one reader for child processes.
"""
from __future__ import annotations

import os
from typing import Iterable, Optional

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024
DEFAULT_REGION = "us-east-1"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KILELE_", extra="ignore", populate_by_name=True)

    stage: str = Field("local", description="Deployment stage; prefixes every resource name.")
    region: str = Field(
        "", validation_alias=AliasChoices("AWS_DEFAULT_REGION", "AWS_REGION"),
        description="Resolved as boto3 does: AWS_DEFAULT_REGION, then the profile's region in the AWS config "
        "file (botocore's session reads it), then us-east-1.",
    )
    aws_profile: str = Field("", validation_alias=AliasChoices("AWS_PROFILE", "AWS_DEFAULT_PROFILE"),
                             description="The AWS profile whose config-file region applies (empty: default).")
    aws_config_file: str = Field("", validation_alias="AWS_CONFIG_FILE",
                                 description="The AWS config file (empty: botocore's default, ~/.aws/config).")
    aws_endpoint_url: str = Field(
        "", validation_alias="AWS_ENDPOINT_URL", description="Send every AWS call here (moto, locally)."
    )
    aws_endpoint_url_dynamodb: str = Field(
        "", validation_alias="AWS_ENDPOINT_URL_DYNAMODB",
        description="DynamoDB's own endpoint (boto3's variable), else aws_endpoint_url: LocalStack as the emulator "
        "keeps DynamoDB on a moto server, since its own needs Java and a download (docs/localstack.md).",
    )
    aws_access_key_id: str = Field("", description="Explicit credentials (the local stack's); empty: the default chain.")
    aws_secret_access_key: str = ""

    superadmin_email: str = "superadmin@kilele"
    superadmin_password: str = Field(
        "kilele", description="Seeded superadmin password. Change it on any shared machine."
    )

    session_ttl_seconds: int = 3600
    auth_cache_seconds: float = Field(
        5.0, ge=0, description="Each process caches a session or API key's user this long: a ban, revocation or "
        "logout applies at once in the process that made it, in the others within this time (0: no cache).",
    )
    password_hash_time_cost: int = Field(3, description="argon2 iterations (argon2id).")
    password_hash_memory_kib: int = Field(65536, description="argon2 memory cost in KiB.")

    # Logins: password policy (passwords set through the API), throttling, audit log
    password_min_length: int = Field(8, ge=1, le=256, description="Shortest password the API accepts.")
    password_min_score: int = Field(3, ge=0, le=4, description="Lowest zxcvbn strength score (0-4) the API accepts.")
    login_free_failures: int = Field(3, ge=0, description="Failed logins of one account before delays start.")
    login_lockout_failures: int = Field(
        10, ge=1, description="Failed logins that lock an account for login_lockout_seconds.")
    login_client_free_failures: int = Field(20, ge=0, description="Failed logins from one address before delays start.")
    login_client_lockout_failures: int = Field(100, ge=1, description="Failed logins that lock an address out.")
    login_delay_seconds: float = Field(
        1.0, ge=0, description="Wait after the first failure past the free ones; doubles with each further failure.")
    login_max_delay_seconds: float = Field(
        60.0, ge=0, description="Longest wait between two failed logins (short of a lockout).")
    login_lockout_seconds: int = Field(900, ge=1, description="How long a lockout lasts.")
    login_failure_window_seconds: int = Field(
        3600, ge=1, description="A failure counter is forgotten this long after its last failure, never before its "
        "lockout or wait has ended.")
    audit_retention_days: int = Field(90, ge=1, description="Audit events (logins, API keys) are kept this long.")

    max_direct_upload_bytes: int = Field(
        4 * MiB, description="Largest dataset sent through the API; larger ones use a presigned upload."
    )
    max_dataset_bytes: int = Field(2048 * MiB, description="Largest dataset accepted at all.")
    dataset_check_threshold_bytes: int = Field(
        64 * MiB, ge=0, description="Presigned uploads above this are checked by a job, not in the request: the "
        "dataset is PENDING, then READY or INVALID (issue 13, finding 3). Smaller ones stay synchronous (READY at once)."
    )
    dataset_check_timeout_seconds: float = Field(
        3600.0, gt=0, description="A PENDING dataset whose check job has not ended this long after it started is "
        "INVALID when next read (the job was lost), never PENDING forever."
    )
    max_model_file_bytes: int = Field(1 * MiB, description="Largest model .py file accepted.")
    presigned_url_seconds: int = 900
    dataset_url_timeout_seconds: float = Field(
        30.0, gt=0, description="Deadline of a whole dataset_url download (lookups, redirects, every read)."
    )
    archive_max_entries: int = Field(200_000, ge=1, description="Image archives: most entries (and images.csv lines).")
    archive_max_bytes: int = Field(4096 * MiB, ge=1, description="Image archives: most bytes uncompressed, in all.")
    archive_max_entry_bytes: int = Field(256 * MiB, ge=1, description="Image archives: most bytes of one entry, uncompressed.")
    archive_max_ratio: int = Field(100, ge=1, description="Image archives: most an entry over 1 MiB may expand.")
    image_max_pixels: int = Field(50_000_000, ge=1, description="Image archives: most pixels of one image.")
    images_max_total_pixels: int = Field(4_000_000_000, ge=1, description="Image archives: most pixels of all images.")
    dataset_url_allowed_networks: list[str] = Field(
        [], description="Non-public networks (CIDRs) dataset_url may still reach; empty: public addresses only. "
        "For tests' loopback servers or a private mirror; JSON in the environment, e.g. '[\"10.1.0.0/16\"]'.",
    )

    # Train jobs
    worker_slots_per_model: int = Field(2, description="Trials of one model run this many at a time.")
    max_consecutive_trial_errors: int = Field(3, description="A worker slot stops after this many failed trials in a row.")
    max_trials_per_execution: int = Field(100, description="A worker continues in a new execution after this many.")
    trial_timeout_seconds: int = 1800
    trial_heartbeat_seconds: int = Field(10, description="How often the worker reports it is alive.")
    trial_heartbeat_timeout_seconds: int = Field(
        90, description="A trial silent this long is failed; counted from when its job started, not while queued.")
    trial_queue_timeout_seconds: int = Field(
        3600, gt=0, description="A trial, model check or stress test whose job has not started this long after "
        "it was queued (Batch capacity: the GPU environment starts at 0 instances) fails, saying so.")
    trial_memory_limit_mb: int = 4096
    advisor_strategy: str = Field("auto", description="auto (a Gaussian process for the first 100 trials of a "
                                  "model, then TPE), gp, tpe, or random (see chalicelib/advisor).")
    train_worker_state_machine_arn: str = Field("", description="Set by infra; the local stack sets its own.")
    trials_queue_url: str = Field("", description="Set by infra; the local stack sets its own.")
    batch_cpu_job_queue: str = Field("", description="AWS Batch queue for CPU trials (set by infra).")
    batch_gpu_job_queue: str = Field("", description="AWS Batch queue for GPU trials (set by infra).")
    batch_job_definition: str = Field("", description="Worker image job definition (set by infra).")
    batch_gpu_job_definition: str = Field("", description="GPU worker image job definition (set by infra).")
    local_max_parallel_trials: int = Field(2, description="Local trial runner: trials run at once.")
    local_warm_trial_workers: bool = Field(
        True, description="Local trial runner: keep one worker per parallel trial started ahead, with the "
        "libraries imported and its sandboxed model process waiting (a fresh one per trial still); false: "
        "each trial starts its worker and model processes.")
    local_endpoint_memory_limit_mb: int = Field(
        4096, ge=64, description="Local endpoints: each inference server's address-space limit (CPU endpoints)."
    )
    local_endpoint_restart_backoff_seconds: float = Field(
        1.0, gt=0, description="Local endpoints: a server that died is started again after this long, doubled "
        "for each restart within the window (up to 60 s).")
    local_endpoint_max_restarts: int = Field(
        3, ge=0, description="Local endpoints: restarts within the window before the endpoint fails (its "
        "inference job ERRORED with the reason).")
    local_endpoint_restart_window_seconds: float = Field(
        300.0, gt=0, description="Local endpoints: the window restarts are counted in.")
    trial_dispatch_uri: str = Field(
        "batch://", description="batch:// (AWS Batch, infra) or local://<work dir> (worker processes)."
    )
    gpus_available: Optional[bool] = Field(
        None, description="Whether trials and endpoints can get GPUs (a budget's GPU_COUNT > 0 is refused with "
        "422 where they cannot). Unset: found out — local runners: an NVIDIA GPU visible on this machine; "
        "AWS Batch: a GPU job queue and job definition configured; SageMaker: a GPU inference image configured.",
    )

    # Stress tests (seed 002)
    stress_test_state_machine_arn: str = Field("", description="Set by infra; the local stack sets its own.")
    stress_test_timeout_seconds: int = Field(3600, description="A stress test running longer fails.")

    # Managed images (issue 11)
    image_builder_uri: str = Field("codebuild://", description="codebuild://<project> (infra) or local://<dir> "
                                   "(virtual environments; the local stack puts them in its data dir).")
    image_repository_uri: str = Field("", description="ECR repository managed images are pushed to (infra).")
    image_pull_registries: str = Field("", description="Registries besides the stack's ECR that a model's docker_image "
                                       "or a stress test's custom_image may name, comma-separated (docker.io: "
                                       "Docker Hub); the roles that pull must be allowed to.")
    image_base_worker_uri: str = Field("", description="The worker image managed images are built FROM (infra).")
    image_base_inference_uri: str = Field("", description="The inference image they are built FROM (infra).")
    image_build_timeout_seconds: int = Field(1800, gt=0, description="Local builds: a pip step running longer fails.")
    local_image_wheels_only: bool = Field(True, description="Local builds install wheels only: building an sdist "
                                          "runs its setup code on this machine as the stack's user, unconfined.")
    managed_image_state_machine_arn: str = Field("", description="Set by infra; the local stack sets its own.")
    image_poll_seconds: int = Field(20, ge=0, le=3600, description="How often the managed-image workflow polls a "
                                    "build; a build still unfinished after 2 h (CodeBuild's own limit is 1 h) is FAILED.")
    # Platform images built on demand (issue 13; `kilele images build`), as the deploy builds them.
    platform_image_tags: str = Field("", description="The platform images' content tags, name=tag,... (infra).")
    platform_image_source: str = Field("", description="bucket/key of the platform images' build context (infra).")
    platform_image_role_arn: str = Field("", description="The role platform image builds run as (infra).")

    # Events and schedules (issue 12)
    events_uri: str = Field("eventbridge://", description="Where job state changes and monitor breaches are "
                            "published: eventbridge://[bus] (infra; default bus kilele-<stage>-events) or "
                            "local://<dir> (an append-only log; the local stack keeps it in its data dir).")
    events_log_group: str = Field("", description="The CloudWatch Logs group a rule on the bus delivers every "
                                  "Kilele event to, which GET /events reads on AWS (empty: /aws/events/kilele-<stage>-events, as infra names it).")
    scheduler_uri: str = Field("eventbridge://", description="Where schedules live and fire: eventbridge://[group] "
                               "(EventBridge Scheduler; default group kilele-<stage>-schedules) or local://<dir> (fired "
                               "in the local stack's process; it keeps them in its data dir).")
    schedule_target_arn: str = Field("", description="The schedule Lambda every schedule invokes (infra sets it).")
    scheduler_role_arn: str = Field("", description="The role EventBridge Scheduler assumes to invoke it (infra sets it).")
    local_scheduler_clock: str = Field("system", pattern="^(system|manual)$", description="The local scheduler's "
                                       "clock: system, or manual (it moves only when an admin advances it: "
                                       "POST /local/scheduler/advance; for tests that drive schedules).")

    # Serving
    endpoints_uri: str = Field("local://", description="local://[work dir] or sagemaker:// (infra sets it).")
    public_api_url: str = Field("http://127.0.0.1:8000", description="Base URL clients use (predictor_url).")
    predict_timeout_seconds: float = Field(
        25.0, description="Deadline of unregistered apps (below API Gateway's 29 s integration limit)."
    )
    max_queries_per_request: int = 1000
    sagemaker_image_uri: str = ""
    sagemaker_gpu_image_uri: str = ""
    sagemaker_role_arn: str = ""
    sagemaker_instance_type: str = "ml.c5.large"
    sagemaker_serverless: bool = Field(False, description="Serve CPU inference jobs with serverless inference.")
    cloudwatch_metrics: bool = Field(False, description="Also emit per-app metrics to CloudWatch (EMF).")
    ct_metrics_uri: str = Field("", description="Where continuous tests' metrics go (chalicelib/ct_metrics_format.py): "
                                "cloudwatch:// (EMF log lines) or local://<dir> (the same documents in a file; the "
                                "local stack keeps it in its data dir); empty: cloudwatch:// when cloudwatch_metrics "
                                "is on, else none.")
    app_metrics_retention_days: int = 7
    serving_state_cache: Optional[bool] = Field(
        None, description="Cache each app's serving state (its settings, version and live jobs) in this process, "
        "dropped by this process's own writes. Correct only where every write to the apps table goes through one "
        "process: unset, the local stack turns it on; on AWS each predict request reads the app's row.",
    )
    metrics_flush_seconds: float = Field(
        10.0, ge=0, description="Per-app predict metrics are counted in memory and written this often "
        "(one write per app and minute); a process that dies loses at most this much of its own.",
    )
    capture_flush_seconds: float = Field(
        60.0, ge=0, description="Traffic capture: captured queries are buffered and written this often (and on a "
        "clean stop); a process that dies loses at most this much of its own.")
    capture_max_records: int = Field(5000, ge=1, description="Traffic capture: a buffer this full is written at once.")
    capture_max_bytes: int = Field(4 * MiB, ge=1, description="Traffic capture: a buffer this large is written at once.")
    serving_queue_max_backlog: int = Field(10000, description="Queue API: enqueue answers 503 past this backlog.")
    serving_result_ttl_seconds: int = Field(3600, description="Queue API: results are kept this long.")

    data_bucket_name: str = Field(
        "", description="S3 bucket for datasets and model files; infra sets it (bucket names are global)."
    )
    direct_s3_endpoint_url: str = Field(
        "", description="The S3 endpoint IAM users are told to move their direct/<name>/ files at (empty: "
        "aws_endpoint_url, i.e. S3 itself on AWS). The local stack sets its S3 gate, which checks their grant.")

    @model_validator(mode="after")
    def _resolve_region(self) -> "Settings":
        # Without this, a region set only in ~/.aws/config sent DynamoDB (pynamodb, bound to this
        # region) to us-east-1 while boto3's own clients went to the profile's region (issue 13).
        if not self.region:
            self.region = _config_file_region(self.aws_profile, self.aws_config_file) or DEFAULT_REGION
        return self

    def with_values(self, **values: object) -> "Settings":
        """A copy with ``values`` changed (validated and converted like the environment's)."""
        return type(self).model_validate({**self.model_dump(), **values})

    def resource_name(self, logical_name: str) -> str:
        """Deployed name of a table, bucket or queue from resources.py."""
        return f"kilele-{self.stage}-{logical_name}"

    @property
    def aws_service_endpoints(self) -> dict[str, str]:
        """Endpoints of single services that differ from :attr:`aws_endpoint_url` (AwsClients' argument)."""
        return {"dynamodb": self.aws_endpoint_url_dynamodb} if self.aws_endpoint_url_dynamodb else {}

    @property
    def dynamodb_endpoint_url(self) -> str:
        """Where DynamoDB calls go (pynamodb's host): its own endpoint, else every service's."""
        return self.aws_endpoint_url_dynamodb or self.aws_endpoint_url

    @property
    def data_bucket(self) -> str:
        return self.data_bucket_name or self.resource_name("data")

    @property
    def capture_settle_seconds(self) -> float:
        """How long a captured query may wait in a buffer before it is written: a scheduled
        continuous test on an app's traffic tests queries answered at least this long ago."""
        return self.capture_flush_seconds + (5.0 if self.capture_flush_seconds > 0 else 0.0)  # 5 s: the write itself


def _config_file_region(profile: str, config_file: str) -> Optional[str]:
    """The region of ``profile`` in the AWS config file, read by botocore's session the way
    boto3 reads it (the environment's region was already taken by :class:`Settings`)."""
    import botocore.exceptions
    import botocore.session

    session = botocore.session.Session(profile=profile or None)
    if config_file:
        session.set_config_variable("config_file", config_file)
    try:
        return session.get_scoped_config().get("region") or None
    except botocore.exceptions.ProfileNotFound as e:
        raise ValueError(f"AWS profile {profile!r} is not in the AWS config file") from e


def process_environment(drop_prefixes: Iterable[str] = (), extra: Optional[dict[str, str]] = None) -> dict[str, str]:
    """This process's environment for a child process, without the variables starting with one
    of ``drop_prefixes`` and with ``extra`` added (children get their configuration this way)."""
    prefixes = tuple(drop_prefixes)
    environment = {k: v for k, v in os.environ.items() if not (prefixes and k.startswith(prefixes))}
    environment.update(extra or {})
    return environment
