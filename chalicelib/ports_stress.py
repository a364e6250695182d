"""Ports of the stress-test side (seed 002): projects and stress-test jobs."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Optional, Protocol

from chalicelib.entities import Project, StressTestJob, StressTestStatus


class ProjectStore(Protocol):
    def add(self, project: Project) -> None:
        """Store a new project and claim its name for its owner; ``Conflict`` if taken."""

    def get(self, project_id: str) -> Optional[Project]: ...

    def get_by_name(self, owner_id: str, name: str) -> Optional[Project]: ...

    def list_by_owner(self, owner_id: str) -> list[Project]:
        """One owner's projects, oldest first."""

    def list_all(self) -> list[Project]:
        """Everyone's projects, oldest first."""


class StressTestJobStore(Protocol):
    def add(self, job: StressTestJob) -> None: ...

    def get(self, job_id: str, now: datetime) -> Optional[StressTestJob]:
        """The job unless it expired (TTL deletion lags, and never happens in moto: filtered)."""

    def list_by_owner(self, owner_id: str, now: datetime) -> list[StressTestJob]:
        """One owner's unexpired jobs, newest first."""

    def list_all(self, now: datetime) -> list[StressTestJob]:
        """Everyone's unexpired jobs, newest first."""

    def set_status(self, job_id: str, status: StressTestStatus, only_from: tuple[StressTestStatus, ...],
                   **fields: Any) -> bool:
        """Change the status (and set ``fields``) only from one of ``only_from``; False otherwise."""

    def update(self, job_id: str, **fields: Any) -> None:
        """Set fields of a stored job (``execution_arn``, ``progress`` ...)."""
