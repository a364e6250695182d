"""Projects and stress-test jobs (seed 002's RIME half)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Optional

from chalicelib.entities.accounts import iso_or_none

#: A user's project of this name is made on first use when a stress test names no project.
DEFAULT_PROJECT_NAME = "default"
#: The one job type (seed 002's JobType).
MODEL_STRESS_TEST = "MODEL_STRESS_TEST"


class StressTestStatus(str, Enum):
    """Seed 002's JobStatus values, exactly."""

    UNKNOWN_JOB_STATUS = "UNKNOWN_JOB_STATUS"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    FAILING = "FAILING"
    SUCCEEDED = "SUCCEEDED"

    @property
    def is_final(self) -> bool:
        return self in (StressTestStatus.FAILING, StressTestStatus.SUCCEEDED)


@dataclass
class Project:
    id: str
    owner_id: str
    name: str
    description: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "project_id": self.id,
            "name": self.name,
            "description": self.description,
            "owner_id": self.owner_id,
            "created_at": iso_or_none(self.created_at),
        }


@dataclass
class StressTestJob:
    """One run of the engine on a test run config. ``config`` is the config as resolved by the
    platform (paths are object keys of the data bucket); ``message`` is what the worker gets."""

    id: str
    owner_id: str
    project_id: str
    name: str
    config: dict[str, Any]
    created_at: datetime
    expires_at: datetime
    status: StressTestStatus = StressTestStatus.PENDING
    test_run_id: Optional[str] = None
    started_at: Optional[datetime] = None
    finished_at: Optional[datetime] = None
    error: Optional[str] = None
    progress: Optional[str] = None
    ram_request_megabytes: int = 4000
    cpu_request_millicores: int = 1500
    rime_managed_image: Optional[str] = None
    custom_image: Optional[dict[str, Any]] = None
    execution_arn: Optional[str] = None
    logs_key: Optional[str] = None
    results_prefix: Optional[str] = None
    summary: dict[str, Any] = field(default_factory=dict)

    def running_time_secs(self, now: datetime) -> float:
        if self.started_at is None:
            return 0.0
        end = self.finished_at or now
        return max(0.0, (end - self.started_at).total_seconds())

    def to_dict(self, now: datetime) -> dict[str, Any]:
        start = self.started_at or self.created_at
        return {
            "job_id": self.id,
            "name": self.name,
            "type": MODEL_STRESS_TEST,
            "status": self.status.value,
            "project_id": self.project_id,
            "test_run_id": self.test_run_id,
            "start_time_secs": int(start.timestamp()),
            "running_time_secs": float(self.running_time_secs(now)),
            "created_at": iso_or_none(self.created_at),
            "error": self.error,
            "progress": self.progress,
            "ram_request_megabytes": self.ram_request_megabytes,
            "cpu_request_millicores": self.cpu_request_millicores,
            "rime_managed_image": self.rime_managed_image,
            "custom_image": self.custom_image,
        }
