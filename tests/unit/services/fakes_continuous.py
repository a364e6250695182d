"""In-memory fakes of the CT instance store and the CT metrics sink (kept apart from fakes.py, which is long)."""
from __future__ import annotations

import copy
from typing import Any, Optional

from chalicelib.ct_metrics_format import CTMetricsRecord
from chalicelib.entities.continuous import CTInstance
from chalicelib.errors import Conflict, NotFound
from chalicelib.ports_continuous import CTInstanceStore, CTMetricsSink

from unit.services.fakes import Fake, implements


@implements(CTInstanceStore)
class FakeCTInstanceStore(Fake):
    def __init__(self) -> None:
        super().__init__()
        self.items: dict[str, CTInstance] = {}

    def add(self, instance: CTInstance) -> None:
        if instance.id in self.items:
            raise Conflict(f"a CT instance {instance.id!r} exists")
        self.items[instance.id] = copy.deepcopy(instance)

    def get(self, instance_id: str) -> Optional[CTInstance]:
        return copy.deepcopy(self.items.get(instance_id))

    def list_of_project(self, project_id: str) -> list[CTInstance]:
        found = [i for i in self.items.values() if i.project_id == project_id]
        return copy.deepcopy(sorted(found, key=lambda i: i.created_at))

    def update(self, instance_id: str, **fields: Any) -> None:
        instance = self.items.get(instance_id)
        if instance is None:
            raise NotFound(f"no CT instance {instance_id!r}")
        for name, value in fields.items():
            setattr(instance, name, copy.deepcopy(value))

    def claim_run(self, instance_id: str, job_id: str, unless_running: Optional[str] = None) -> bool:
        instance = self.items.get(instance_id)
        if instance is None or instance.running_job_id not in (None, unless_running):
            return False
        instance.running_job_id = job_id
        return True


@implements(CTMetricsSink)
class FakeCTMetricsSink(Fake):
    """Keeps each record emitted; ``failures["emit"]`` is raised instead when set."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[CTMetricsRecord] = []

    def emit(self, record: CTMetricsRecord) -> None:
        self.records.append(record)
