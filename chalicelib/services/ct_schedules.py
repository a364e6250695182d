"""Scheduled continuous tests with a data source (issue 12 item 4).

A CT instance can be given a schedule (``rate(...)``/``cron(...)``, through the scheduler port:
EventBridge Scheduler on AWS, the local scheduler locally) and a data source:

- ``{"s3_prefix": "s3://<data bucket>/stress-inputs/<your id>/<folder>/"}``: a prefix of the
  caller's uploads where new files (CSV or Parquet, with the instance's timestamp column) land;
  each firing tests the files that appeared since the last run;
- ``{"app": "<name>"}``: the app's captured traffic (``capture_reader.traffic_frame``): the
  queries answered since the last run, with the labels sent so far joined in (as the instance's
  label column).

Each firing of the schedule invokes the target ``run_incremental_continuous_test`` (registered
by the composition root), which runs :meth:`CTScheduleService.run`: it gathers the new data into
one upload of the owner and starts an incremental continuous test on it. What the schedule has
seen (the watermark: the time up to which traffic was tested, or the files tested) is kept beside
the instance's bins (``ct/<instance>/schedule.json``) and moves only when a job starts, so data is
tested once. A firing while the instance's job runs is skipped and recorded (the instance's
``claim_run`` lets one job run at a time), never queued: the next firing takes the data both
would have. Every firing's outcome (STARTED, SKIPPED, NO_DATA, FAILED with why) is recorded in
``runs`` (the newest ``MAX_RUNS``) and logged.
"""
from __future__ import annotations

import io
import json
import logging
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any, Optional

from chalicelib.capture_format import CAPTURE_PREFIX, GROUND_TRUTH_PREFIX, app_prefix
from chalicelib.entities import User
from chalicelib.entities.schedules import Firing, Schedule
from chalicelib.errors import Conflict, DomainError, InvalidInput, NotFound
from chalicelib.ports import ApplicationStore, BlobStore, Scheduler, UserStore
from chalicelib.ports_continuous import CTInstanceStore

if TYPE_CHECKING:  # pandas is imported where data is read: the API Lambda, which imports this
    import pandas as pd  # module through the composition root, ships neither pandas nor numpy
from chalicelib.ports_loop import KeyLister
from chalicelib.services import Clock, new_id, utc_now
from chalicelib.services.continuous_tests import ContinuousTestService
from chalicelib.services.stress_tests import UPLOAD_PREFIX

log = logging.getLogger("kilele.ct_schedules")

TARGET = "run_incremental_continuous_test"
MAX_RUNS = 50
#: Files of an S3 source remembered as tested (the oldest are forgotten past this).
MAX_SEEN_FILES = 5000
_DATA_FILE = re.compile(r"\.(csv|parquet)$", re.I)
#: Columns of a captured query that are no feature of the model's data.
_CAPTURE_ONLY = ["query_id", "event_id", "endpoint_default", "input", "prediction"]


def schedule_name(instance_id: str) -> str:
    return f"ct-{instance_id}"


def _state_key(instance_id: str) -> str:
    return f"ct/{instance_id}/schedule.json"


class CTScheduleService:
    """Schedules of CT instances and the target their firings run."""

    def __init__(self, continuous_tests: ContinuousTestService, instances: CTInstanceStore, scheduler: Scheduler, blobs: BlobStore,
                 keys: KeyLister, users: UserStore, apps: ApplicationStore, bucket: str, clock: Clock = utc_now):
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
            from chalicelib.capture_reader import CaptureFormatError  # pandas: see the module's imports
        except ImportError as e:
            outcome = {"status": "FAILED", "reason": f"this process cannot read data files (no pandas): {e}"[:1000]}
        else:
            try:
                outcome = self._run(instance_id, state, firing)
            except DomainError as e:
                outcome = {"status": "FAILED", "reason": str(e)[:1000]}
            except CaptureFormatError as e:
                outcome = {"status": "FAILED", "reason": f"captured traffic could not be read: {e}"[:1000]}
            except ValueError as e:  # pandas/pyarrow could not make one table of the new data (mixed types)
                outcome = {"status": "FAILED", "reason": f"the new data could not be gathered into one table: {e}"[:1000]}
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
        if "app" in source:
            frame, moved = self._traffic(owner, source["app"], instance, timestamp_col, state, firing.time)
        else:
            frame, moved = self._files(source["s3_prefix"], state)
        if frame is None or frame.empty:
            state.update(moved)  # files with no rows are tested too: nothing to test in them again
            self._write_state(instance_id, state)
            return {"status": "NO_DATA", "reason": "no data arrived since the last run"}
        key = f"{UPLOAD_PREFIX}/{owner.id}/{new_id()}/ct-{instance_id}-{firing.time:%Y%m%dT%H%M%S}.parquet"
        out = io.BytesIO()
        frame.to_parquet(out, index=False)
        self._blobs.put_bytes(key, out.getvalue(), "application/vnd.apache.parquet")
        try:
            job = self._ct.start_incremental_continuous_test(
                owner, instance_id, {"eval_path": f"s3://{self._bucket}/{key}", "timestamp_col": timestamp_col})
        except Conflict as e:  # a job started between the read and the claim: one job at a time
            self._blobs.delete(key)
            return {"status": "SKIPPED", "reason": str(e)[:1000]}
        state.update(moved)
        if "s3_prefix" in source and key.startswith(source["s3_prefix"].partition("s3://")[2].partition("/")[2]):
            # the upload is under the prefix itself: never test it as new data
            state["seen_files"] = (state["seen_files"] + [key])[-MAX_SEEN_FILES:]
        self._write_state(instance_id, state)
        return {"status": "STARTED", "job_id": job["job_id"], "num_rows": int(len(frame)),
                "data": f"s3://{self._bucket}/{key}"}

    def _traffic(self, owner: User, app: str, instance: dict[str, Any], timestamp_col: str, state: dict[str, Any],
                 until: datetime) -> tuple[Optional[pd.DataFrame], dict[str, Any]]:
        """The app's queries answered in [watermark, firing time), labels joined as the instance's label column."""
        from chalicelib.capture_reader import traffic_frame

        since = datetime.fromisoformat(state["watermark"]) if state.get("watermark") else None
        prefixes = [app_prefix(CAPTURE_PREFIX, owner.id, app) + "/", app_prefix(GROUND_TRUTH_PREFIX, owner.id, app) + "/"]
        keys = [k for p in prefixes for k in self._keys.list_keys(p)]
        frame = traffic_frame(keys, self._blobs.get_bytes, since, until)
        moved = {"watermark": until.isoformat()}
        if frame.empty:
            return None, moved
        label_col = ((self._ct_source(owner, instance).get("data_info") or {}).get("label_col"))
        frame = frame.drop(columns=[c for c in _CAPTURE_ONLY if c in frame.columns])
        if "label" in frame.columns and label_col and label_col != "label":
            frame = frame.rename(columns={"label": label_col})
        if label_col in frame.columns and frame[label_col].isna().all():
            frame = frame.drop(columns=[label_col])  # no label sent yet: drift is tested, not performance
        return frame.rename(columns={"timestamp": timestamp_col}), moved

    def _ct_source(self, owner: User, instance: dict[str, Any]) -> dict[str, Any]:
        stored = self._instances.get(instance["ct_instance_id"])  # owned by ``owner``: read through the service
        return stored.source if stored is not None else {}

    def _files(self, uri: str, state: dict[str, Any]) -> tuple[Optional[pd.DataFrame], dict[str, Any]]:
        """The prefix's data files not tested before, as one frame."""
        import pandas as pd

        prefix = uri.partition("s3://")[2].partition("/")[2]
        seen = set(state.get("seen_files") or ())
        new = [k for k in self._keys.list_keys(prefix) if _DATA_FILE.search(k) and k not in seen]
        moved = {"seen_files": ((state.get("seen_files") or []) + new)[-MAX_SEEN_FILES:]}
        if not new:
            return None, moved
        frames = []
        for key in new:
            data = io.BytesIO(self._blobs.get_bytes(key))
            try:
                frames.append(pd.read_parquet(data) if key.lower().endswith(".parquet") else pd.read_csv(data))
            except (ValueError, OSError) as e:  # pyarrow's and pandas' parse errors are ValueErrors
                raise InvalidInput(f"s3://{self._bucket}/{key} is not a readable CSV or Parquet file: {e}") from e
        return pd.concat(frames, ignore_index=True), moved

    # -- the record ---------------------------------------------------------------------------------

    def _read_state(self, instance_id: str) -> Optional[dict[str, Any]]:
        try:
            return json.loads(self._blobs.get_bytes(_state_key(instance_id)))
        except NotFound:
            return None

    def _write_state(self, instance_id: str, state: dict[str, Any]) -> None:
        self._blobs.put_bytes(_state_key(instance_id), json.dumps(state).encode(), "application/json")


__all__ = ["CTScheduleService", "MAX_RUNS", "TARGET", "schedule_name"]
