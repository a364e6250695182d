"""The loop's last step (issue 12 item 6): a deployed retrain takes over its app's continuous test.

Drift is measured against a CT instance's reference. A version retrained on drifted traffic and
deployed would still be judged against the old data, so the next continuous test would fail
again, whatever the new model is worth. When the loop deploys a version, the continuous test of
the app's traffic therefore moves to it: a **new** CT instance whose reference is the data that
version was trained on and whose model is its best trial takes the place of the one whose breach
started the retrain. Seed 002's instance semantics stay whole: an instance never changes its
reference or model (``ot_test_run_id`` is the run whose reference and model it monitors), and a
project has one active instance.

How, in two steps:

- :meth:`CTHandover.evaluation` shapes the new version's holdout evaluation (a stress test the
  deployer runs anyway) as that run: reference = the retrain's train dataset, evaluation = the
  holdout, the old instance's ``tests_config``/``model_task``/``random_seed``, filed under the
  old instance's project;
- :meth:`CTHandover.hand_over`, once the version is deployed: a CT instance on that run (same bin
  size, timestamp column, reference mode and monitors as the old one; no bins, no breaches yet),
  activated in the old one's place when the old one was active (which deactivates it), and the
  old one's schedule on the app's traffic moved to it, testing the traffic answered from now on
  (what came before was answered by the version it replaced). Step ``reference_moved`` on the
  timeline says so, or ``reference_move_failed`` with why (the version stays deployed);
- :meth:`CTHandover.on_event`: when the new instance's first continuous test ends, step
  ``deployed_version_tested`` says whether the deployed version passed on the app's traffic (no
  monitor breached) or not (which monitors), which closes the loop on the timeline.

A retrain that is not deployed (kept, or ``deploy: false``) never reaches here: the reference is
unchanged.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Optional

from chalicelib.entities import User
from chalicelib.entities.events import EventKind, KileleEvent
from chalicelib.errors import DomainError, NotFound
from chalicelib.ports import BlobStore
from chalicelib.ports_continuous import CTInstanceStore
from chalicelib.services.app_timeline import AppTimeline

log = logging.getLogger("kilele.retrain")

#: What the new instance's reference run keeps of the old instance's config (the tests the user chose).
_KEPT_SOURCE_KEYS = ("tests_config", "model_task", "random_seed")


class CTHandover:
    """Moves an app's continuous test to a version the loop deployed."""

    def __init__(self, continuous_tests: Any, schedules: Any, train_jobs: Any, stress_tests: Any,
                 instances: CTInstanceStore, timeline: AppTimeline, blobs: BlobStore):
        self._ct = continuous_tests  # services.continuous_tests.ContinuousTestService
        self._stress = stress_tests  # services.stress_tests.StressTestService
        self._schedules = schedules  # services.ct_schedules.CTScheduleService
        self._train_jobs = train_jobs  # services.train_jobs.TrainJobService
        self._instances = instances
        self._timeline = timeline
        self._blobs = blobs

    def evaluation(self, owner: User, app: str, version: int, label: str, holdout: str,
                   ct_instance_id: Optional[str]) -> tuple[dict[str, Any], Optional[str]]:
        """The config and project of the new version's holdout stress test, shaped as the reference
        run of the CT instance that will follow it if it is deployed."""
        job = self._train_jobs.resolve(owner, app, version)
        config: dict[str, Any] = {
            "run_name": f"{app} v{version} holdout (new)",
            "data_info": {"label_col": label, "ref_path": f"kilele://datasets/{job.train_dataset_id}",
                          "eval_path": holdout},
            "model_info": {"app": app, "app_version": version}}
        stored = self._instances.get(ct_instance_id) if ct_instance_id else None
        if stored is None or stored.owner_id != owner.id:
            return config, None
        config.update({k: stored.source[k] for k in _KEPT_SOURCE_KEYS if stored.source.get(k) is not None})
        return config, stored.project_id

    def hand_over(self, owner: User, app: str, version: int, retrain: dict[str, Any]) -> Optional[dict[str, Any]]:
        """After ``version`` was deployed: the CT instance of its reference run replaces the one
        whose breach retrained. The step is on the timeline; returns its data (None if it failed)."""
        old_id = retrain.get("ct_instance_id")
        run_job = ((retrain.get("evaluations") or {}).get("new") or {}).get("job_id")
        try:
            moved = self._move(owner, app, version, old_id, run_job)
        except DomainError as e:
            log.warning("app %s v%s: the continuous test did not move: %s", app, version, e)
            self._timeline.record(owner.id, app, "reference_move_failed",
                                  f"v{version} is deployed, but CT instance {old_id} still tests the version it "
                                  f"replaced: {e}"[:1000], {"ct_instance_id": old_id})
            return None
        self._timeline.record(owner.id, app, "reference_moved", moved.pop("reason"), moved)
        # What the first test of the new instance is watched for (on_event), one hand-over per app.
        self._blobs.put_bytes(_watch_key(owner.id, app), json.dumps(
            {"ct_instance_id": moved["ct_instance_id"], "app_version": version}).encode(), "application/json")
        return moved

    def on_event(self, event: KileleEvent) -> None:
        """A published state change: the end of the first continuous test of an instance a
        hand-over made is recorded on its app's timeline (``deployed_version_tested``)."""
        detail = event.detail
        if detail.kind is not EventKind.CONTINUOUS_TEST or detail.status not in ("SUCCEEDED", "FAILING"):
            return
        instance_id = str(detail.data.get("ct_instance_id", ""))
        source = self._schedules.traffic_source(instance_id) if instance_id else None
        if source is None:
            return
        app = source[1]
        try:
            watched = json.loads(self._blobs.get_bytes(_watch_key(detail.owner_id, app)))
        except NotFound:
            return
        if watched.get("ct_instance_id") != instance_id:
            return
        self._blobs.delete(_watch_key(detail.owner_id, app))  # the first test only
        version = watched.get("app_version")
        where = f"the first continuous test of v{version} on the app's traffic (CT instance {instance_id}, job {detail.id})"
        data = {"ct_instance_id": instance_id, "job_id": detail.id, "app_version": version,
                "num_bins": detail.data.get("num_bins"), "breached": []}
        if detail.status == "FAILING":
            reason = f"{where} failed: {detail.reason}"
            data["passed"] = False
        else:
            stored = self._instances.get(instance_id)
            breached = sorted({b.monitor_id for b in (stored.breaches if stored else []) if b.job_id == detail.id})
            data.update(passed=not breached, breached=breached)
            reason = (f"{where} passed: {detail.data.get('num_bins')} bin(s), no monitor breached" if not breached
                      else f"{where} breached {', '.join(breached)}")
        self._timeline.record(detail.owner_id, app, "deployed_version_tested", reason[:1000], data)

    def _move(self, owner: User, app: str, version: int, old_id: Optional[str],
              run_job: Optional[str]) -> dict[str, Any]:
        old = self._instances.get(old_id) if old_id else None
        if old is None or old.owner_id != owner.id:
            raise NotFound(f"the CT instance {old_id!r} whose breach retrained no longer exists")
        run = self._ct_run(owner, run_job)
        schedule = self._schedules.get_schedule(owner, old.id)  # everything read before anything changes
        made = self._ct.create_ct_instance(owner, f"{old.name} (v{version})"[:200], old.bin_size_seconds,
                                           run["test_run_id"], old.project_id)
        new_id = made["ct_instance_id"]
        source = dict(self._instances.get(new_id).source)  # the run's reference and model, as create made them
        # Named by its id, whatever the layout of its file (a dataset built from captured traffic lies
        # under dataset-builds/, which the run's object key would turn into an s3:// URI no later job takes).
        trained_on = self._train_jobs.resolve(owner, app, version).train_dataset_id
        source["data_info"] = {**source.get("data_info", {}), "ref_path": f"kilele://datasets/{trained_on}"}
        if "continuous_info" in old.source:  # fixed or rolling, as the user chose
            source["continuous_info"] = old.source["continuous_info"]
        self._instances.update(new_id, source=source, monitors=old.monitors, timestamp_col=old.timestamp_col)
        if old.active:
            self._ct.activate_ct_instance(owner, new_id)  # deactivates the old one: one active per project
        self._schedules.set_schedule(owner, new_id, schedule["expression"], schedule["source"])
        self._schedules.remove_schedule(owner, old.id)
        reference = source.get("data_info", {}).get("ref_path")
        trial = (source.get("model_info") or {}).get("trial_id")
        reason = (f"CT instance {new_id} now tests v{version} (trial {trial}) against the data it was trained on "
                  f"({reference}); it replaces CT instance {old.id}"
                  + (", deactivated," if old.active else "")
                  + f" and takes its schedule {schedule['expression']} on the app's traffic, from now on")
        return {"reason": reason, "ct_instance_id": new_id, "previous_ct_instance_id": old.id,
                "reference": reference, "trial_id": trial, "ot_test_run_id": run["test_run_id"],
                "active": bool(old.active)}

    def _ct_run(self, owner: User, job_id: Optional[str]) -> dict[str, Any]:
        if not job_id:
            raise NotFound("the new version's holdout stress test is not recorded on the retrain")
        return self._stress.get_stress_test(owner, job_id)


def _watch_key(user_id: str, app: str) -> str:
    return f"loop/{user_id}/{app}/handover.json"


__all__ = ["CTHandover"]
