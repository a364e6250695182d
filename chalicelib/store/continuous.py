"""Continuous-test instances in DynamoDB (the AWS twin of ``ports_continuous.CTInstanceStore``)."""
from __future__ import annotations

import json
from typing import Any, Optional

from pynamodb.exceptions import DoesNotExist, PutError, UpdateError

from chalicelib.entities.continuous import Breach, CTInstance, Monitor
from chalicelib.errors import Conflict, NotFound
from chalicelib.store.models import CTInstanceItem
from chalicelib.store.repositories import _dt, _failed_condition, _iso

_JSON_FIELDS = {"source", "monitors", "breaches"}


def _stored(name: str, value: Any) -> Any:
    if name == "monitors":
        return json.dumps([m.to_dict() for m in value])
    if name == "breaches":
        return json.dumps([b.to_dict() for b in value])
    if name == "source":
        return json.dumps(value)
    return value


class CTInstanceRepository:
    def add(self, instance: CTInstance) -> None:
        item = CTInstanceItem(
            instance.id, project_id=instance.project_id, owner_id=instance.owner_id, name=instance.name,
            bin_size_seconds=instance.bin_size_seconds, ot_test_run_id=instance.ot_test_run_id,
            created_at=_iso(instance.created_at), active=instance.active, timestamp_col=instance.timestamp_col,
            history_key=instance.history_key, bins_key=instance.bins_key, running_job_id=instance.running_job_id,
            last_job_id=instance.last_job_id, error=instance.error,
            **{name: _stored(name, getattr(instance, name)) for name in _JSON_FIELDS})
        try:
            item.save(condition=CTInstanceItem.id.does_not_exist())
        except PutError as e:
            if _failed_condition(e):
                raise Conflict(f"a CT instance {instance.id!r} exists") from e
            raise

    def get(self, instance_id: str) -> Optional[CTInstance]:
        try:
            return self._entity(CTInstanceItem.get(instance_id, consistent_read=True))
        except DoesNotExist:
            return None

    def list_of_project(self, project_id: str) -> list[CTInstance]:
        return [self._entity(i) for i in CTInstanceItem.by_project.query(project_id)]

    def update(self, instance_id: str, **fields: Any) -> None:
        actions = [getattr(CTInstanceItem, name).set(_stored(name, value)) if value is not None
                   else getattr(CTInstanceItem, name).remove() for name, value in fields.items()]
        if not actions:
            return
        try:
            CTInstanceItem(instance_id).update(actions=actions, condition=CTInstanceItem.id.exists())
        except UpdateError as e:
            if _failed_condition(e):
                raise NotFound(f"no CT instance {instance_id!r}") from e
            raise

    def claim_run(self, instance_id: str, job_id: str, unless_running: Optional[str] = None) -> bool:
        condition = CTInstanceItem.running_job_id.does_not_exist()
        if unless_running is not None:
            condition = condition | (CTInstanceItem.running_job_id == unless_running)
        try:
            CTInstanceItem(instance_id).update(actions=[CTInstanceItem.running_job_id.set(job_id)],
                                               condition=CTInstanceItem.id.exists() & condition)
            return True
        except UpdateError as e:
            if _failed_condition(e):
                return False
            raise

    @staticmethod
    def _entity(item: CTInstanceItem) -> CTInstance:
        return CTInstance(
            id=item.id, owner_id=item.owner_id, project_id=item.project_id, name=item.name,
            bin_size_seconds=int(item.bin_size_seconds), ot_test_run_id=item.ot_test_run_id,
            created_at=_dt(item.created_at), source=json.loads(item.source or "{}"), active=bool(item.active),
            timestamp_col=item.timestamp_col, history_key=item.history_key, bins_key=item.bins_key,
            running_job_id=item.running_job_id, last_job_id=item.last_job_id, error=item.error,
            monitors=[Monitor.from_dict(m) for m in json.loads(item.monitors or "[]")],
            breaches=[Breach.from_dict(b) for b in json.loads(item.breaches or "[]")])


__all__ = ["CTInstanceRepository"]
