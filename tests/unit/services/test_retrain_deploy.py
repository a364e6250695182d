"""The loop's second half (issue 12 item 6) on every service wired with fakes: the retrain's train
job ends, the new and the serving version are stress-tested on the holdout, and the new one is
deployed only if it beats the serving one -- each step on the app's timeline."""
from __future__ import annotations

import json

import pytest

from chalicelib.entities import StressTestStatus, Task
from chalicelib.entities.training import Trial, TrialStatus, TrainJobStatus
from chalicelib.services import stress_messages
from chalicelib.services.retrain_deploy import beats

from unit.services.fakes import T0
from unit.services.test_retrain_loop import breach, h, steps  # noqa: F401 - the loop's world


@pytest.mark.parametrize("new, serving, better, phrase", [
    ({"accuracy": 0.9}, {"accuracy": 0.7}, True, "accuracy 0.9 vs 0.7"),
    ({"accuracy": 0.7}, {"accuracy": 0.9}, False, "not better"),
    ({"accuracy": 0.8}, {"accuracy": 0.8}, False, "not better"),  # a tie keeps the serving version
    ({"rmse": 1.0, "r2": 0.1}, {"rmse": 2.0, "r2": 0.5}, True, "rmse 1 vs 2"),  # lower is better
    ({"rmse": 3.0}, {"rmse": 2.0}, False, "lower is better"),
    ({}, {"accuracy": 0.9}, False, "no metric"),
])
def test_beats(new, serving, better, phrase):
    decided, why = beats(new, serving)
    assert decided is better and phrase in why


def completed_trial(h, job_id: str, n: int) -> None:  # noqa: F811
    job = h.fakes.train_jobs.items[job_id]
    h.fakes.trials.add(Trial(id=f"trial-{n}", train_job_id=job_id, model_id=job.model_ids[0], model_name="m",
                             worker_key="w", number=1, knobs={}, fingerprint=f"f{n}", created_at=T0,
                             status=TrialStatus.COMPLETED, score=0.5, params_key=f"params/{n}"))
    h.fakes.blobs.objects[f"params/{n}"] = b"trained parameters"


def scored(h, job_id: str, accuracy: float) -> None:  # noqa: F811
    """The holdout stress test ``job_id`` ended with this accuracy (its results as the worker writes
    them, then its status)."""
    row = {"test_run_id": "r", "model_performance.evaluation.accuracy": accuracy,
           "model_performance.evaluation.auc": None, "model_performance.reference.accuracy": 1.0}
    h.fakes.blobs.objects[stress_messages.result_key(job_id, "test_run.json")] = json.dumps(
        {"columns": list(row), "records": [row]}).encode()
    h.services.stress_tests._jobs.set_status(job_id, StressTestStatus.SUCCEEDED,
                                             only_from=(StressTestStatus.PENDING, StressTestStatus.RUNNING))


def retrain_and_evaluate(h, new_accuracy: float) -> dict:  # noqa: F811
    s, f = h.services, h.fakes
    holdout = h.dataset(h.owner, name="holdout")
    s.retrain.set_policy(h.owner, "fraud", {"monitors": ["drift"], "dataset": {"dataset_id": h.fresh.id},
                                            "deploy": True, "holdout_dataset_id": holdout.id})
    f.apps.items[(h.owner.id, "fraud")].version = 1  # v1 serves
    completed_trial(h, h.v1["id"], 1)
    s.retrain.on_breaches(h.instance, [breach()])
    v2 = s.train_jobs.resolve(h.owner, "fraud", 2)
    completed_trial(h, v2.id, 2)
    s.train_jobs._jobs.set_status(v2.id, TrainJobStatus.STOPPED, only_from=(TrainJobStatus.STARTED,))
    started = dict(f.stress_workflows.started)
    by_version = {f.stress_test_jobs.items[job_id].config["model_info"]["app_version"]: job_id for job_id in started}
    assert set(by_version) == {1, 2}  # the serving version (-1 resolved) and the new one
    assert steps(h)[-2:] == ["retrain_finished", "evaluation_started"]
    config = f.stress_test_jobs.items[by_version[2]].config
    assert config["data_info"]["label_col"] == "target" and config["data_info"]["eval_path"] == holdout.object_key
    # A breach while the evaluation runs starts no second retrain.
    s.retrain.on_breaches(h.instance, [breach()])
    assert steps(h)[-1] == "retrain_skipped"
    scored(h, by_version[1], 0.80)
    assert steps(h)[-1] == "retrain_skipped"  # one score in: nothing decided yet
    scored(h, by_version[2], new_accuracy)
    return s.retrain.get_policy(h.owner, "fraud")


def test_a_better_retrained_version_is_deployed(h):  # noqa: F811
    retrain_and_evaluate(h, 0.95)
    timeline = h.services.app_timeline.get(h.owner, "fraud")
    assert [e["step"] for e in timeline][-3:] == ["evaluation_scores", "deployed", "reference_moved"], timeline[-1]
    assert "accuracy 0.95 vs 0.8" in timeline[-2]["reason"] and timeline[-2]["data"] == {"app_version": 2}
    [job] = h.fakes.inference_jobs.items.values()
    assert job.app_version == 2
    assert h.fakes.apps.items[(h.owner.id, "fraud")].version == 2  # the pinned app moved to it
    # The app's continuous test moved to the deployed model (tests/unit/services/test_ct_handover.py).
    moved = timeline[-1]["data"]
    assert moved["previous_ct_instance_id"] == "ct-1" and moved["trial_id"] == "trial-2"
    assert h.fakes.ct_instances.items[moved["ct_instance_id"]].source["model_info"] == {"trial_id": "trial-2"}


def test_a_worse_retrained_version_is_kept_out(h):  # noqa: F811
    retrain_and_evaluate(h, 0.60)
    timeline = h.services.app_timeline.get(h.owner, "fraud")
    assert [e["step"] for e in timeline][-2:] == ["evaluation_scores", "kept"]
    assert "does not beat" in timeline[-1]["reason"]
    assert not h.fakes.inference_jobs.items and h.fakes.apps.items[(h.owner.id, "fraud")].version == 1
    # Not deployed: the app's continuous test and its reference are unchanged.
    assert list(h.fakes.ct_instances.items) == ["ct-1"] and "model_info" not in h.fakes.ct_instances.items["ct-1"].source
    assert h.services.ct_schedules.traffic_source("ct-1") == (h.owner.email, "fraud")
    # The loop is free again: the next breach retrains.
    h.services.retrain.on_breaches(h.instance, [breach()])
    assert steps(h)[-1] == "retrain_started"
