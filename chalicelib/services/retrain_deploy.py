"""The loop's second half (issue 12 item 6): a retrain's end, the holdout evaluation, deploy or keep.

:class:`RetrainDeployer` reacts to job state-change events as they are published (wiring wraps
the event publisher, so it sees what every job store publishes, in the process that wrote it):

- the retrain's train job STOPPED (or ERRORED): ``retrain_finished`` (``retrain_errored``) on the
  timeline; with ``deploy``, two stress tests on the policy's holdout dataset start, one of the
  new version and one of the serving one (``model_info: {"app", "app_version"}``), and
  ``evaluation_started``;
- each of those stress tests ending: its model performance on the holdout, which the worker
  computed, is read from what it wrote (``test_run.json``: no pandas in this process); when both
  are in, ``evaluation_scores`` and then either
  ``deployed`` (the new version beats the serving one: an inference job of it starts, and an app
  pinned to a version is moved to it; then the app's continuous test moves to it,
  :mod:`chalicelib.services.ct_handover`) or ``kept`` -- each with its reason.

What decides is :func:`beats`: accuracy (classification; higher is better) or RMSE (regression;
lower is better) on the holdout's rows; a tie keeps the serving version.
"""
from __future__ import annotations

import json
import logging
import math
from typing import Any, Optional

from chalicelib.entities import User
from chalicelib.entities.events import EventKind, KileleEvent
from chalicelib.errors import DomainError, NotFound
from chalicelib.ports import BlobStore, UserStore
from chalicelib.services import stress_messages
from chalicelib.services.ct_handover import CTHandover
from chalicelib.services.retrain_policies import RetrainLoopService

log = logging.getLogger("kilele.retrain")

#: (metric, higher is better) of the holdout evaluation, by what the stress test reports.
METRICS = (("accuracy", True), ("rmse", False))


def beats(new: dict[str, float], serving: dict[str, float]) -> tuple[bool, str]:
    """Whether the new version's holdout metrics beat the serving one's, and why."""
    for metric, higher in METRICS:
        a, b = new.get(metric), serving.get(metric)
        if a is None or b is None:
            continue
        better = a > b if higher else a < b
        word = "higher" if higher else "lower"
        if better:
            return True, f"{metric} {a:.4g} vs {b:.4g} on the holdout ({word} is better)"
        return False, f"{metric} {a:.4g} vs {b:.4g} on the holdout: not better ({word} is better)"
    return False, "no metric both versions were scored on (the holdout needs its labels)"


class RetrainDeployer:
    def __init__(self, loop: RetrainLoopService, stress_tests: Any, inference_jobs: Any, apps: Any,
                 users: UserStore, blobs: BlobStore, handover: CTHandover):
        self._loop = loop
        self._stress = stress_tests  # services.stress_tests.StressTestService
        self._inference = inference_jobs  # services.inference_jobs.InferenceJobService
        self._apps = apps  # services.apps.ApplicationService
        self._users = users
        self._blobs = blobs
        self._handover = handover  # a deployed version takes over the app's continuous test

    def on_event(self, event: KileleEvent) -> None:
        """A published state change; only the ones a tracked retrain waits for act. Failures are
        on the app's timeline (and logged), never raised to the publisher's caller."""
        detail = event.detail
        if detail.kind not in (EventKind.TRAIN_JOB, EventKind.STRESS_TEST):
            return
        if detail.status not in ("STOPPED", "ERRORED", "SUCCEEDED", "FAILING"):
            return
        found = self._loop.tracked(detail.owner_id, detail.app if detail.kind is EventKind.TRAIN_JOB else None,
                                   detail.id)
        if found is None:
            return
        owner_email, app, policy = found
        owner = self._users.get(owner_email)
        if owner is None:
            return
        try:
            if detail.kind is EventKind.TRAIN_JOB:
                self._train_job_ended(owner, app, policy, detail.status, detail.reason)
            else:
                self._evaluation_ended(owner, app, policy, detail.id, detail.status, detail.reason)
        except DomainError as e:
            self._loop.step(owner.id, app, "deploy_failed", f"{e}"[:1000], {})

    def _train_job_ended(self, owner: User, app: str, policy: dict[str, Any], status: str,
                         reason: Optional[str]) -> None:
        retrain = policy["retrain"]
        version = retrain["app_version"]
        if status == "ERRORED":
            retrain["state"] = "errored"
            self._loop.save(owner.id, app, policy)
            self._loop.step(owner.id, app, "retrain_errored", f"train job v{version} ended ERRORED: {reason}", {})
            return
        self._loop.step(owner.id, app, "retrain_finished", f"train job v{version} STOPPED",
                        {"app_version": version})
        if not policy.get("deploy"):
            retrain["state"] = "done"
            self._loop.save(owner.id, app, policy)
            return
        holdout = f"kilele://datasets/{policy['holdout_dataset_id']}"
        label = self._loop.target_column(owner, policy["holdout_dataset_id"])
        jobs = {}
        for which, app_version in (("new", version), ("serving", -1)):  # -1: the version serving now
            config = {"run_name": f"{app} v{version} holdout ({which})",
                      "data_info": {"label_col": label, "ref_path": holdout, "eval_path": holdout},
                      "model_info": {"app": app, "app_version": app_version}}
            project_id = None
            if which == "new":  # also the reference run of the CT instance that follows it if deployed
                config, project_id = self._handover.evaluation(owner, app, version, label, holdout,
                                                               retrain.get("ct_instance_id"))
            job = self._stress.start_stress_test(owner, config, project_id=project_id)
            jobs[which] = {"job_id": job["job_id"], "app_version": job.get("model_version", app_version)}
        retrain.update(state="evaluating", evaluations=jobs, scores={})
        self._loop.save(owner.id, app, policy)
        self._loop.step(owner.id, app, "evaluation_started",
                        f"v{version} and the serving version are scored on dataset {policy['holdout_dataset_id']}",
                        {k: v["job_id"] for k, v in jobs.items()})

    def _evaluation_ended(self, owner: User, app: str, policy: dict[str, Any], job_id: str, status: str,
                          reason: Optional[str]) -> None:
        retrain = policy["retrain"]
        which = next(k for k, v in retrain["evaluations"].items() if v["job_id"] == job_id)
        if status == "FAILING":
            retrain["state"] = "done"
            self._loop.save(owner.id, app, policy)
            self._loop.step(owner.id, app, "kept", f"the {which} version's holdout test failed: {reason}; "
                            "the serving version stays", {"job_id": job_id})
            return
        retrain["scores"][which] = self._scores(job_id)
        self._loop.save(owner.id, app, policy)
        if set(retrain["scores"]) != {"new", "serving"}:
            return
        new, serving = retrain["scores"]["new"], retrain["scores"]["serving"]
        better, why = beats(new, serving)
        self._loop.step(owner.id, app, "evaluation_scores", why, {"new": new, "serving": serving})
        retrain["state"] = "done"
        self._loop.save(owner.id, app, policy)
        version = retrain["app_version"]
        if not better:
            self._loop.step(owner.id, app, "kept", f"v{version} does not beat the serving version: {why}", {})
            return
        self._inference.create_inference_job(owner, app, version)
        if self._apps.find(owner.id, app) is not None and self._apps.find(owner.id, app).version is not None:
            self._apps.set_model_version(owner, app, version)  # a pinned app moves to it; else the latest serves
        self._loop.step(owner.id, app, "deployed", f"v{version} beats the serving version: {why}",
                        {"app_version": version})
        self._handover.hand_over(owner, app, version, retrain)  # its own step: reference_moved (or why not)

    def _scores(self, job_id: str) -> dict[str, float]:
        """The model's metrics on the holdout (the run's ``model_performance.evaluation.*``), as
        the worker that scored it reported them in ``test_run.json`` (the JSON table the API
        serves): the worker reads the holdout and computes; this process, an API or workflow
        Lambda without pandas on AWS, only reads the numbers it wrote."""
        try:
            table = json.loads(self._blobs.get_bytes(stress_messages.result_key(job_id, "test_run.json")))
        except NotFound:
            return {}
        records = table.get("records") if isinstance(table, dict) else None
        if not records or not isinstance(records[0], dict):
            return {}
        prefix = "model_performance.evaluation."
        return {k[len(prefix):]: float(v) for k, v in records[0].items()
                if k.startswith(prefix) and isinstance(v, (int, float)) and not isinstance(v, bool)
                and math.isfinite(v)}


__all__ = ["METRICS", "RetrainDeployer", "beats"]
