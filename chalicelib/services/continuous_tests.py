"""Continuous tests (seed 002's CT instances): time-binned tests of a model against a stress test's reference.

A CT instance (:class:`~chalicelib.entities.continuous.CTInstance`) is owned by this service.
Each continuous-test job is a stress-test job (:class:`StressTestService` starts it, the
stress-test state machine runs it, ``GET /stress-tests/{id}`` follows it) whose worker message
carries ``continuous``: ``{"mode": "from_reference" | "incremental", "ct_instance_id",
"history_key"}``. The worker (``kilele_worker.child``) then runs ``kilele_stress.continuous``:
the stress test on the reference first for ``from_reference``, then every bin of the new data,
merged with the bins' earlier rows from ``history_key``; it answers with each bin's summary and
the key of every bin's rows so far.

The state machine's record steps come here first (:meth:`record`, :meth:`record_failure`): this
service keeps the bins' summaries (``ct/<instance>/bins.json``), evaluates the instance's
monitors on the bins the job tested, records and publishes the breaches, activates an instance
made from a reference, then hands the job to :class:`StressTestService` to record as any other.
"""
from __future__ import annotations

import copy
import json
import logging
import re
from typing import Any, Callable, Optional

from chalicelib.entities import StressTestStatus, User
from chalicelib.entities.continuous import BIN_SIZES, MAX_BREACHES, CTInstance
from chalicelib.entities.events import EventKind, KileleEvent
from chalicelib.errors import Conflict, DomainError, InvalidInput, NotFound, Unprocessable
from chalicelib.permissions import Action, owns_or_admin, require
from chalicelib.ports import BlobStore, StressTestJobStore
from chalicelib.ports_continuous import CTInstanceStore
from chalicelib.ports_events import EventPublisher
from chalicelib.services import Clock, new_id, utc_now
from chalicelib.services import ct_monitors, stress_messages
from chalicelib.services.ct_metrics import CTMetrics
from chalicelib.services.projects import ProjectService
from chalicelib.services.stress_tests import StressTestService

log = logging.getLogger(__name__)

BIN_SIZE_NAMES = {name: seconds for seconds, name in BIN_SIZES.items()}
_DATASET_KEY = re.compile(r"^datasets/([A-Za-z0-9_-]{1,100})/data$")
_COLUMN = re.compile(r"^.{1,500}$", re.S)
#: What the worker writes beside a continuous test's results (kilele_worker.child.continuous_test):
#: each bin's summary, and every bin's rows so far (the next incremental job's history).
BINS_FILE = "ct_bins.json"
HISTORY_FILE = "history.parquet"
#: What a CT instance keeps of its stress test's config for later jobs (everything but eval_path).
SOURCE_KEYS = ("run_name", "data_info", "model_info", "model_task", "tests_config", "random_seed")


def parse_continuous_info(value: Any) -> dict[str, Any]:
    """``continuous_info`` of a from-reference config: ``{"timestamp_col", "bin_size": "hour" |
    "day", "reference"?: "fixed" | {"rolling_bins": N}}``; InvalidInput naming the key."""
    where = "test_run_config.continuous_info"
    if not isinstance(value, dict):
        raise InvalidInput(f"{where}: required, an object with timestamp_col and bin_size ('hour' or 'day')")
    unknown = set(value) - {"timestamp_col", "bin_size", "reference"}
    if unknown:
        raise InvalidInput(f"{where}.{sorted(unknown)[0]}: unknown key")
    column = value.get("timestamp_col")
    if not isinstance(column, str) or not _COLUMN.match(column):
        raise InvalidInput(f"{where}.timestamp_col: the name of the data's timestamp column (1-500 characters)")
    size = value.get("bin_size")
    if size not in BIN_SIZE_NAMES:
        raise InvalidInput(f"{where}.bin_size: 'hour' or 'day', not {size!r}")
    return {"timestamp_col": column, "bin_size": size, "reference": _reference(value.get("reference", "fixed"), where)}


def _reference(value: Any, where: str) -> Any:
    if value == "fixed":
        return value
    n = value.get("rolling_bins") if isinstance(value, dict) and set(value) == {"rolling_bins"} else None
    if isinstance(n, float) and n.is_integer():  # JSON Schema's integer includes 5.0 (the document says integer)
        n = int(n)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10_000:
        raise InvalidInput(f'{where}.reference: "fixed" or {{"rolling_bins": N}} with 1 <= N <= 10000')
    return {"rolling_bins": n}


def source_of(config: dict[str, Any], bucket: str) -> dict[str, Any]:
    """A stress-test job's stored config (object keys) as a config the API takes again (URIs),
    without ``eval_path``: what later continuous tests of its model and reference start from."""
    def uri(key: str) -> str:
        match = _DATASET_KEY.match(key)
        return f"kilele://datasets/{match.group(1)}" if match else f"s3://{bucket}/{key}"

    source = {k: copy.deepcopy(config[k]) for k in SOURCE_KEYS if config.get(k) is not None}
    data_info = source.get("data_info") or {}
    data_info.pop("eval_path", None)
    data_info.pop("timestamp_col", None)
    if data_info.get("ref_path"):
        data_info["ref_path"] = uri(data_info["ref_path"])
    model_info = source.get("model_info") or {}
    if model_info.get("path"):
        source["model_info"] = {"path": uri(model_info["path"])}
    elif model_info.get("trial_id"):  # the trial the stress test ran (an app's version at the time)
        source["model_info"] = {"trial_id": model_info["trial_id"]}
    return source


class ContinuousTestService:
    def __init__(self, instances: CTInstanceStore, stress_tests: StressTestService, jobs: StressTestJobStore,
                 projects: ProjectService, blobs: BlobStore, events: EventPublisher, bucket: str,
                 clock: Clock = utc_now, on_breaches: Optional[Callable[[CTInstance, list[Any]], None]] = None,
                 metrics: Optional[CTMetrics] = None):
        """``on_breaches(instance, new breaches)``: called after a job's new breaches are recorded
        and published (the retrain loop reacts there; issue 12 item 6). ``metrics``: told each
        job's end (CloudWatch's CT metrics; none when not given)."""
        self._instances = instances
        self._stress = stress_tests
        self._jobs = jobs
        self._projects = projects
        self._blobs = blobs
        self._events = events
        self._bucket = bucket
        self._clock = clock
        self._on_breaches = on_breaches
        self._metrics = metrics

    # -- instances --------------------------------------------------------------------------------

    def create_ct_instance(self, actor: User, name: str, bin_size_seconds: int, ot_test_run_id: str,
                           project_id: str) -> dict[str, Any]:
        """A new, inactive instance on the reference and model of the caller's SUCCEEDED stress
        test ``ot_test_run_id`` (filed under ``project_id``)."""
        require(actor, Action.MANAGE_STRESS_TESTS)
        if bin_size_seconds not in BIN_SIZES:
            raise InvalidInput(f"bin_size_seconds: 3600 (hourly) or 86400 (daily), not {bin_size_seconds}")
        project = self._projects.visible(actor, project_id)
        now = self._clock()
        job = next((j for j in self._jobs.list_by_owner(actor.id, now) if j.test_run_id == ot_test_run_id), None)
        if job is None:
            raise NotFound(f"ot_test_run_id: no stress test run {ot_test_run_id!r} of yours (runs are kept two days)")
        if job.status is not StressTestStatus.SUCCEEDED:
            raise Conflict(f"ot_test_run_id: stress test {job.id!r} is {job.status.value}; a CT instance needs "
                           "a SUCCEEDED stress test")
        if job.project_id != project.id:
            raise Unprocessable(f"ot_test_run_id: run {ot_test_run_id!r} is filed under project {job.project_id!r},"
                                f" not {project.id!r}")
        source = source_of(job.config, self._bucket)
        reference = (job.config.get("continuous_info") or {}).get("reference")
        if reference:
            source["continuous_info"] = {"reference": reference}
        instance = CTInstance(id=new_id(), owner_id=actor.id, project_id=project.id, name=name,
                              bin_size_seconds=bin_size_seconds, ot_test_run_id=ot_test_run_id, created_at=now,
                              source=source)
        self._instances.add(instance)
        return instance.to_dict()

    def get_ct_instance(self, actor: User, instance_id: str) -> dict[str, Any]:
        return self._owned(actor, instance_id).to_dict()

    def get_active_ct_instance(self, actor: User, project_id: str) -> dict[str, Any]:
        """The project's active instance; NotFound when it has none."""
        project = self._projects.visible(actor, project_id)
        active = [i for i in self._instances.list_of_project(project.id) if i.active]
        if not active:
            raise NotFound(f"project {project_id!r} has no active CT instance")
        return active[-1].to_dict()

    def list_ct_instances(self, actor: User, project_id: str) -> list[dict[str, Any]]:
        project = self._projects.visible(actor, project_id)
        return [i.to_dict() for i in self._instances.list_of_project(project.id)]

    def activate_ct_instance(self, actor: User, instance_id: str) -> dict[str, Any]:
        """Make the instance its project's active one (the others are deactivated)."""
        return self._activate(self._owned(actor, instance_id)).to_dict()

    def deactivate_ct_instance(self, actor: User, instance_id: str) -> dict[str, Any]:
        instance = self._owned(actor, instance_id)
        self._instances.update(instance.id, active=False)
        instance.active = False
        return instance.to_dict()

    def _activate(self, instance: CTInstance) -> CTInstance:
        for other in self._instances.list_of_project(instance.project_id):
            if other.active and other.id != instance.id:
                self._instances.update(other.id, active=False)
        self._instances.update(instance.id, active=True)
        instance.active = True
        return instance

    def _owned(self, actor: User, instance_id: str) -> CTInstance:
        require(actor, Action.MANAGE_STRESS_TESTS)
        instance = self._instances.get(instance_id)
        if instance is None or not owns_or_admin(actor, instance.owner_id):
            raise NotFound(f"no CT instance {instance_id!r}")
        return self._settled(instance)

    def _settled(self, instance: CTInstance) -> CTInstance:
        """``instance``, freed of a running job that ended without its record step (ended by a
        stop of the local stack, or expired): the job's error becomes the instance's."""
        job_id = instance.running_job_id
        if job_id is None or job_id.startswith("starting-"):
            return instance
        job = self._jobs.get(job_id, self._clock())
        if job is not None and not job.status.is_final:
            return instance
        why = (job.error if job is not None else None) or "it ended without recording its bins"
        instance.running_job_id, instance.last_job_id = None, job_id
        instance.error = f"continuous test job {job_id} failed: {why}"[:2000]
        if job is not None and job.status is StressTestStatus.SUCCEEDED:  # recorded meanwhile: read again
            return self._instances.get(instance.id) or instance
        self._instances.update(instance.id, running_job_id=None, last_job_id=job_id, error=instance.error)
        return instance

    # -- starting jobs ------------------------------------------------------------------------------

    def start_continuous_test_from_reference(self, actor: User, test_run_config: Any, project_id: Optional[str] = None,
                                             **job_options: Any) -> dict[str, Any]:
        """Run the stress test on the config's reference and evaluation data, then (same job)
        the continuous test of every bin of the evaluation data; the CT instance is made now,
        inactive, and activated when the job SUCCEEDED. Returns the job and ``ct_instance_id``."""
        require(actor, Action.MANAGE_STRESS_TESTS)
        if not isinstance(test_run_config, dict):
            raise InvalidInput("test_run_config: must be an object")
        info = parse_continuous_info(test_run_config.get("continuous_info"))
        config = {**copy.deepcopy(test_run_config), "continuous_info": info}
        project = self._projects.visible(actor, project_id) if project_id else self._projects.default_project(actor)
        instance_id = new_id()
        job = self._stress.start_stress_test(
            actor, config, project_id=project.id,
            continuous={"mode": "from_reference", "ct_instance_id": instance_id, "history_key": None}, **job_options)
        source = source_of(self._jobs.get(job["job_id"], self._clock()).config, self._bucket)
        source["continuous_info"] = {"reference": info["reference"]}
        instance = CTInstance(id=instance_id, owner_id=actor.id, project_id=project.id,
                              name=str(config.get("run_name") or "continuous test"),
                              bin_size_seconds=BIN_SIZE_NAMES[info["bin_size"]], ot_test_run_id=job["test_run_id"],
                              created_at=self._clock(), source=source, timestamp_col=info["timestamp_col"],
                              running_job_id=job["job_id"])
        self._instances.add(instance)
        return {**job, "ct_instance_id": instance.id}

    def start_incremental_continuous_test(self, actor: User, instance_id: str, test_run_config: Any,
                                          source_prefixes: Optional[list[str]] = None,
                                          **job_options: Any) -> dict[str, Any]:
        """Test the bins of new data (``{"eval_path", "timestamp_col"}``) against the instance's
        reference and model; a bin tested before is tested again with the union of its rows.
        One job per instance at a time (409 while one runs).

        ``source_prefixes`` (a schedule's firing, never the API): ``eval_path`` is a sources
        manifest (services/ct_sources.py) of files under these folders, which the worker reads."""
        instance = self._owned(actor, instance_id)
        where = "test_run_config"
        if not isinstance(test_run_config, dict):
            raise InvalidInput(f"{where}: must be an object with eval_path and timestamp_col")
        unknown = set(test_run_config) - {"eval_path", "timestamp_col"}
        if unknown:
            raise InvalidInput(f"{where}.{sorted(unknown)[0]}: unknown key (give eval_path and timestamp_col)")
        for key in ("eval_path", "timestamp_col"):
            if not isinstance(test_run_config.get(key), str) or not _COLUMN.match(test_run_config[key]):
                raise InvalidInput(f"{where}.{key}: required, a non-empty string")
        config = copy.deepcopy(instance.source)
        config.setdefault("data_info", {})["eval_path"] = test_run_config["eval_path"]
        config["continuous_info"] = {"timestamp_col": test_run_config["timestamp_col"],
                                     "bin_size": BIN_SIZES[instance.bin_size_seconds],
                                     "reference": (instance.source.get("continuous_info") or {}).get("reference",
                                                                                                      "fixed")}
        placeholder = f"starting-{new_id()}"
        if not self._instances.claim_run(instance.id, placeholder, unless_running=self._ended(instance.running_job_id)):
            raise Conflict(f"CT instance {instance.id!r} is running job {instance.running_job_id!r}: one continuous "
                           "test at a time (its bins would be merged twice)")
        try:
            job = self._stress.start_stress_test(
                actor, config, project_id=instance.project_id,
                continuous={"mode": "incremental", "ct_instance_id": instance.id, "history_key": instance.history_key,
                            **({"source_prefixes": list(source_prefixes)} if source_prefixes else {})},
                **job_options)
        except Exception:
            self._instances.update(instance.id, running_job_id=None)
            raise
        self._instances.update(instance.id, running_job_id=job["job_id"], timestamp_col=test_run_config["timestamp_col"])
        return {**job, "ct_instance_id": instance.id}

    def _ended(self, job_id: Optional[str]) -> Optional[str]:
        """``job_id`` if that job is over (or gone, or a start that never finished), so a new
        job may replace it as the instance's running one; None otherwise."""
        if job_id is None:
            return None
        if job_id.startswith("starting-"):
            return None
        job = self._jobs.get(job_id, self._clock())
        return job_id if job is None or job.status.is_final else None

    # -- the state machine's record steps -------------------------------------------------------

    def record(self, state: dict[str, Any]) -> dict[str, Any]:
        """The record step of every stress-test job: a continuous test's bins, monitors and
        instance first (a failure here fails the job, with why), then the job's own record."""
        continuous = (state.get("message") or {}).get("continuous")
        if not continuous:
            return self._stress.record(state)
        instance, tested, new = self._record_continuous(state, continuous)
        out = self._stress.record(state)
        self._publish_job(instance, state["job_id"], continuous, "SUCCEEDED", None,
                          {"num_bins": tested, "num_new_breaches": new})
        return out

    def record_failure(self, state: dict[str, Any]) -> dict[str, Any]:
        out = self._stress.record_failure(state)
        continuous = (state.get("message") or {}).get("continuous")
        instance = self._instances.get(continuous.get("ct_instance_id", "")) if continuous else None
        if instance is not None:
            why = out.get("error") or "the job failed"
            self._instances.update(instance.id, running_job_id=None, last_job_id=state["job_id"],
                                   error=f"continuous test job {state['job_id']} failed: {why}"[:2000])
            self._publish_job(instance, state["job_id"], continuous, "FAILING", why, {})
            if self._metrics is not None:
                self._metrics.job_failed(instance)
        return out

    def _publish_job(self, instance: CTInstance, job_id: str, continuous: dict[str, Any], status: str,
                     reason: Optional[str], data: dict[str, Any]) -> None:
        """A ``Kilele Continuous Test State Change`` event for the job's end (the stress-test
        store publishes the job's own state changes as a stress test's)."""
        links = {"job": f"/stress-tests/{job_id}", "ct_instance": f"/ct-instances/{instance.id}"}
        if status == "SUCCEEDED":
            links["report"] = f"/stress-tests/{job_id}/report"
        event = KileleEvent.state_change(
            EventKind.CONTINUOUS_TEST, id=job_id, status=status, owner_id=instance.owner_id, time=self._clock(),
            reason=reason, project_id=instance.project_id, links=links,
            data={"ct_instance_id": instance.id, "mode": continuous.get("mode"), **data})
        try:
            self._events.publish(event)
        except DomainError as e:  # the job's record is what counts; the event is a notice of it
            log.warning("could not publish the end of continuous test %s: %s", job_id, e)

    def _record_continuous(self, state: dict[str, Any], continuous: dict[str, Any]) -> tuple[CTInstance, int, int]:
        """Bins, breaches and the instance after a job; (instance, bins tested, new breaches)."""
        job_id = state["job_id"]
        instance = self._instances.get(continuous.get("ct_instance_id", ""))
        if instance is None:
            raise NotFound(f"the job's CT instance {continuous.get('ct_instance_id')!r} does not exist")
        result = state.get("result") or {}
        files = set(result.get("extra_files") or ())
        if BINS_FILE not in files:
            raise Unprocessable(f"the worker reported no {BINS_FILE} (its image may predate continuous tests)")
        # The bins' summaries travel as a file: a task's output (256 KB) would not hold months of bins.
        written = json.loads(self._blobs.get_bytes(stress_messages.result_key(job_id, BINS_FILE)))
        tested = [b for b in written if isinstance(b, dict) and b.get("time_bin_start")]
        history_key = stress_messages.result_key(job_id, HISTORY_FILE) if HISTORY_FILE in files else None
        bins = self._read_bins(instance)
        for b in tested:
            bins[b["time_bin_start"]] = {**b, "job_id": job_id}
        bins_key = f"ct/{instance.id}/bins.json"
        self._blobs.put_bytes(bins_key, json.dumps(bins).encode(), "application/json")
        starts = [b["time_bin_start"] for b in tested]
        findings = ct_monitors.evaluate(instance.monitors, bins, starts)
        report = f"/stress-tests/{job_id}/report"
        breaches, new = ct_monitors.merge_breaches(instance.breaches, findings, starts, job_id, report,
                                                   self._clock(), MAX_BREACHES)
        self._instances.update(instance.id, bins_key=bins_key, history_key=history_key or instance.history_key,
                               last_job_id=job_id, running_job_id=None, error=None, breaches=breaches)
        if continuous.get("mode") == "from_reference":
            self._activate(instance)
        if self._metrics is not None:
            self._metrics.job_recorded(instance, tested, len(new))
        for breach in new:
            self._publish(instance, breach, findings)
        if new and self._on_breaches is not None:
            try:
                self._on_breaches(instance, new)
            except DomainError as e:  # the breaches are recorded; what reacts to them logs its own failure
                log.warning("the reaction to the breaches of %s failed: %s", instance.id, e)
        return instance, len(tested), len(new)

    def _publish(self, instance: CTInstance, breach: Any, findings: list[ct_monitors.Finding]) -> None:
        finding = next(f for f in findings if f.monitor.id == breach.monitor_id
                       and f.time_bin_start == breach.time_bin_start)
        event = KileleEvent.state_change(
            EventKind.MONITOR, id=f"{instance.id}/{breach.monitor_id}", status="BREACHED", owner_id=instance.owner_id,
            time=breach.created_at, reason=finding.reason(), project_id=instance.project_id,
            links={"report": breach.report, "ct_instance": f"/ct-instances/{instance.id}"},
            data={"ct_instance_id": instance.id, **breach.to_dict()})
        try:
            self._events.publish(event)
        except DomainError as e:  # the breach is recorded on the instance; the event is a notice of it
            log.warning("could not publish the breach of monitor %s on %s: %s", breach.monitor_id, instance.id, e)

    def _read_bins(self, instance: CTInstance) -> dict[str, Any]:
        if not instance.bins_key:
            return {}
        try:
            return json.loads(self._blobs.get_bytes(instance.bins_key))
        except NotFound:
            return {}

    # -- reading and monitors -------------------------------------------------------------------

    def list_bins(self, actor: User, instance_id: str) -> list[dict[str, Any]]:
        """Every bin's latest summary, oldest first."""
        bins = self._read_bins(self._owned(actor, instance_id))
        return [bins[k] for k in sorted(bins)]

    def list_breaches(self, actor: User, instance_id: str) -> list[dict[str, Any]]:
        """The instance's breaches (the newest ``MAX_BREACHES``), by bin, newest first."""
        return [b.to_dict() for b in reversed(self._owned(actor, instance_id).breaches)]

    def list_monitors(self, actor: User, instance_id: str) -> list[dict[str, Any]]:
        return [m.to_dict() for m in self._owned(actor, instance_id).monitors]

    def update_monitor(self, actor: User, instance_id: str, monitor_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Change an existing monitor's fields (the others keep their values)."""
        instance = self._owned(actor, instance_id)
        current = next((m for m in instance.monitors if m.id == monitor_id), None)
        if current is None:
            raise NotFound(f"CT instance {instance_id!r} has no monitor {monitor_id!r}")
        changed = ct_monitors.monitor_from_fields(monitor_id, fields, current)
        monitors = [changed if m.id == monitor_id else m for m in instance.monitors]
        self._instances.update(instance.id, monitors=monitors)
        return changed.to_dict()

    def create_monitor(self, actor: User, instance_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """A new monitor (``metric``, ``operator``, ``bound`` required)."""
        instance = self._owned(actor, instance_id)
        if len(instance.monitors) >= ct_monitors.MAX_MONITORS:
            raise Conflict(f"CT instance {instance_id!r} has {ct_monitors.MAX_MONITORS} monitors, the most it takes")
        monitor = ct_monitors.monitor_from_fields(new_id()[:12], fields)
        self._instances.update(instance.id, monitors=instance.monitors + [monitor])
        return monitor.to_dict()


__all__ = ["ContinuousTestService", "parse_continuous_info", "source_of", "SOURCE_KEYS"]
