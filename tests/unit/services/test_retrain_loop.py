"""The retrain loop's policy decisions (issue 12 item 6) on every service wired with fakes: a breach
of a chosen monitor on a CT of the app's traffic starts a train job with the latest job's
configuration; other monitors, other instances and a breach while a retrain runs start nothing;
each step is on the app's timeline and published."""
from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.capture_format import CapturedQuery, capture_key, capture_record, ground_truth_key, ground_truth_record
from chalicelib.entities import Task
from chalicelib.entities.continuous import Breach, CTInstance
from chalicelib.entities.events import EventKind
from chalicelib.entities.serving import InputType
from chalicelib.entities.training import TrainJobStatus
from chalicelib.errors import InvalidInput, NotFound, Unavailable, Unprocessable
from chalicelib.services.continuous_tests import ContinuousTestService
from chalicelib.services.retrain_policies import CAPTURED, parse_policy

from unit.services.fakes import T0, services
from unit.services.test_continuous_tests import BUCKET, a_bin, w  # noqa: F401 - the CT world fixture


@pytest.fixture
def h():
    harness = services()
    s, f = harness.services, harness.fakes
    harness.owner = owner = harness.user()
    harness.train = harness.dataset(owner, name="train")
    harness.fresh = harness.dataset(owner, name="fresh")
    model = harness.model(owner)
    s.apps.register_application(owner, "fraud", InputType.FLOATS, None, 1_000_000)
    harness.v1 = s.train_jobs.create_train_job(owner, "fraud", Task.TABULAR_CLASSIFICATION, harness.train.id,
                                               harness.train.id, {"MODEL_TRIAL_COUNT": 2}, [model.id],
                                               train_args={"seed": 7})
    f.train_jobs.items[harness.v1["id"]].status = TrainJobStatus.STOPPED
    project = s.projects.default_project(owner)  # the retrain's holdout runs are filed under the instance's project
    instance = CTInstance(id="ct-1", owner_id=owner.id, project_id=project.id, name="fraud", bin_size_seconds=3600,
                          ot_test_run_id="r", created_at=T0, source={"data_info": {"label_col": "target"}})
    f.ct_instances.add(instance)
    harness.instance = instance
    s.ct_schedules.set_schedule(owner, "ct-1", "rate(1 hour)", {"app": "fraud"})
    return harness


def breach(monitor_id: str = "drift") -> Breach:
    return Breach(monitor_id=monitor_id, metric="category_worst:Drift", value=3.0, operator=">=", bound=2.0,
                  severity="HIGH", time_bin_start="2026-01-01T03:00:00+00:00",
                  time_bin_end="2026-01-01T04:00:00+00:00", job_id="j-9", report="/stress-tests/j-9/report",
                  created_at=T0)


def steps(h) -> list[str]:
    return [e["step"] for e in h.services.app_timeline.get(h.owner, "fraud")]


def test_a_chosen_monitor_breached_starts_a_train_job_like_the_latest(h):
    s = h.services
    s.retrain.set_policy(h.owner, "fraud", {"monitors": ["drift"], "dataset": {"dataset_id": h.fresh.id},
                                            "budget": {"MODEL_TRIAL_COUNT": 5}})
    s.retrain.on_breaches(h.instance, [breach("abnormal-inputs"), breach("drift")])
    jobs = sorted(s.train_jobs.get_train_jobs_of_app(h.owner, "fraud"), key=lambda j: j["app_version"])
    assert [j["app_version"] for j in jobs] == [1, 2]
    new = h.fakes.train_jobs.items[jobs[1]["id"]]
    assert new.train_dataset_id == h.fresh.id and new.val_dataset_id == h.train.id
    assert new.budget == {"MODEL_TRIAL_COUNT": 5} and new.train_args == {"seed": 7}
    assert new.model_ids == h.fakes.train_jobs.items[h.v1["id"]].model_ids
    assert steps(h) == ["policy_set", "breach_seen", "retrain_started"]
    seen = h.services.app_timeline.get(h.owner, "fraud")[1]
    assert "monitor drift breached" in seen["reason"] and seen["data"]["ct_instance_id"] == "ct-1"
    published = [e for e in h.fakes.event_publisher.published if e.detail.kind is EventKind.APP_TIMELINE]
    assert [e.detail.status for e in published] == ["POLICY_SET", "BREACH_SEEN", "RETRAIN_STARTED"]
    assert s.retrain.get_policy(h.owner, "fraud")["retrain"]["app_version"] == 2

    # A breach while that job runs is seen and skipped: never a second retrain at once.
    s.retrain.on_breaches(h.instance, [breach()])
    assert len(s.train_jobs.get_train_jobs_of_app(h.owner, "fraud")) == 2
    assert steps(h)[-2:] == ["breach_seen", "retrain_skipped"]
    # Once it ended, the next breach retrains again.
    h.fakes.train_jobs.items[jobs[1]["id"]].status = TrainJobStatus.STOPPED
    s.retrain.on_breaches(h.instance, [breach()])
    assert len(s.train_jobs.get_train_jobs_of_app(h.owner, "fraud")) == 3


def test_other_monitors_and_instances_without_the_apps_traffic_start_nothing(h):
    s = h.services
    s.retrain.set_policy(h.owner, "fraud", {"monitors": ["drift"], "dataset": {"dataset_id": h.fresh.id}})
    s.retrain.on_breaches(h.instance, [breach("model-performance")])
    other = CTInstance(id="ct-2", owner_id=h.owner.id, project_id="p", name="x", bin_size_seconds=3600,
                       ot_test_run_id="r", created_at=T0, source={})
    s.retrain.on_breaches(other, [breach()])  # no schedule on the app's traffic
    assert len(s.train_jobs.get_train_jobs_of_app(h.owner, "fraud")) == 1 and steps(h) == ["policy_set"]
    s.retrain.remove_policy(h.owner, "fraud")
    s.retrain.on_breaches(h.instance, [breach()])  # no policy
    assert len(s.train_jobs.get_train_jobs_of_app(h.owner, "fraud")) == 1


def _traffic(h, labelled=(("q1", 1.0, "a"), ("q2", 2.0, None), ("q3", 3.0, "b"))) -> None:
    at = T0 + timedelta(hours=1)
    for qid, x, label in labelled:
        h.fakes.blobs.objects[capture_key(h.owner.id, "fraud", "ep", "AllTraffic", at, at, unique=qid)] = \
            capture_record(CapturedQuery(qid, {"x1": x, "x2": x * 2}, "a", at))
        if label is not None:
            h.fakes.blobs.objects[ground_truth_key(h.owner.id, "fraud", at, unique=f"l{qid}")] = \
                ground_truth_record(qid, label)


def test_a_retrain_on_labelled_captured_traffic_builds_the_dataset_in_a_job_then_trains_on_it(h):
    s, f = h.services, h.fakes
    s.retrain.set_policy(h.owner, "fraud", {"monitors": ["drift"], "dataset": CAPTURED})
    _traffic(h)
    s.retrain.on_breaches(h.instance, [breach()])
    # The breach read no data: it listed the files and started the dataset's job.
    assert steps(h)[-1] == "dataset_build_started", h.services.app_timeline.get(h.owner, "fraud")[-1]
    [dataset_id] = f.dataset_check_dispatcher.queued
    made = f.datasets.items[dataset_id]
    assert made.status.value == "PENDING" and made.name.startswith("fraud-captured-") and made.target_column == "target"
    assert made.object_key not in f.blobs.objects and len(s.train_jobs.get_train_jobs_of_app(h.owner, "fraud")) == 1
    started = s.app_timeline.get(h.owner, "fraud")[-1]
    assert started["data"] == {"dataset_id": dataset_id, "num_files": 3, "num_label_files": 2}
    # A breach while it is built starts nothing.
    s.retrain.on_breaches(h.instance, [breach()])
    assert steps(h)[-2:] == ["breach_seen", "retrain_skipped"] and len(f.dataset_check_dispatcher.queued) == 1
    assert "still being built" in s.app_timeline.get(h.owner, "fraud")[-1]["reason"]

    s.datasets.check_job.run(dataset_id)  # the job: builds the file, checks it, READY
    assert f.datasets.items[dataset_id].status.value == "READY"
    lines = f.blobs.objects[made.object_key].decode().splitlines()
    assert lines[0].split(",") == ["x1", "x2", "target"] and len(lines) == 3  # q2 has no label
    assert steps(h)[-2:] == ["dataset_built", "retrain_started"]
    job = max(f.train_jobs.items.values(), key=lambda j: j.app_version)
    assert job.app_version == 2 and job.train_dataset_id == dataset_id
    assert s.retrain.get_policy(h.owner, "fraud")["retrain"]["app_version"] == 2


def test_a_dataset_job_that_fails_is_a_failed_retrain_with_the_datasets_error(h):
    s, f = h.services, h.fakes
    s.retrain.set_policy(h.owner, "fraud", {"monitors": ["drift"], "dataset": CAPTURED})
    _traffic(h)
    [capture] = [k for k in f.blobs.objects if k.startswith("capture/") and "q1" in k]
    f.blobs.objects[capture] = b"not a capture record\n"
    s.retrain.on_breaches(h.instance, [breach()])
    [dataset_id] = f.dataset_check_dispatcher.queued
    s.datasets.check_job.run(dataset_id)
    dataset = f.datasets.items[dataset_id]
    assert dataset.status.value == "INVALID" and "is not a Data Capture record" in dataset.error
    last = s.app_timeline.get(h.owner, "fraud")[-1]
    assert last["step"] == "retrain_failed" and dataset_id in last["reason"] and dataset.error in last["reason"]
    assert s.retrain.get_policy(h.owner, "fraud")["retrain"] is None  # the next breach may retrain again
    s.retrain.on_breaches(h.instance, [breach()])
    assert steps(h)[-1] == "dataset_build_started"


def test_a_job_that_cannot_start_is_a_failed_retrain_said_once(h):
    s, f = h.services, h.fakes
    s.retrain.set_policy(h.owner, "fraud", {"monitors": ["drift"], "dataset": CAPTURED})
    _traffic(h)
    f.dataset_check_dispatcher.fail_once("dispatch", Unavailable("AWS Batch refused the dataset check job (ClientException)"))
    s.retrain.on_breaches(h.instance, [breach()])
    assert steps(h)[-3:] == ["breach_seen", "dataset_build_started", "retrain_failed"]
    assert "AWS Batch refused" in s.app_timeline.get(h.owner, "fraud")[-1]["reason"]


def test_traffic_without_labels_is_a_failed_retrain_with_why_and_no_job(h):
    h.services.retrain.set_policy(h.owner, "fraud", {"monitors": ["drift"], "dataset": CAPTURED})
    _traffic(h, labelled=(("q1", 1.0, None),))
    h.services.retrain.on_breaches(h.instance, [breach()])
    last = h.services.app_timeline.get(h.owner, "fraud")[-1]
    assert last["step"] == "retrain_failed" and "no labelled captured traffic" in last["reason"]
    assert h.fakes.dataset_check_dispatcher.queued == []


def test_no_labelled_traffic_is_a_failed_retrain_with_why(h):
    h.services.retrain.set_policy(h.owner, "fraud", {"monitors": ["drift"], "dataset": CAPTURED})
    h.services.retrain.on_breaches(h.instance, [breach()])
    last = h.services.app_timeline.get(h.owner, "fraud")[-1]
    assert last["step"] == "retrain_failed" and "no labelled captured traffic" in last["reason"]


@pytest.mark.parametrize("policy, message", [
    ({"monitors": [], "dataset": CAPTURED}, "policy.monitors"),
    ({"monitors": ["drift"], "dataset": "somewhere"}, "policy.dataset"),
    ({"monitors": ["drift"], "dataset": CAPTURED, "budget": {"GPUS": 1}}, "policy.budget"),
    ({"monitors": ["drift"], "dataset": CAPTURED, "colour": 1}, "policy.colour: unknown"),
])
def test_a_bad_policy_is_a_400_naming_the_key(policy, message):
    with pytest.raises(InvalidInput, match=message):
        parse_policy(policy)


def test_deploy_without_a_holdout_is_a_422_naming_it():
    with pytest.raises(Unprocessable, match="holdout_dataset_id: required"):
        parse_policy({"monitors": ["drift"], "dataset": CAPTURED, "deploy": True})


def test_a_policy_names_datasets_and_an_app_of_the_caller(h):
    s = h.services
    with pytest.raises(NotFound, match="no app"):
        s.retrain.set_policy(h.owner, "nope", {"monitors": ["drift"], "dataset": CAPTURED})
    with pytest.raises(NotFound, match="policy.holdout_dataset_id"):
        s.retrain.set_policy(h.owner, "fraud", {"monitors": ["drift"], "dataset": CAPTURED, "deploy": True,
                                                "holdout_dataset_id": "dataset-99"})
    with pytest.raises(NotFound, match="no retrain policy"):
        s.retrain.get_policy(h.owner, "fraud")


def test_the_ct_service_hands_new_breaches_to_the_loop_where_it_records_them(w):  # noqa: F811
    seen = []
    ct = ContinuousTestService(w.instances, w.stress, w.jobs, w.projects, w.blobs, w.events, BUCKET, clock=w.clock,
                               on_breaches=lambda instance, new: seen.append((instance.id, [b.monitor_id for b in new])))
    w.ct = ct
    job = ct.start_continuous_test_from_reference(w.user, w.config())
    w.finish(job["job_id"], [a_bin(0), a_bin(1, drift=3.0)])
    assert seen == [(job["ct_instance_id"], ["drift"])]
    w.finish(ct.start_incremental_continuous_test(w.user, job["ct_instance_id"], {"eval_path": w.upload("e.csv"),
                                                                                  "timestamp_col": "ts"})["job_id"],
             [a_bin(2)])
    assert len(seen) == 1  # no new breach: no call
