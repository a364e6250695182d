"""Inference jobs, applications and per-app metrics."""
from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any, Iterable, Optional

from pynamodb.exceptions import DeleteError, DoesNotExist, UpdateError

from chalicelib.entities import Application, InferenceJob, InferenceJobStatus, InputType, Task
from chalicelib.errors import Conflict
from chalicelib.latency import LATENCY_BUCKETS, latency_bucket
from chalicelib.ports import ServingState
from chalicelib.store.models import AppItem, InferenceJobItem
from chalicelib.store.repositories import _dt, _failed_condition, _iso, _opt_dt, _plain_map, set_status_if


class InferenceJobRepository:
    def add(self, job: InferenceJob) -> None:
        InferenceJobItem(
            job.id,
            user_id=job.user_id,
            user_app=f"{job.user_id}#{job.app}",
            app=job.app,
            app_version=job.app_version,
            train_job_id=job.train_job_id,
            task=job.task.value,
            endpoint_name=job.endpoint_name,
            bundle_key=job.bundle_key,
            members=job.members,
            created_at=_iso(job.created_at),
            status=job.status.value,
            budget=job.budget,
            predictor_url=job.predictor_url,
        ).save(condition=InferenceJobItem.id.does_not_exist())

    def get(self, job_id: str) -> Optional[InferenceJob]:
        try:
            return self._entity(InferenceJobItem.get(job_id, consistent_read=True))
        except DoesNotExist:
            return None

    def list_by_user(self, user_id: str) -> list[InferenceJob]:
        return [self._entity(i) for i in InferenceJobItem.by_user.query(user_id)]

    def list_of_app(self, user_id: str, app: str) -> list[InferenceJob]:
        return [self._entity(i) for i in InferenceJobItem.by_app.query(f"{user_id}#{app}")]

    def list_live_of_app(self, user_id: str, app: str) -> list[InferenceJob]:
        live = InferenceJobItem.status.is_in(InferenceJobStatus.STARTED.value, InferenceJobStatus.RUNNING.value)
        return [self._entity(i) for i in InferenceJobItem.by_app.query(f"{user_id}#{app}", filter_condition=live)]

    def list_all(self) -> list[InferenceJob]:
        return [self._entity(i) for i in InferenceJobItem.scan()]

    def set_status(
        self,
        job_id: str,
        status: InferenceJobStatus,
        only_from: tuple[InferenceJobStatus, ...],
        at: Optional[datetime] = None,
        error: Optional[str] = None,
    ) -> bool:
        actions = []
        if at:
            actions.append(InferenceJobItem.stopped_at.set(_iso(at)))
        if error:
            actions.append(InferenceJobItem.error.set(error[:2000]))
        return set_status_if(InferenceJobItem(job_id), InferenceJobItem.status, status, only_from, actions)

    def set_restarts(self, job_id: str, restarts: int, last_restart: Optional[dict[str, Any]]) -> None:
        item = InferenceJobItem.last_restart
        last = item.set(last_restart) if last_restart else item.remove()
        try:
            InferenceJobItem(job_id).update(actions=[InferenceJobItem.restarts.set(restarts), last],
                                            condition=InferenceJobItem.id.exists())
        except UpdateError as e:
            if not _failed_condition(e):
                raise

    @staticmethod
    def _entity(item: InferenceJobItem) -> InferenceJob:
        return InferenceJob(
            id=item.id,
            user_id=item.user_id,
            app=item.app,
            app_version=int(item.app_version),
            train_job_id=item.train_job_id,
            task=Task(item.task),
            endpoint_name=item.endpoint_name,
            bundle_key=item.bundle_key,
            members=[_plain_map(m) for m in (item.members or [])],
            created_at=_dt(item.created_at),
            status=InferenceJobStatus(item.status),
            budget=_plain_map(item.budget) or {},
            predictor_url=item.predictor_url,
            stopped_at=_opt_dt(item.stopped_at),
            error=item.error,
            restarts=None if item.restarts is None else int(item.restarts),
            last_restart=_plain_map(item.last_restart),
        )


class ApplicationRepository:
    """Applications, one row each (``user_app``). The same row is the app's serving record:
    ``serving_jobs``, the ids of its live inference jobs, kept whether the app is registered or
    not, so that predict learns both the app and what serves it from one consistent read. A row
    without ``created_at`` is an unregistered app's serving record only."""

    # What a registration sets; unregistering removes them and keeps the serving record.
    _REGISTERED = ("created_at", "input_type", "default_output", "slo_micros", "top_n", "version", "previous_version",
                   "capture_percent")

    def add(self, app: Application) -> None:
        item = AppItem(f"{app.user_id}#{app.name}")
        try:
            item.update(actions=self._actions(app, with_versions=True), condition=AppItem.created_at.does_not_exist())
        except UpdateError as e:
            if _failed_condition(e):
                raise Conflict(f"application {app.name!r} is already registered") from e
            raise

    def get(self, user_id: str, name: str) -> Optional[Application]:
        try:
            return self._entity(AppItem.get(f"{user_id}#{name}", consistent_read=True))
        except DoesNotExist:
            return None

    def list_of_user(self, user_id: str) -> list[Application]:
        items = AppItem.scan((AppItem.user_id == user_id) & AppItem.created_at.exists())
        return sorted((a for a in map(self._entity, items) if a), key=lambda a: a.created_at)

    def save(self, app: Application) -> None:
        """Store the app's settings (its version pointer changes only through switch_version)."""
        item = AppItem(f"{app.user_id}#{app.name}")
        try:
            item.update(actions=self._actions(app, with_versions=False), condition=AppItem.created_at.exists())
        except UpdateError as e:
            if _failed_condition(e):
                raise Conflict(f"application {app.name!r} was unregistered meanwhile") from e
            raise

    def switch_version(self, user_id: str, name: str, version: Optional[int], expected: Optional[int]) -> bool:
        """Serve ``version`` (remembering the current one for rollback) if the current one is
        still ``expected``; False if another switch happened meanwhile."""
        item = AppItem(f"{user_id}#{name}")
        condition = AppItem.created_at.exists() & (
            AppItem.version.does_not_exist() if expected is None else AppItem.version == expected
        )
        actions = [
            AppItem.version.set(version) if version is not None else AppItem.version.remove(),
            # -1 remembers "the latest version", so a rollback can return to following it
            AppItem.previous_version.set(expected if expected is not None else -1),
        ]
        try:
            item.update(actions=actions, condition=condition)
            return True
        except UpdateError as e:
            if _failed_condition(e):
                return False
            raise

    def delete(self, user_id: str, name: str) -> None:
        """Unregister: the registration's attributes go, the serving record stays (a row with
        no live job left goes entirely)."""
        item = AppItem(f"{user_id}#{name}")
        try:
            item.update(actions=[getattr(AppItem, a).remove() for a in self._REGISTERED],
                        condition=AppItem.created_at.exists())
        except UpdateError as e:
            if not _failed_condition(e):
                raise
        try:
            item.delete(condition=AppItem.serving_jobs.does_not_exist())
        except DeleteError as e:
            if not _failed_condition(e):
                raise

    def serving_state(self, user_id: str, name: str) -> ServingState:
        try:
            item = AppItem.get(f"{user_id}#{name}", consistent_read=True)
        except DoesNotExist:
            return ServingState(None)
        return ServingState(self._entity(item), frozenset(item.serving_jobs or ()), bool(item.serving_tracked))

    def add_live_jobs(self, user_id: str, name: str, job_ids: Iterable[str]) -> None:
        ids = set(job_ids)
        actions = [AppItem.user_id.set(user_id), AppItem.name.set(name), AppItem.serving_tracked.set(True)]
        if ids:
            actions.append(AppItem.serving_jobs.add(ids))
        AppItem(f"{user_id}#{name}").update(actions=actions)

    def remove_live_job(self, user_id: str, name: str, job_id: str) -> None:
        try:
            AppItem(f"{user_id}#{name}").update(actions=[AppItem.serving_jobs.delete({job_id})],
                                                condition=AppItem.user_app.exists())
        except UpdateError as e:
            if not _failed_condition(e):  # no row: nothing recorded to forget
                raise

    @staticmethod
    def _actions(app: Application, with_versions: bool) -> list[Any]:
        values = {
            "user_id": app.user_id,
            "name": app.name,
            "created_at": _iso(app.created_at),
            "input_type": app.input_type.value if app.input_type else None,
            "default_output": json.dumps(app.default_output),
            "slo_micros": app.slo_micros,
            "top_n": app.top_n,
            "capture_percent": app.capture_percent or None,
        }
        if with_versions:
            values.update(version=app.version, previous_version=app.previous_version)
        return [getattr(AppItem, k).set(v) if v is not None else getattr(AppItem, k).remove()
                for k, v in values.items()]

    @staticmethod
    def _entity(item: AppItem) -> Optional[Application]:
        if item.created_at is None:  # an unregistered app's serving record
            return None
        return Application(
            user_id=item.user_id,
            name=item.name,
            created_at=_dt(item.created_at),
            input_type=InputType(item.input_type) if item.input_type else None,
            default_output=json.loads(item.default_output) if item.default_output else None,
            slo_micros=int(item.slo_micros),
            top_n=int(item.top_n) if item.top_n is not None else None,
            version=int(item.version) if item.version is not None else None,
            previous_version=int(item.previous_version) if item.previous_version is not None else None,
            capture_percent=float(item.capture_percent or 0),
        )


class AppMetricsRepository:
    """Per-minute counters with atomic ADDs. The histogram's bucket attributes (``lat_<i>``)
    are named at run time, which a pynamodb model cannot declare, so this repository speaks
    to DynamoDB through boto3."""

    COUNTERS = ("requests", "queries", "errors", "defaults", "batches", "batch_size_sum")

    def __init__(self, table_name: str, client: Any, retention_seconds: int = 7 * 24 * 3600):
        self.table_name = table_name
        self.retention_seconds = retention_seconds
        self._dynamodb = client

    def record(self, user_app: str, at: datetime, latency_ms: float, queries: int, error: bool, default: bool,
               batch_size: Optional[int] = None) -> None:
        """Count one request in its minute (one atomic UpdateItem)."""
        counters = {"requests": 1, "queries": queries, "errors": int(error), "defaults": int(default)}
        if batch_size:  # the size of the server-side batch this request's queries rode in
            counters.update(batches=1, batch_size_sum=int(batch_size))
        self.add_minute(user_app, int(at.timestamp() // 60), counters, {latency_bucket(latency_ms): 1})

    def add_minute(self, user_app: str, minute: int, counters: dict[str, int], histogram: dict[int, int]) -> None:
        """Add counters and histogram counts to one app-minute: one atomic UpdateItem."""
        values = {f"c{i}": (name, n) for i, (name, n) in enumerate(counters.items()) if n}
        values.update({f"h{bucket}": (f"lat_{int(bucket)}", n) for bucket, n in histogram.items() if n})
        names = {f"#{key}": attribute for key, (attribute, _) in values.items()}
        names["#exp"] = "expires_at"
        adds = ", ".join(f"#{key} :{key}" for key in values)
        self._dynamodb.update_item(
            TableName=self.table_name,
            Key={"user_app": {"S": user_app}, "minute": {"N": str(int(minute))}},
            UpdateExpression=(f"ADD {adds} " if adds else "") + "SET #exp = :exp",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={
                **{f":{key}": {"N": str(int(n))} for key, (_, n) in values.items()},
                ":exp": {"N": str(int(minute) * 60 + 60 + self.retention_seconds)},
            },
        )

    def window(self, user_app: str, since: datetime) -> dict[str, Any]:
        """Summed counters and histogram since ``since`` (expired items are skipped), and
        ``first_minute``: the earliest minute with counts (None if none)."""
        paginator = self._dynamodb.get_paginator("query")
        totals: dict[str, Any] = {k: 0 for k in self.COUNTERS}
        first_minute = None
        histogram = [0] * LATENCY_BUCKETS
        now = int(time.time())
        for page in paginator.paginate(
            TableName=self.table_name,
            KeyConditionExpression="user_app = :u AND minute >= :m",
            ExpressionAttributeValues={":u": {"S": user_app}, ":m": {"N": str(int(since.timestamp() // 60))}},
            ConsistentRead=True,
        ):
            for item in page["Items"]:
                if int(item.get("expires_at", {"N": str(now + 1)})["N"]) <= now:
                    continue  # TTL deletion is lazy (and never happens in moto)
                minute = int(item["minute"]["N"])
                first_minute = minute if first_minute is None else min(first_minute, minute)
                for key in self.COUNTERS:
                    totals[key] += int(item.get(key, {"N": "0"})["N"])
                for name, value in item.items():
                    if name.startswith("lat_"):
                        histogram[int(name[4:])] += int(value["N"])
        return {**totals, "histogram": histogram, "first_minute": first_minute}
