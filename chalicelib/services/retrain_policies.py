"""The loop (issue 12 item 6): an app's retrain policy, and what a breached monitor starts.

An app's retrain policy says which monitors of the continuous tests on its traffic trigger a
retrain (a CT instance whose schedule's source is ``{"app": <the app>}``), on what dataset (a
named dataset, or one built from the labelled captured traffic), with what budget, and whether
to deploy the result (with the holdout dataset that decides). When such a monitor is breached --
the CT service calls :meth:`RetrainLoopService.on_breaches` where breaches are recorded, one
place -- a train job starts with the configuration of the app's latest train job (task,
validation dataset, models, train args; the policy's budget over its budget) on that dataset. One
retrain at a time per app: a breach while one runs is recorded as such and starts nothing.

Every step is on the app's timeline (:mod:`chalicelib.services.app_timeline`) and published as
an event: ``breach_seen``, ``retrain_started``/``retrain_skipped``/``retrain_failed`` with why.

A retrain on ``labelled_captured_traffic`` first builds its dataset in a job, never here (this runs
in a workflow Lambda on AWS, which ships no pandas): the breach only lists the app's capture and
ground-truth files and starts a dataset build (:mod:`chalicelib.services.dataset_builds`;
``dataset_build_started``); the job reads them, joins the labels by query id and records the
dataset READY or INVALID, and :meth:`RetrainLoopService.on_dataset_settled` then starts the train
job on it (``dataset_built``, ``retrain_started``) or records ``retrain_failed`` with the
dataset's error.
"""
from __future__ import annotations

import json
import logging
import threading
from typing import Any, Callable, Optional

from chalicelib.entities import Dataset, DatasetStatus, User
from chalicelib.entities.continuous import Breach, CTInstance
from chalicelib.errors import DomainError, InvalidInput, NotFound, Unprocessable
from chalicelib.ports import ApplicationStore, BlobStore, UserStore
from chalicelib.ports_loop import KeyLister
from chalicelib.services import Clock, dataset_builds, utc_now
from chalicelib.services.app_timeline import AppTimeline
from chalicelib.services.train_jobs import LATEST, TrainJobService

log = logging.getLogger("kilele.retrain")

CAPTURED = "labelled_captured_traffic"
_BUDGET_KEYS = ("TIME_HOURS", "MODEL_TRIAL_COUNT", "GPU_COUNT")


def _policy_key(user_id: str, app: str) -> str:
    return f"loop/{user_id}/{app}/policy.json"


def parse_policy(value: Any) -> dict[str, Any]:
    """A policy as given (``monitors``, ``dataset``, ``budget``?, ``deploy``?, ``holdout_dataset_id``?)
    checked and normalised; ``InvalidInput`` naming the key."""
    if not isinstance(value, dict):
        raise InvalidInput("policy: an object with monitors and dataset")
    unknown = set(value) - {"monitors", "dataset", "budget", "deploy", "holdout_dataset_id"}
    if unknown:
        raise InvalidInput(f"policy.{sorted(unknown)[0]}: unknown key")
    monitors = value.get("monitors")
    if not isinstance(monitors, list) or not monitors or not all(isinstance(m, str) and m for m in monitors):
        raise InvalidInput('policy.monitors: a non-empty list of monitor ids (e.g. ["drift"])')
    dataset = value.get("dataset")
    if not (dataset == CAPTURED or (isinstance(dataset, str) and dataset.startswith("kilele://datasets/"))
            or (isinstance(dataset, dict) and set(dataset) == {"dataset_id"} and isinstance(dataset["dataset_id"], str))):
        raise InvalidInput(f'policy.dataset: {{"dataset_id": "<id>"}} or "{CAPTURED}"')
    if isinstance(dataset, str) and dataset != CAPTURED:
        dataset = {"dataset_id": dataset.rsplit("/", 1)[1]}
    budget = value.get("budget") or {}
    if not isinstance(budget, dict) or set(budget) - set(_BUDGET_KEYS) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in budget.values()):
        raise InvalidInput(f"policy.budget: an object of {', '.join(_BUDGET_KEYS)} (non-negative numbers)")
    deploy = value.get("deploy", False)
    if not isinstance(deploy, bool):
        raise InvalidInput("policy.deploy: true or false")
    holdout = value.get("holdout_dataset_id")
    if deploy and not (isinstance(holdout, str) and holdout):
        # 422: a rule across two fields, which the request schema does not express
        raise Unprocessable("policy.holdout_dataset_id: required when deploy is true (the new version is deployed "
                            "only if it beats the serving one on it)")
    return {"monitors": list(monitors), "dataset": dataset, "budget": dict(budget), "deploy": deploy,
            "holdout_dataset_id": holdout}


def target_of(dataset: dict[str, Any]) -> str:
    """A tabular dataset's target column: the one named at upload, else the one its check found
    (``target``, else the last column: ``dataset_formats.check_tabular``, as models read it)."""
    return dataset.get("target_column") or (dataset.get("stats") or {}).get("target_column") or "label"


class RetrainLoopService:
    """Retrain policies of apps and the reaction to breached monitors."""

    def __init__(self, train_jobs: TrainJobService, datasets: Any, apps: ApplicationStore, users: UserStore,
                 blobs: BlobStore, keys: KeyLister, timeline: AppTimeline,
                 traffic_source_of: Callable[[str], Optional[tuple[str, str]]], clock: Clock = utc_now):
        """``traffic_source_of(ct_instance_id)``: (owner email, app) when the instance's schedule
        tests an app's traffic (``CTScheduleService.traffic_source``), else None."""
        self._train_jobs = train_jobs
        self._datasets = datasets  # services.datasets.DatasetService (create_from_bytes, get)
        self._apps = apps
        self._users = users
        self._blobs = blobs
        self._keys = keys
        self._timeline = timeline
        self._source_of = traffic_source_of
        self._clock = clock
        # A build's end (the dataset check job's thread, locally) and a breach read-modify-write
        # the same policy in one process: one at a time.
        self._lock = threading.RLock()

    # -- the API's side -------------------------------------------------------------------------

    def set_policy(self, actor: User, app: str, policy: Any) -> dict[str, Any]:
        """Set the app's retrain policy (replacing any); the datasets it names must be the caller's."""
        self._own_app(actor, app)
        parsed = parse_policy(policy)
        for where, dataset_id in (("policy.dataset", (parsed["dataset"] or {}).get("dataset_id")
                                   if isinstance(parsed["dataset"], dict) else None),
                                  ("policy.holdout_dataset_id", parsed["holdout_dataset_id"])):
            if dataset_id is not None:
                try:
                    self._datasets.get(actor, dataset_id)
                except NotFound:
                    raise NotFound(f"{where}: no dataset {dataset_id!r} of yours") from None
        stored = {**parsed, "app": app, "owner_email": actor.email, "retrain": None}
        old = self._read(actor.id, app)
        if old is not None:
            stored["retrain"] = old.get("retrain")  # a retrain in progress stays tracked
        self._write(actor.id, app, stored)
        self._timeline.record(actor.id, app, "policy_set", f"monitors {', '.join(parsed['monitors'])}",
                              {k: parsed[k] for k in ("monitors", "dataset", "budget", "deploy")})
        return self._view(stored)

    def get_policy(self, actor: User, app: str) -> dict[str, Any]:
        self._own_app(actor, app)
        stored = self._read(actor.id, app)
        if stored is None:
            raise NotFound(f"app {app!r} has no retrain policy")
        return self._view(stored)

    def remove_policy(self, actor: User, app: str) -> None:
        self._own_app(actor, app)
        if self._read(actor.id, app) is None:
            raise NotFound(f"app {app!r} has no retrain policy")
        self._blobs.delete(_policy_key(actor.id, app))
        self._timeline.record(actor.id, app, "policy_removed", "the retrain policy was removed", {})

    def _own_app(self, actor: User, app: str) -> None:
        if self._apps.get(actor.id, app) is None:
            raise NotFound(f"no app {app!r} of yours")

    @staticmethod
    def _view(stored: dict[str, Any]) -> dict[str, Any]:
        return {k: stored.get(k) for k in ("app", "monitors", "dataset", "budget", "deploy", "holdout_dataset_id",
                                           "retrain")}

    # -- the reaction ---------------------------------------------------------------------------

    def on_breaches(self, instance: CTInstance, breaches: list[Breach]) -> None:
        """New breaches recorded on ``instance``: when its schedule tests an app's traffic and the
        app's policy names a breached monitor, start a retrain (one at a time). Never raises for
        the expected cases; each is on the app's timeline."""
        source = self._source_of(instance.id)
        if source is None or not breaches:
            return
        email, app = source
        owner = self._users.get(email)
        if owner is None or owner.id != instance.owner_id or owner.is_banned:
            return
        policy = self._read(owner.id, app)
        if policy is None:
            return
        chosen = [b for b in breaches if b.monitor_id in policy["monitors"]]
        if not chosen:
            return
        breach = chosen[0]
        self._timeline.record(owner.id, app, "breach_seen",
                              f"monitor {breach.monitor_id} breached on the bin from {breach.time_bin_start} "
                              f"({breach.metric} = {breach.value:g} {breach.operator} {breach.bound:g})",
                              {"ct_instance_id": instance.id, "job_id": breach.job_id, "report": breach.report,
                               "monitors": sorted({b.monitor_id for b in chosen})})
        with self._lock:
            running = self._running_retrain(owner, policy)
            if running is not None:
                self._timeline.record(owner.id, app, "retrain_skipped", running, {})
                return
            if policy["dataset"] == CAPTURED:
                self._build_captured(owner, app, policy, instance.id)
                return
            self._start_and_record(owner, app, policy, policy["dataset"]["dataset_id"], instance.id)

    def _start_and_record(self, owner: User, app: str, policy: dict[str, Any], dataset_id: str,
                          ct_instance_id: Optional[str]) -> None:
        try:
            job = self._start(owner, app, policy, dataset_id)
        except DomainError as e:
            policy["retrain"] = None
            self._write(owner.id, app, policy)
            self._timeline.record(owner.id, app, "retrain_failed", f"the train job could not start: {e}"[:1000], {})
            return
        policy["retrain"] = {"app_version": job["app_version"], "train_job_id": job["id"],
                             "started_at": self._clock().isoformat(), "ct_instance_id": ct_instance_id}
        self._write(owner.id, app, policy)
        self._timeline.record(owner.id, app, "retrain_started",
                              f"train job v{job['app_version']} on {self._dataset_text(policy, dataset_id)}",
                              {"train_job_id": job["id"], "app_version": job["app_version"],
                               "train_dataset_id": job["train_dataset_id"]})

    def _running_retrain(self, owner: User, policy: dict[str, Any]) -> Optional[str]:
        """Why a new retrain cannot start now (one runs), else None; ``policy`` is refreshed when
        a dataset build it waited for ended meanwhile."""
        retrain = policy.get("retrain") or {}
        if retrain.get("state") == "building":
            try:  # reading it records its job's verdict, if any: on_dataset_settled then moves the policy on
                status = self._datasets.get(owner, retrain["dataset_id"])["status"]
            except NotFound:
                status = None
            if status == DatasetStatus.PENDING.value:
                return f"dataset {retrain['dataset_id']} of an earlier breach is still being built"
            fresh = self._read(owner.id, policy["app"])  # the verdict's listener may have moved it on
            if fresh is None:
                return "the app's retrain policy was removed meanwhile"
            policy.clear()
            policy.update(fresh)
            retrain = policy.get("retrain") or {}
            if retrain.get("state") == "building":  # its dataset is gone: that retrain is over
                return None
        version = retrain.get("app_version")
        if version is None:
            return None
        try:
            job = self._train_jobs.resolve(owner, policy["app"], int(version))
        except NotFound:
            return None
        if job.status.value in ("STOPPED", "ERRORED") and retrain.get("state") != "evaluating":
            return None
        # training, or its holdout evaluation still runs
        return f"train job v{int(version)} started by an earlier breach is still running"

    @staticmethod
    def _dataset_text(policy: dict[str, Any], dataset_id: str) -> str:
        if policy["dataset"] == CAPTURED:
            return f"dataset {dataset_id} of the labelled captured traffic"
        return f"dataset {dataset_id}"

    def _start(self, owner: User, app: str, policy: dict[str, Any], train_id: str) -> dict[str, Any]:
        """A train job with the app's latest train job's configuration on ``train_id``."""
        latest = self._train_jobs.resolve(owner, app, LATEST)
        budget = {**latest.budget, **policy["budget"]}
        job = self._train_jobs.create_train_job(owner, app, latest.task, train_id, latest.val_dataset_id, budget,
                                                model_ids=list(latest.model_ids), train_args=dict(latest.train_args))
        return {**job, "train_dataset_id": train_id}

    def _build_captured(self, owner: User, app: str, policy: dict[str, Any], ct_instance_id: str) -> None:
        """Start the build of a dataset of the app's captured queries that have a label (CSV:
        features and the latest train dataset's target column) from a listing alone; the train
        job starts when it is READY (:meth:`on_dataset_settled`)."""
        from chalicelib.capture_format import CAPTURE_PREFIX, GROUND_TRUTH_PREFIX, app_prefix
        from chalicelib.capture_window import traffic_keys

        folders = [app_prefix(CAPTURE_PREFIX, owner.id, app) + "/", app_prefix(GROUND_TRUTH_PREFIX, owner.id, app) + "/"]
        announced = False

        def building(dataset: dict[str, Any]) -> None:
            # Before the job starts: its end (perhaps at once, on a thread) finds the policy waiting.
            nonlocal announced
            policy["retrain"] = {"state": "building", "dataset_id": dataset["id"],
                                 "started_at": self._clock().isoformat(), "ct_instance_id": ct_instance_id}
            self._write(owner.id, app, policy)
            self._timeline.record(owner.id, app, "dataset_build_started",
                                  f"dataset {dataset['id']} is being built from the labelled captured traffic "
                                  f"({len(captures)} capture file(s), {len(labels)} ground-truth file(s)) by a job",
                                  {"dataset_id": dataset["id"], "num_files": len(captures),
                                   "num_label_files": len(labels)})
            announced = True

        try:
            captures, labels = traffic_keys([k for folder in folders for k in self._keys.list_keys(folder)])
            if not captures or not labels:
                raise InvalidInput(f"app {app!r} has no labelled captured traffic (POST /apps/{app}/labels)")
            latest = self._train_jobs.resolve(owner, app, LATEST)
            target = target_of(self._datasets.get(owner, latest.train_dataset_id))
            self._datasets.start_build(owner, f"{app}-captured-{self._clock():%Y%m%dT%H%M%S}", latest.task, target,
                                       dataset_builds.traffic_manifest(captures, labels, folders, target),
                                       before_job=building)
        except DomainError as e:
            if not announced:  # else the dataset's INVALID record already said why (on_dataset_settled)
                self._timeline.record(owner.id, app, "retrain_failed",
                                      f"the train job could not start: {e}"[:1000], {})

    def on_dataset_settled(self, dataset: Dataset) -> None:
        """A dataset's job recorded it READY or INVALID (a listener of the check job): if a
        retrain waits for it, start its train job on it, or record why it cannot."""
        with self._lock:
            found = self._building(dataset.owner_id, dataset.id)
            if found is None:
                return
            app, policy = found
            owner = self._users.get(policy["owner_email"])
            if owner is None or owner.is_banned:
                return
            ct_instance_id = (policy.get("retrain") or {}).get("ct_instance_id")
            if dataset.status is not DatasetStatus.READY:
                policy["retrain"] = None
                self._write(owner.id, app, policy)
                self._timeline.record(owner.id, app, "retrain_failed",
                                      f"dataset {dataset.id} of the labelled captured traffic is "
                                      f"{dataset.status.value}: {dataset.error}"[:1000], {"dataset_id": dataset.id})
                return
            self._timeline.record(owner.id, app, "dataset_built",
                                  f"dataset {dataset.id} of the labelled captured traffic is READY "
                                  f"({(dataset.stats or {}).get('rows', '?')} row(s))",
                                  {"dataset_id": dataset.id, "stats": dataset.stats})
            self._start_and_record(owner, app, policy, dataset.id, ct_instance_id)

    def _building(self, owner_id: str, dataset_id: str) -> Optional[tuple[str, dict[str, Any]]]:
        for key in self._keys.list_keys(f"loop/{owner_id}/"):
            if not key.endswith("/policy.json"):
                continue
            app = key.split("/")[2]
            policy = self._read(owner_id, app)
            retrain = (policy or {}).get("retrain") or {}
            if retrain.get("state") == "building" and retrain.get("dataset_id") == dataset_id:
                return app, policy
        return None

    # -- what the deployer (services/retrain_deploy.py) uses ---------------------------------------

    def tracked(self, owner_id: str, app: Optional[str], job_id: str) -> Optional[tuple[str, str, dict[str, Any]]]:
        """(owner's email, app, policy) of the policy whose retrain is train job ``job_id`` or
        whose holdout evaluation is stress test ``job_id``; None for any other job."""
        apps = [app] if app else [k.split("/")[2] for k in self._keys.list_keys(f"loop/{owner_id}/")
                                  if k.endswith("/policy.json")]
        for name in apps:
            policy = self._read(owner_id, name)
            retrain = (policy or {}).get("retrain") or {}
            if retrain.get("train_job_id") == job_id and retrain.get("state", "training") == "training":
                return policy["owner_email"], name, policy
            if retrain.get("state") == "evaluating" and any(
                    e["job_id"] == job_id for e in (retrain.get("evaluations") or {}).values()):
                return policy["owner_email"], name, policy
        return None

    def save(self, user_id: str, app: str, policy: dict[str, Any]) -> None:
        self._write(user_id, app, policy)

    def step(self, user_id: str, app: str, step: str, reason: str, data: dict[str, Any]) -> None:
        self._timeline.record(user_id, app, step, reason, data)

    def best_trial_id(self, owner: User, app: str, version: int) -> Optional[str]:
        best = self._train_jobs.get_best_trials_of_train_job(owner, app, version, max_count=1)
        return best[0]["id"] if best else None

    def target_column(self, owner: User, dataset_id: str) -> str:
        return target_of(self._datasets.get(owner, dataset_id))

    # -- the record -----------------------------------------------------------------------------

    def _read(self, user_id: str, app: str) -> Optional[dict[str, Any]]:
        try:
            return json.loads(self._blobs.get_bytes(_policy_key(user_id, app)))
        except NotFound:
            return None

    def _write(self, user_id: str, app: str, policy: dict[str, Any]) -> None:
        self._blobs.put_bytes(_policy_key(user_id, app), json.dumps(policy).encode(), "application/json")


__all__ = ["CAPTURED", "RetrainLoopService", "parse_policy", "target_of"]
