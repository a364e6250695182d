"""The port of continuous-test instances (seed 002's ``RIMECTInstance``).

A section of the ports kept in its own module, like ``ports_images``. The AWS twin is
``chalicelib.store.continuous.CTInstanceRepository`` (DynamoDB through pynamodb; the local stack
runs the same code on its moto server); the unit tests' twin is
``tests/unit/services/fakes_continuous.FakeCTInstanceStore``; both pass
``tests/contract/test_ct_instance_store.py``.
"""
from __future__ import annotations

from typing import Any, Optional, Protocol

from chalicelib.ct_metrics_format import CTMetricsRecord
from chalicelib.entities.continuous import CTInstance


class CTInstanceStore(Protocol):
    def add(self, instance: CTInstance) -> None:
        """Store a new instance (``Conflict`` if its id exists)."""

    def get(self, instance_id: str) -> Optional[CTInstance]: ...

    def list_of_project(self, project_id: str) -> list[CTInstance]:
        """A project's instances, oldest first."""

    def update(self, instance_id: str, **fields: Any) -> None:
        """Set fields of a stored instance (``NotFound`` if none); a field given as None is
        cleared (``running_job_id=None``)."""

    def claim_run(self, instance_id: str, job_id: str, unless_running: Optional[str] = None) -> bool:
        """Set ``running_job_id`` to ``job_id`` only if no job runs, or the one running is
        ``unless_running`` (a job known to have ended); False otherwise."""


class CTMetricsSink(Protocol):
    """Where continuous tests' metrics go (``chalicelib/ct_metrics_format.py`` says which): the
    AWS twin ``chalicelib.adapters.ct_metrics.emf.EmfCTMetrics`` (EMF log lines CloudWatch turns
    into metrics), the local twin ``chalicelib.adapters.ct_metrics.local.LocalCTMetricsLog`` (the
    same documents in the local stack's data directory); both pass
    ``tests/contract/test_ct_metrics_sinks.py``."""

    def emit(self, record: CTMetricsRecord) -> None:
        """Write ``record``'s documents; ``Unavailable`` when they cannot be written."""


__all__ = ["CTInstanceStore", "CTMetricsSink"]
