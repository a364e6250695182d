"""Scheduled continuous tests with a data source (issue 12 item 4).

A CT instance can be given a schedule (``rate(...)``/``cron(...)``, through the scheduler port:
EventBridge Scheduler on AWS, the local scheduler locally) and a data source:

- ``{"s3_prefix": "s3://<data bucket>/stress-inputs/<your id>/<folder>/"}``: a prefix of the
  caller's uploads where new files (CSV or Parquet, with the instance's timestamp column) land;
  each firing tests the files that appeared since the last run;
- ``{"app": "<name>"}``: the app's captured traffic: the queries answered since the last run,
  with the labels sent so far joined in (as the instance's label column).

Each firing of the schedule invokes the target ``run_incremental_continuous_test`` (registered
by the composition root), which runs :meth:`CTScheduleService.run`: from a listing alone it
decides what is new (:mod:`chalicelib.services.ct_sources`) and starts an incremental continuous
test whose evaluation file lists those files; the job reads them in the worker, which has pandas
(this process need not: the schedule Lambda on AWS ships none). What the schedule has
seen (the watermark: the time up to which traffic was tested, or the files tested) is kept beside
the instance's bins (``ct/<instance>/schedule.json``) and moves only when a job starts, so data is
tested once. A firing while the instance's job runs is skipped and recorded (the instance's
``claim_run`` lets one job run at a time), never queued: the next firing takes the data both
would have. Every firing's outcome (STARTED, SKIPPED, NO_DATA, FAILED with why) is recorded in
``runs`` (the newest ``MAX_RUNS``) and logged.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any, Optional

from chalicelib.entities import User
from chalicelib.entities.schedules import Firing, Schedule
from chalicelib.errors import Conflict, DomainError, InvalidInput, NotFound
from chalicelib.ports import ApplicationStore, BlobStore, Scheduler, UserStore
from chalicelib.ports_continuous import CTInstanceStore
from chalicelib.ports_loop import KeyLister
from chalicelib.services import Clock, ct_sources, new_id, utc_now
from chalicelib.services.continuous_tests import ContinuousTestService
from chalicelib.services.stress_tests import UPLOAD_PREFIX

log = logging.getLogger("kilele.ct_schedules")

TARGET = "run_incremental_continuous_test"
MAX_RUNS = 50


def schedule_name(instance_id: str) -> str:
    return f"ct-{instance_id}"


def _state_key(instance_id: str) -> str:
    return f"ct/{instance_id}/schedule.json"


class CTScheduleService:
    """Schedules of CT instances and the target their firings run."""

    def __init__(self, continuous_tests: ContinuousTestService, instances: CTInstanceStore, scheduler: Scheduler, blobs: BlobStore,
                 keys: KeyLister, users: UserStore, apps: ApplicationStore, bucket: str, clock: Clock = utc_now,
                 capture_settle_seconds: float = 0.0):
        """``capture_settle_seconds``: how long after a query was answered its captured record
        may still be in a buffer (the capture flush interval, and a margin): a firing on an app's
        traffic tests queries answered up to that long before it, so none is passed over unwritten."""
        self._settle = timedelta(seconds=max(0.0, capture_settle_seconds))
        self._ct = continuous_tests
        self._instances = instances
        self._scheduler = scheduler
        self._blobs = blobs
        self._keys = keys
        self._users = users
        self._apps = apps
        self._bucket = bucket
        self._clock = clock

    # -- the API's side ----------------------------------------------------------------------------

    def set_schedule(self, actor: User, instance_id: str, expression: str, source: Any) -> dict[str, Any]:
        """Give the instance a schedule and data source (replacing any it had; the watermark is kept
        when the source is unchanged, else it starts now for traffic and empty for a prefix)."""
        instance = self._ct.get_ct_instance(actor, instance_id)
        schedule = Schedule(schedule_name(instance_id), expression, TARGET, {"ct_instance_id": instance_id},
                            description=f"continuous test of CT instance {instance_id}").validate()
        parsed_source = self._parse_source(actor, source)
        state = self._read_state(instance_id)
        if state is None or state.get("source") != parsed_source:
            state = {"source": parsed_source, "watermark": None, "seen_files": [], "runs": []}
            if "app" in parsed_source:  # traffic from now on: a schedule does not test the app's past
                state["watermark"] = self._clock().isoformat()
        state.update(expression=expression, owner_email=actor.email, owner_id=instance["owner_id"])
        if self._scheduler.get(schedule.name) is None:
            self._scheduler.create(schedule)
        else:
            self._scheduler.update(schedule)
        self._write_state(instance_id, state)
        return self._view(instance_id, state)

    def get_schedule(self, actor: User, instance_id: str) -> dict[str, Any]:
        """The instance's schedule, source, watermark and recent runs; NotFound when it has none."""
        self._ct.get_ct_instance(actor, instance_id)
        state = self._read_state(instance_id)
        if state is None:
            raise NotFound(f"CT instance {instance_id!r} has no schedule")
        return self._view(instance_id, state)

    def remove_schedule(self, actor: User, instance_id: str) -> None:
        """Remove the instance's schedule (its record of runs goes with it)."""
        self._ct.get_ct_instance(actor, instance_id)
        if self._read_state(instance_id) is None:
            raise NotFound(f"CT instance {instance_id!r} has no schedule")
        try:
            self._scheduler.delete(schedule_name(instance_id))
        except NotFound:
            pass  # removed from the scheduler already: the record goes all the same
        self._blobs.delete(_state_key(instance_id))

    def _parse_source(self, actor: User, source: Any) -> dict[str, Any]:
        if not isinstance(source, dict) or len(source) != 1 or next(iter(source)) not in ("s3_prefix", "app"):
            raise InvalidInput('source: {"s3_prefix": "s3://..."} or {"app": "<app name>"}')
        if "app" in source:
            name = source["app"]
            if not isinstance(name, str) or self._apps.get(actor.id, name) is None:
                raise NotFound(f"source.app: no app {name!r} of yours")
            return {"app": name}
        uri = source["s3_prefix"]
        own = f"{UPLOAD_PREFIX}/{actor.id}/"
        bucket, _, prefix = uri.partition("s3://")[2].partition("/") if isinstance(uri, str) else ("", "", "")
        if not isinstance(uri, str) or not uri.startswith("s3://") or bucket != self._bucket \
                or not prefix.startswith(own) or ".." in prefix.split("/"):
            raise InvalidInput(f"source.s3_prefix: a prefix of your uploads, s3://{self._bucket}/{own}<folder>/")
        return {"s3_prefix": uri}

    def _view(self, instance_id: str, state: dict[str, Any]) -> dict[str, Any]:
        schedule = self._scheduler.get(schedule_name(instance_id))
        return {"ct_instance_id": instance_id, "schedule_name": schedule_name(instance_id),
                "expression": state.get("expression"), "enabled": bool(schedule and schedule.enabled),
                "source": state["source"], "watermark": state.get("watermark"),
                "num_files_tested": len(state.get("seen_files") or ()), "runs": list(reversed(state["runs"]))}

    def traffic_source(self, instance_id: str) -> Optional[tuple[str, str]]:
        """(owner's email, app) when the instance's schedule tests an app's captured traffic, else None
        (the retrain loop finds the app a breach is about with it)."""
        state = self._read_state(instance_id)
        if state is None or "app" not in state.get("source", {}):
            return None
        return state.get("owner_email", ""), state["source"]["app"]

    # -- the schedule's target ---------------------------------------------------------------------

    def run(self, firing: Firing) -> dict[str, Any]:
        """One firing: an incremental continuous test over the data that arrived since the last
        run, as the instance's owner. The outcome is recorded and returned, never raised for the
        expected cases (no new data, a job running): a schedule's retries would only repeat them."""
        instance_id = str(firing.payload.get("ct_instance_id", ""))
        state = self._read_state(instance_id)
        if state is None:
            log.warning("schedule %s fired for CT instance %r, which has no schedule record", firing.schedule,
                        instance_id)
            return {"status": "FAILED", "reason": f"CT instance {instance_id!r} has no schedule"}
        try:
            outcome = self._run(instance_id, state, firing)
        except DomainError as e:
            outcome = {"status": "FAILED", "reason": str(e)[:1000]}
        outcome["time"] = firing.time.isoformat()
        level = logging.WARNING if outcome["status"] == "FAILED" else logging.INFO
        log.log(level, "scheduled continuous test of %s: %s %s", instance_id, outcome["status"],
                outcome.get("reason") or outcome.get("job_id") or "")
        state = self._read_state(instance_id) or state  # the job's start moved the watermark
        state["runs"] = (state["runs"] + [outcome])[-MAX_RUNS:]
        self._write_state(instance_id, state)
        return outcome

    def _run(self, instance_id: str, state: dict[str, Any], firing: Firing) -> dict[str, Any]:
        owner = self._users.get(state.get("owner_email", ""))
        if owner is None or owner.id != state.get("owner_id") or owner.is_banned:
            return {"status": "FAILED", "reason": "the schedule's owner no longer exists or is banned"}
        instance = self._ct.get_ct_instance(owner, instance_id)
        if instance.get("running_job_id"):  # skipped, not queued: the next firing takes this data too
            return {"status": "SKIPPED", "reason": f"job {instance['running_job_id']} is still running"}
        timestamp_col = instance.get("timestamp_col") or "timestamp"
        source = state["source"]
        if "app" in source:  # the queries answered in [watermark, firing time - settle)
            since = datetime.fromisoformat(state["watermark"]) if state.get("watermark") else None
            # A query answered just before the firing may still be in a capture buffer: the window
            # ends where every record is written, and the next firing starts there.
            until = firing.time - self._settle
            if since is not None and until <= since:
                return {"status": "NO_DATA", "reason": "no data arrived since the last run"}
            label_col = (self._ct_source(instance).get("data_info") or {}).get("label_col")
            new = ct_sources.traffic(self._keys, owner.id, source["app"], since, until, timestamp_col, label_col)
        else:
            prefix = source["s3_prefix"].partition("s3://")[2].partition("/")[2]
            new = ct_sources.files(self._keys, prefix, state.get("seen_files") or [], timestamp_col)
        if new.manifest is None:
            state.update(new.moved)
            self._write_state(instance_id, state)
            return {"status": "NO_DATA", "reason": "no data arrived since the last run"}
        # The files are read by the job, in the worker (this process may have no pandas): it gets
        # their list as its evaluation file, an upload of the owner's (never a data file itself).
        key = f"{UPLOAD_PREFIX}/{owner.id}/{new_id()}/ct-{instance_id}-{firing.time:%Y%m%dT%H%M%S}.sources.json"
        self._blobs.put_bytes(key, json.dumps(new.manifest).encode(), "application/json")
        try:
            job = self._ct.start_incremental_continuous_test(
                owner, instance_id, {"eval_path": f"s3://{self._bucket}/{key}", "timestamp_col": timestamp_col},
                source_prefixes=new.prefixes)
        except Conflict as e:  # a job started between the read and the claim: one job at a time
            self._blobs.delete(key)
            return {"status": "SKIPPED", "reason": str(e)[:1000]}
        state.update(new.moved)
        self._write_state(instance_id, state)
        return {"status": "STARTED", "job_id": job["job_id"], "num_files": new.num_files,
                "num_label_files": len(new.manifest["labels"]), "data": f"s3://{self._bucket}/{key}"}

    def _ct_source(self, instance: dict[str, Any]) -> dict[str, Any]:
        stored = self._instances.get(instance["ct_instance_id"])  # owned by the schedule's owner: read above
        return stored.source if stored is not None else {}

    # -- the record ---------------------------------------------------------------------------------

    def _read_state(self, instance_id: str) -> Optional[dict[str, Any]]:
        try:
            return json.loads(self._blobs.get_bytes(_state_key(instance_id)))
        except NotFound:
            return None

    def _write_state(self, instance_id: str, state: dict[str, Any]) -> None:
        self._blobs.put_bytes(_state_key(instance_id), json.dumps(state).encode(), "application/json")


__all__ = ["CTScheduleService", "MAX_RUNS", "TARGET", "schedule_name"]
