"""Response schemas of serving (inference jobs, apps, predict, metrics, bundles, queues), stress
tests, projects and managed images. Conventions as in schemas_responses.py: every field
present, ``Optional`` is nullable, no other field unless the value is the user's own."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Optional, Union

from pydantic import Field

from chalicelib.entities import InferenceJobStatus, InputType, StressTestStatus, Task
from chalicelib.entities.images import BuildState, ImageBase
from chalicelib.schemas_responses import DirectDownloadOut, OpenOut, Out, PresignedPostOut

# -- inference jobs ---------------------------------------------------------------------------


class InferenceJobCreatedOut(Out):
    id: str
    app: str
    app_version: int
    train_job_id: str
    predictor_host: Optional[str]  # seed 001's name
    query_host: Optional[str]  # seed 000's name, the same value
    predictor_url: Optional[str]
    status: InferenceJobStatus
    error: Optional[str]


class ServedTrialOut(Out):
    """A trial an inference job serves."""

    id: str
    model_name: str
    knobs: dict[str, Any]
    score: Optional[float]


class RestartOut(OpenOut):
    reason: str
    at: datetime


class InferenceWorkerOut(Out):
    """One served trial, as the seeds list workers (the ensemble is one endpoint)."""

    service_id: str
    status: InferenceJobStatus
    replicas: int
    datetime_started: Optional[datetime]
    datetime_stopped: Optional[datetime]
    trial: ServedTrialOut
    restarts: Optional[int]  # null where the platform cannot count them (SageMaker)
    last_restart: Optional[RestartOut]


class InferenceJobOut(Out):
    id: str
    app: str
    app_version: int
    train_job_id: str
    task: Task
    status: InferenceJobStatus
    user_id: str
    budget: dict[str, float]
    predictor_host: Optional[str]
    query_host: Optional[str]
    predictor_url: Optional[str]
    endpoint_name: str
    workers: list[InferenceWorkerOut]
    datetime_started: Optional[datetime]
    datetime_stopped: Optional[datetime]
    error: Optional[str]


class StopAllOut(Out):
    train_jobs_stopped: int
    inference_jobs_stopped: int


class EndpointCleanupFailureOut(Out):
    name: str
    error: str


class EndpointCleanupOut(Out):
    deleted: list[str]
    failed: list[EndpointCleanupFailureOut]
    kept: list[str]


class BundleMemberOut(Out):
    trial_id: str
    model_name: str
    model_class: str
    model_file: str
    params: str
    onnx: Optional[str]
    knobs: dict[str, Any]
    score: Optional[float]
    dependencies: dict[str, str]


class BundleImageOut(Out):
    """The managed image a bundle's members run in, with its ``pip freeze``."""

    name: str
    ref: str
    pip_freeze: list[str]


class BundleManifestOut(Out):
    """chalicelib/bundle_format.py's manifest."""

    format: int
    app: str
    app_version: int
    task: Task
    created_at: datetime
    members: list[BundleMemberOut]
    requirements: list[str]
    image: BundleImageOut = None  # type: ignore[assignment]  # only when the members run in a managed image


class BundleOut(Out):
    url: str  # presigned download of the .tar.gz
    manifest: BundleManifestOut
    direct: Optional[DirectDownloadOut]  # null unless the request was signed by an IAM user
    image_uri: Optional[str]  # the image its endpoints run on this stack (null locally)


# -- applications, predict and metrics -----------------------------------------------------------


class ApplicationOut(Out):
    name: str
    input_type: Optional[InputType]
    default_output: Any
    slo_micros: int
    top_n: Optional[int]
    version: Optional[int]  # null: the latest version with a running inference job
    previous_version: Optional[int]
    datetime_created: Optional[datetime]
    capture_percent: float  # the share of predict requests captured (0: off)


class ApplicationDetailOut(ApplicationOut):
    serving_version: Optional[int]  # the version that answers now; null: none running


class _DefaultMark(Out):
    # Present (true, with why) only when the answer is the app's default output.
    default: Literal[True] = Field(None, json_schema_extra={"description": "only when defaulted"})  # type: ignore[assignment]
    default_explanation: Optional[str] = Field(None, json_schema_extra={"description": "only when defaulted"})


class RafikiPredictionOut(_DefaultMark):
    """``{"query": ...}``'s answer."""

    prediction: Any
    query_id: int  # ground-truth labels are sent by it (POST /apps/{app}/labels)


class PredictionsOut(_DefaultMark):
    """``{"queries"|"instances": [...]}``'s answer."""

    predictions: list[Any]
    query_ids: list[int]  # in the predictions' order


class ClipperOutputOut(Out):
    """``{"input": ...}``'s answer, and each of ``{"input_batch": [...]}``'s."""

    query_id: int
    output: Any
    default: bool
    default_explanation: Optional[str] = Field(None, json_schema_extra={"description": "only when defaulted"})


class ClipperBatchOut(Out):
    batch_predictions: list[ClipperOutputOut]


#: A predict answer, in the style the request came in (see chalicelib/services/payloads.py).
PredictOut = Union[RafikiPredictionOut, PredictionsOut, ClipperOutputOut, ClipperBatchOut]


class RateMetricOut(Out):
    name: Literal["kilele.requests", "kilele.queries", "kilele.errors", "kilele.defaults"]
    count: int
    meanRate: float  # noqa: N815 - Cluster Serving's name


class BatchSizeMetricOut(Out):
    name: Literal["kilele.batch_size"]
    count: int
    mean: Optional[float]


class LatencyMetricOut(Out):
    """Percentiles only once a request was counted (upper bounds of histogram buckets)."""

    name: Literal["kilele.latency_ms"]
    count: int
    meanRate: float  # noqa: N815
    min: float = None  # type: ignore[assignment]
    max: float = None  # type: ignore[assignment]
    median: float = None  # type: ignore[assignment]
    p75: float = Field(None, alias="_75thPercentile")
    p95: float = Field(None, alias="_95thPercentile")
    p98: float = Field(None, alias="_98thPercentile")
    p99: float = Field(None, alias="_99thPercentile")
    p999: float = Field(None, alias="_999thPercentile")
    note: str = None  # type: ignore[assignment]


MetricOut = Union[RateMetricOut, BatchSizeMetricOut, LatencyMetricOut]


class CaptureOut(Out):
    """Where an app's captured traffic and ground-truth labels are (S3 folders)."""

    app: str
    capture_percent: float
    capture_uri: str
    ground_truth_uri: str


class LabelsReceivedOut(Out):
    app: str
    received: int
    capture_uri: str
    ground_truth_uri: str


# -- the queue API --------------------------------------------------------------------------------


class EnqueuedOut(Out):
    enqueued: int


class QueueResultOut(Out):
    uri: str
    status: Literal["ok", "error"]
    value: Any  # the prediction (null for an error)
    error: Optional[str]
    default: bool
    created_at: Optional[datetime]
    expires_at: int  # epoch seconds


class DequeuedOut(Out):
    results: dict[str, Any]  # uri -> prediction
    errors: dict[str, str]  # uri -> why it failed


# -- projects and stress tests --------------------------------------------------------------------


class ProjectOut(Out):
    project_id: str
    name: str
    description: str
    owner_id: str
    created_at: Optional[datetime]


class StressUploadOut(Out):
    uri: str  # what a test run config names
    upload: PresignedPostOut


class StressTestOut(Out):
    job_id: str
    name: str
    type: Literal["MODEL_STRESS_TEST"]
    status: StressTestStatus
    project_id: str
    test_run_id: Optional[str]
    start_time_secs: int
    running_time_secs: float
    created_at: Optional[datetime]
    error: Optional[str]
    progress: Optional[str]
    ram_request_megabytes: int
    cpu_request_millicores: int
    rime_managed_image: Optional[str]
    custom_image: Optional[dict[str, Any]]


class StressLogsOut(Out):
    job_id: str
    logs: str


class StressResultTableOut(Out):
    """Test cases or the test run summary: the engine's table, as it wrote it."""

    test_run_id: Optional[str]
    version: str
    columns: list[Any]
    records: list[Any]


class UrlOut(Out):
    url: str  # presigned, short-lived
    direct: Optional[DirectDownloadOut]  # null unless the request was signed by an IAM user


# -- managed images ---------------------------------------------------------------------------------


class PipRequirementOut(Out):
    name: str
    version_specifier: Optional[str]


class PipLibraryOut(Out):
    name: str
    version: str


class ManagedImageOut(Out):
    name: str
    owner_id: str
    base: ImageBase
    requirements: list[PipRequirementOut]
    status: BuildState
    image_ref: Optional[str]
    package_requirements: list[str]  # "name==version", once READY
    pip_libraries: list[PipLibraryOut]
    error: Optional[str]
    created_at: Optional[datetime]
    finished_at: Optional[datetime]
    in_use_by: list[str]


class ManagedImagePageOut(Out):
    images: list[ManagedImageOut]
    next_page_token: str  # "" on the last page


class BuildLogOut(Out):
    name: str
    status: BuildState
    error: Optional[str]
    log: str


class DeletedImageOut(Out):
    name: str
    deleted: Literal[True]


__all__ = [
    "InferenceJobCreatedOut", "ServedTrialOut", "RestartOut", "InferenceWorkerOut", "InferenceJobOut", "StopAllOut",
    "BundleMemberOut", "BundleImageOut", "BundleManifestOut", "BundleOut", "ApplicationOut", "ApplicationDetailOut",
    "RafikiPredictionOut", "PredictionsOut", "ClipperOutputOut", "ClipperBatchOut", "PredictOut", "RateMetricOut",
    "BatchSizeMetricOut", "LatencyMetricOut", "MetricOut", "CaptureOut", "LabelsReceivedOut", "EnqueuedOut", "QueueResultOut", "DequeuedOut",
    "ProjectOut", "StressUploadOut", "StressTestOut", "StressLogsOut", "StressResultTableOut", "UrlOut",
    "PipRequirementOut", "PipLibraryOut", "ManagedImageOut", "ManagedImagePageOut", "BuildLogOut", "DeletedImageOut",
]
