"""The loop's last step (issue 12 item 6) on every service wired with fakes: a deployed retrain takes
over the app's continuous test -- a new CT instance whose reference is the data the new version was
trained on and whose model is its best trial, activated in the old one's place, with the old one's
monitors and its schedule on the app's traffic -- and a retrain that is not deployed moves nothing."""
from __future__ import annotations

import pytest

from chalicelib.entities.events import EventKind, KileleEvent
from chalicelib.services.retrain_policies import target_of

from unit.services.fakes import T0
from unit.services.test_retrain_deploy import retrain_and_evaluate
from unit.services.test_retrain_loop import breach, h, steps  # noqa: F401 - the loop's world


def _prepare(h) -> None:  # noqa: F811
    """The old instance as a user would have it: active, with its own tests and a tuned monitor."""
    s, f = h.services, h.fakes
    f.ct_instances.update("ct-1", active=True, timestamp_col="ts",
                          source={"data_info": {"label_col": "target", "ref_path": "kilele://datasets/old"},
                                  "tests_config": {"Drift": {"severity_thresholds": [0.1, 0.2, 0.3]}},
                                  "continuous_info": {"reference": {"rolling_bins": 3}}})
    s.continuous_tests.update_monitor(h.owner, "ct-1", "drift", {"bound": 3})


def test_the_new_versions_holdout_run_is_the_reference_run_of_the_instance_that_follows_it(h):  # noqa: F811
    _prepare(h)
    retrain_and_evaluate(h, 0.95)
    f = h.fakes
    v2 = h.services.train_jobs.resolve(h.owner, "fraud", 2)
    runs = {j.config["model_info"]["app_version"]: j for j in f.stress_test_jobs.items.values()}
    new, serving = runs[2], runs[1]
    # Its reference is the data v2 was trained on; the serving version's run is on the holdout alone.
    assert new.config["data_info"]["ref_path"] == f.datasets.items[v2.train_dataset_id].object_key
    assert serving.config["data_info"]["ref_path"] == serving.config["data_info"]["eval_path"]
    assert new.config["tests_config"] == {"Drift": {"severity_thresholds": [0.1, 0.2, 0.3]}}
    assert new.project_id == f.ct_instances.items["ct-1"].project_id


def test_a_deployed_retrain_takes_over_the_apps_continuous_test(h):  # noqa: F811
    _prepare(h)
    retrain_and_evaluate(h, 0.95)
    s, f = h.services, h.fakes
    timeline = s.app_timeline.get(h.owner, "fraud")
    assert [e["step"] for e in timeline][-2:] == ["deployed", "reference_moved"]
    moved = timeline[-1]
    new_id = moved["data"]["ct_instance_id"]
    v2 = s.train_jobs.resolve(h.owner, "fraud", 2)
    new, old = f.ct_instances.items[new_id], f.ct_instances.items["ct-1"]
    # The new instance: v2's best trial against v2's training data, on the run that scored it.
    run = next(j for j in f.stress_test_jobs.items.values() if j.config["model_info"]["app_version"] == 2)
    assert new.ot_test_run_id == run.test_run_id == moved["data"]["ot_test_run_id"]
    assert new.source["data_info"]["ref_path"] == f"kilele://datasets/{v2.train_dataset_id}"
    assert new.source["model_info"] == {"trial_id": "trial-2"}
    # ... with the old one's settings, and none of its results.
    assert new.source["continuous_info"] == {"reference": {"rolling_bins": 3}}
    assert new.timestamp_col == "ts" and new.bin_size_seconds == old.bin_size_seconds
    assert next(m for m in new.monitors if m.id == "drift").bound == 3
    assert new.breaches == [] and new.bins_key is None and new.history_key is None
    # One active instance per project: the new one; the old one keeps its reference, unchanged.
    assert new.active and not old.active
    assert s.continuous_tests.get_active_ct_instance(h.owner, old.project_id)["ct_instance_id"] == new_id
    assert old.source["data_info"]["ref_path"] == "kilele://datasets/old" and "model_info" not in old.source
    # The schedule on the app's traffic moved: the new instance's firings are the loop's now.
    assert sorted(f.scheduler.schedules) == [f"ct-{new_id}"]
    assert s.ct_schedules.traffic_source(new_id) == (h.owner.email, "fraud")
    assert s.ct_schedules.traffic_source("ct-1") is None
    schedule = s.ct_schedules.get_schedule(h.owner, new_id)
    assert schedule["expression"] == "rate(1 hour)" and schedule["source"] == {"app": "fraud"}
    assert schedule["watermark"] == moved["time"]  # the traffic answered from the hand-over on
    for phrase in (new_id, "v2", "trial-2", "the data it was trained on", v2.train_dataset_id, "ct-1",
                   "deactivated", "rate(1 hour)"):
        assert phrase in moved["reason"], (phrase, moved["reason"])
    published = [e.detail.status for e in f.event_publisher.published if e.detail.kind is EventKind.APP_TIMELINE]
    assert published[-1] == "REFERENCE_MOVED"

    # The loop goes on from the new instance: its breach retrains again (v3).
    s.retrain.on_breaches(f.ct_instances.get(new_id), [breach()])
    assert steps(h)[-1] == "retrain_started"
    assert s.retrain.get_policy(h.owner, "fraud")["retrain"]["ct_instance_id"] == new_id


def test_a_reference_built_from_captured_traffic_is_named_by_its_dataset_id(h):  # noqa: F811
    """A dataset built by a job (labelled captured traffic) keeps its file under dataset-builds/:
    the new instance still names its reference kilele://datasets/<id>, as later jobs take it."""
    _prepare(h)
    h.fakes.datasets.items[h.fresh.id].object_key = f"dataset-builds/{h.fresh.id}/data.csv"
    retrain_and_evaluate(h, 0.95)
    moved = h.services.app_timeline.get(h.owner, "fraud")[-1]["data"]
    assert moved["reference"] == f"kilele://datasets/{h.fresh.id}"
    new = h.fakes.ct_instances.items[moved["ct_instance_id"]]
    assert new.source["data_info"] == {"label_col": "target", "ref_path": f"kilele://datasets/{h.fresh.id}"}


def test_an_inactive_instance_is_followed_but_not_activated(h):  # noqa: F811
    retrain_and_evaluate(h, 0.95)  # ct-1 was never activated (the user chose another, say)
    moved = h.services.app_timeline.get(h.owner, "fraud")[-1]
    assert moved["step"] == "reference_moved" and "deactivated" not in moved["reason"]
    assert not h.fakes.ct_instances.items[moved["data"]["ct_instance_id"]].active


def test_a_kept_retrain_leaves_the_reference_and_the_schedule_where_they_were(h):  # noqa: F811
    _prepare(h)
    retrain_and_evaluate(h, 0.60)
    s, f = h.services, h.fakes
    assert steps(h)[-1] == "kept" and "reference_moved" not in steps(h)
    assert list(f.ct_instances.items) == ["ct-1"] and f.ct_instances.items["ct-1"].active
    assert f.ct_instances.items["ct-1"].source["data_info"]["ref_path"] == "kilele://datasets/old"
    assert sorted(f.scheduler.schedules) == ["ct-ct-1"]


def test_a_hand_over_that_cannot_happen_says_why_and_the_version_stays_deployed(h):  # noqa: F811
    _prepare(h)
    s, f = h.services, h.fakes
    original = s.ct_schedules.get_schedule

    def gone(actor, instance_id):  # the old instance's schedule was removed while the retrain ran
        s.ct_schedules.remove_schedule(actor, instance_id)
        return original(actor, instance_id)

    s.ct_schedules.get_schedule = gone
    retrain_and_evaluate(h, 0.95)
    timeline = s.app_timeline.get(h.owner, "fraud")
    assert [e["step"] for e in timeline][-2:] == ["deployed", "reference_move_failed"]
    assert "v2 is deployed, but CT instance ct-1 still tests" in timeline[-1]["reason"]
    assert "no schedule" in timeline[-1]["reason"]
    assert f.apps.items[(h.owner.id, "fraud")].version == 2
    assert list(f.ct_instances.items) == ["ct-1"]  # nothing half-made: what it needs is read first



@pytest.mark.parametrize("dataset, target", [
    ({"target_column": "churned", "stats": {"target_column": "churned"}}, "churned"),
    ({"target_column": None, "stats": {"target_column": "target"}}, "target"),  # found by the check, as models read it
    ({"target_column": None, "stats": {"target_column": "y"}}, "y"),  # no "target": the last column
    ({"target_column": None, "stats": {}}, "label"),
])
def test_the_loops_label_column_is_the_datasets_effective_target(dataset, target):
    """The holdout runs' label_col and the captured dataset's target: a dataset uploaded without
    target_column has the one its check found (the e2e's datasets are such)."""
    assert target_of(dataset) == target


def _ended(h, instance_id: str, job_id: str, status: str = "SUCCEEDED", reason=None) -> None:  # noqa: F811
    """A continuous-test job of ``instance_id`` ended, as ContinuousTestService publishes it."""
    event = KileleEvent.state_change(EventKind.CONTINUOUS_TEST, id=job_id, status=status, owner_id=h.owner.id,
                                     time=T0, reason=reason, data={"ct_instance_id": instance_id, "mode": "incremental",
                                                                   "num_bins": 1, "num_new_breaches": 0})
    h.services.continuous_tests._events.publish(event)  # the wired publisher, with the loop's listeners


def test_the_deployed_versions_first_continuous_test_is_on_the_timeline(h):  # noqa: F811
    _prepare(h)
    retrain_and_evaluate(h, 0.95)
    new_id = h.services.app_timeline.get(h.owner, "fraud")[-1]["data"]["ct_instance_id"]
    _ended(h, "ct-1", "job-old")  # the old instance's jobs are not the deployed version's
    assert steps(h)[-1] == "reference_moved"
    _ended(h, new_id, "job-1")
    tested = h.services.app_timeline.get(h.owner, "fraud")[-1]
    assert tested["step"] == "deployed_version_tested" and tested["data"]["passed"] is True
    assert "the first continuous test of v2 on the app's traffic" in tested["reason"]
    assert "passed: 1 bin(s), no monitor breached" in tested["reason"] and new_id in tested["reason"]
    _ended(h, new_id, "job-2")  # the first only: later tests are the instance's (its bins, breaches, events)
    assert steps(h)[-1] == "deployed_version_tested" and steps(h).count("deployed_version_tested") == 1


def test_a_deployed_version_that_breaches_or_fails_its_first_test_says_so(h):  # noqa: F811
    _prepare(h)
    retrain_and_evaluate(h, 0.95)
    new_id = h.services.app_timeline.get(h.owner, "fraud")[-1]["data"]["ct_instance_id"]
    found = breach("model-performance")
    found.job_id = "job-1"
    h.fakes.ct_instances.update(new_id, breaches=[found, breach()])  # breach() is an older job's
    _ended(h, new_id, "job-1")
    tested = h.services.app_timeline.get(h.owner, "fraud")[-1]
    assert tested["data"]["passed"] is False and tested["data"]["breached"] == ["model-performance"]
    assert tested["reason"].endswith("breached model-performance")


def test_a_first_test_that_failed_says_why(h):  # noqa: F811
    _prepare(h)
    retrain_and_evaluate(h, 0.95)
    new_id = h.services.app_timeline.get(h.owner, "fraud")[-1]["data"]["ct_instance_id"]
    _ended(h, new_id, "job-1", status="FAILING", reason="the worker ran out of memory")
    tested = h.services.app_timeline.get(h.owner, "fraud")[-1]
    assert tested["data"]["passed"] is False and tested["reason"].endswith("failed: the worker ran out of memory")
