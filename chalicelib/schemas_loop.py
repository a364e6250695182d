"""Request and response schemas of scheduled continuous tests and the retrain loop (issue 12
items 4 and 6). The service checks what the schemas cannot (the app exists, the prefix is the
caller's), so its errors name the field."""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt

from chalicelib.schemas import Schema


class S3PrefixSource(Schema):
    s3_prefix: str = Field(min_length=6, max_length=1000, pattern=r"^s3://[^/]+/.+$")


class AppTrafficSource(Schema):
    app: str = Field(min_length=1, max_length=200)


class SetCTScheduleRequest(Schema):
    """``expression``: EventBridge Scheduler's ``rate(...)`` or ``cron(...)`` (UTC); ``source``:
    where new data lands (a prefix of your uploads) or an app whose captured traffic is tested."""

    expression: str = Field(min_length=1, max_length=256)
    source: Union[S3PrefixSource, AppTrafficSource]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScheduledRunOut(BaseModel):
    """One firing's outcome: STARTED (job_id, num_files, num_label_files, data: the sources
    manifest the job reads), SKIPPED, NO_DATA or FAILED (reason)."""

    model_config = ConfigDict(extra="allow")  # records of older firings (num_rows) read as they are
    status: Literal["STARTED", "SKIPPED", "NO_DATA", "FAILED"]
    time: str
    reason: Optional[str] = None
    job_id: Optional[str] = None
    num_files: Optional[int] = None
    num_label_files: Optional[int] = None
    data: Optional[str] = None


class CTScheduleOut(_Out):
    ct_instance_id: str
    schedule_name: str
    expression: Optional[str]
    enabled: bool
    source: dict[str, Any]
    watermark: Optional[str]
    num_files_tested: int
    runs: list[ScheduledRunOut]


class RemovedOut(_Out):
    ct_instance_id: str
    removed: Literal[True]




class RetrainDataset(Schema):
    dataset_id: str = Field(min_length=1, max_length=100)


class RetrainPolicyRequest(Schema):
    """``monitors``: ids of the CT monitors whose breach (on a CT of the app's traffic) retrains;
    ``dataset``: ``{"dataset_id"}`` or ``"labelled_captured_traffic"``; ``budget``: over the latest
    train job's; ``deploy`` with ``holdout_dataset_id``."""

    # As precise as the service's check (services/retrain_policies.py): the schemathesis pass sent
    # {"monitors": [""], "dataset": {}}, valid under a looser schema, and got the service's 400.
    monitors: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(min_length=1, max_length=20)
    dataset: Union[Literal["labelled_captured_traffic"], RetrainDataset]
    budget: Optional[dict[Literal["TIME_HOURS", "MODEL_TRIAL_COUNT", "GPU_COUNT"], Union[NonNegativeInt, NonNegativeFloat]]] = None  # 5 stays 5
    deploy: bool = False
    holdout_dataset_id: Optional[str] = Field(None, min_length=1, max_length=100)


class RetrainPolicyOut(_Out):
    app: str
    monitors: list[str]
    dataset: Any
    budget: dict[str, float]
    deploy: bool
    holdout_dataset_id: Optional[str]
    retrain: Optional[dict[str, Any]]


class TimelineEntryOut(_Out):
    time: str
    step: str
    reason: str
    data: dict[str, Any]


class RemovedPolicyOut(_Out):
    app: str
    removed: Literal[True]


__all__ = ["AppTrafficSource", "CTScheduleOut", "RemovedOut", "RemovedPolicyOut", "RetrainPolicyOut",
           "RetrainPolicyRequest", "S3PrefixSource", "ScheduledRunOut", "TimelineEntryOut",
           "SetCTScheduleRequest"]
