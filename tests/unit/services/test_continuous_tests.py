"""CT instances and continuous-test jobs on the fakes: starting, the record steps, monitors, events."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

import pytest

from chalicelib.entities import StressTestStatus, User, UserType
from chalicelib.entities.continuous import Monitor
from chalicelib.entities.events import EventKind
from chalicelib.errors import Conflict, InvalidInput, NotFound, Unavailable, Unprocessable
from chalicelib.services import ct_monitors
from chalicelib.services.continuous_tests import ContinuousTestService, source_of
from chalicelib.services.projects import ProjectService
from chalicelib.services.stress_messages import StressMessageConfig
from chalicelib.services.stress_tests import StressTestService

from unit.services.fakes import (T0, FakeBlobStore, FakeClock, FakeDatasetStore, FakeProjectStore,
                                 FakeStressTestJobStore, FakeWorkflowRunner)
from unit.services.fakes_continuous import FakeCTInstanceStore
from unit.services.fakes_events import FakeEventPublisher

BUCKET = "data-bucket"


@dataclass
class World:
    ct: ContinuousTestService
    stress: StressTestService
    projects: ProjectService
    instances: FakeCTInstanceStore
    jobs: FakeStressTestJobStore
    blobs: FakeBlobStore
    workflows: FakeWorkflowRunner
    events: FakeEventPublisher
    clock: FakeClock
    user: User

    def upload(self, name: str) -> str:
        uri = self.stress.start_upload(self.user, name)["uri"]
        self.blobs.objects[uri.split("/", 3)[3]] = b"x,y,ts\n1,0,2024-01-01T00:00:00Z\n"
        return uri

    def config(self, **continuous) -> dict:
        return {"run_name": "fraud", "data_info": {"label_col": "y", "ref_path": self.upload("ref.csv"),
                                                   "eval_path": self.upload("eval.csv")},
                "model_info": {"path": self.upload("model.py")},
                "continuous_info": {"timestamp_col": "ts", "bin_size": "hour", **continuous}}

    def message(self, job_id: str) -> dict:
        return self.workflows.started[job_id]["message"]

    def finish(self, job_id: str, bins: list[dict], history: bool = True) -> dict:
        """The record step after the worker wrote ``bins`` (and every bin's rows, if ``history``)."""
        self.stress.start(self.workflows.started[job_id])
        self.blobs.objects[f"stress/{job_id}/ct_bins.json"] = json.dumps(bins).encode()
        files = ["ct_bins.json"] + (["history.parquet"] if history else [])
        state = {**self.workflows.started[job_id], "result": {"test_run_id": "r", "extra_files": files}}
        return self.ct.record(state)


@pytest.fixture
def w() -> World:
    clock = FakeClock()
    blobs, jobs, workflows, events = FakeBlobStore(), FakeStressTestJobStore(), FakeWorkflowRunner(), FakeEventPublisher()
    projects = ProjectService(FakeProjectStore(), clock=clock)
    stress = StressTestService(jobs, projects, FakeDatasetStore(), blobs, workflows,
                               StressMessageConfig(bucket=BUCKET, timeout_seconds=600, heartbeat_seconds=5),
                               heartbeat_timeout_seconds=60, presigned_url_seconds=60, max_upload_bytes=10**6,
                               clock=clock)
    instances = FakeCTInstanceStore()
    ct = ContinuousTestService(instances, stress, jobs, projects, blobs, events, BUCKET, clock=clock)
    user = User(id="user-1", email="dev@example.com", user_type=UserType.MODEL_DEVELOPER, password_hash="x",
                created_at=T0)
    return World(ct, stress, projects, instances, jobs, blobs, workflows, events, clock, user)


def a_bin(hour: int, drift: float = 0.0, accuracy: float = 0.9) -> dict:
    start = T0.replace(hour=hour, minute=0)
    return {"time_bin_start": start.isoformat(), "time_bin_end": (start + timedelta(hours=1)).isoformat(),
            "severity": "NONE", "status_counts": {"fail": int(drift >= 2)},
            "metrics": {"category_worst:Drift": drift, "model_performance:accuracy": accuracy}}


# -- from a reference ---------------------------------------------------------------------------------

def test_from_reference_starts_one_job_and_makes_an_inactive_instance(w):
    job = w.ct.start_continuous_test_from_reference(w.user, w.config(reference={"rolling_bins": 3}),
                                                    ram_request_megabytes=1000)
    message = w.message(job["job_id"])
    assert message["continuous"] == {"mode": "from_reference", "ct_instance_id": job["ct_instance_id"],
                                     "history_key": None}
    assert message["config"]["continuous_info"] == {"timestamp_col": "ts", "bin_size": "hour",
                                                    "reference": {"rolling_bins": 3}}
    assert message["memory_limit_mb"] == 2000  # the stress-test job's own options
    instance = w.ct.get_ct_instance(w.user, job["ct_instance_id"])
    assert not instance["active"] and instance["running_job_id"] == job["job_id"]
    assert instance["bin_size_seconds"] == 3600 and instance["ot_test_run_id"] == job["test_run_id"]
    assert instance["reference"] == {"rolling_bins": 3} and instance["timestamp_col"] == "ts"
    source = w.instances.items[job["ct_instance_id"]].source
    assert source["data_info"]["ref_path"].startswith(f"s3://{BUCKET}/stress-inputs/user-1/")
    assert "eval_path" not in source["data_info"] and source["model_info"]["path"].endswith("/model.py")
    with pytest.raises(NotFound, match="no active CT instance"):
        w.ct.get_active_ct_instance(w.user, instance["project_id"])


@pytest.mark.parametrize("info, message", [
    (None, "continuous_info: required"),
    ({"bin_size": "hour"}, "timestamp_col"),
    ({"timestamp_col": "ts", "bin_size": "week"}, "bin_size: 'hour' or 'day'"),
    ({"timestamp_col": "ts", "bin_size": 3600}, "bin_size"),
    ({"timestamp_col": "ts", "bin_size": "day", "reference": {"rolling_bins": 0}}, "reference"),
    ({"timestamp_col": "ts", "bin_size": "day", "colour": "red"}, "colour: unknown key"),
])
def test_a_bad_continuous_info_is_a_400_naming_the_key(w, info, message):
    config = w.config()
    config["continuous_info"] = info
    with pytest.raises(InvalidInput, match=message):
        w.ct.start_continuous_test_from_reference(w.user, config)
    assert not w.workflows.started and not w.instances.items


def test_the_record_step_keeps_bins_checks_monitors_publishes_and_activates(w):
    job = w.ct.start_continuous_test_from_reference(w.user, w.config())
    out = w.finish(job["job_id"], [a_bin(0), a_bin(1, drift=3.0)])
    assert out["status"] == "SUCCEEDED"
    assert w.jobs.items[job["job_id"]].status is StressTestStatus.SUCCEEDED
    instance = w.ct.get_active_ct_instance(w.user, job["project_id"])
    assert instance["ct_instance_id"] == job["ct_instance_id"] and instance["running_job_id"] is None
    assert w.instances.items[job["ct_instance_id"]].history_key == f"stress/{job['job_id']}/history.parquet"
    assert [b["time_bin_start"][11:13] for b in w.ct.list_bins(w.user, job["ct_instance_id"])] == ["00", "01"]
    [breach] = w.ct.list_breaches(w.user, job["ct_instance_id"])
    assert breach["monitor_id"] == "drift" and breach["severity"] == "HIGH" and breach["value"] == 3.0
    assert breach["time_bin_start"] == a_bin(1)["time_bin_start"]
    assert breach["report"] == f"/stress-tests/{job['job_id']}/report"
    [event] = [e for e in w.events.published if e.detail.kind is EventKind.MONITOR]
    assert event.detail.status == "BREACHED" and event.detail.owner_id == "user-1"
    assert event.detail.data["severity"] == "HIGH" and event.detail.data["metric"] == "category_worst:Drift"
    assert event.detail.links["report"] == breach["report"] and "3" in event.detail.reason
    [ended] = [e for e in w.events.published if e.detail.kind is EventKind.CONTINUOUS_TEST]
    assert (ended.detail.id, ended.detail.status) == (job["job_id"], "SUCCEEDED")
    assert ended.detail.data == {"ct_instance_id": job["ct_instance_id"], "mode": "from_reference", "num_bins": 2,
                                 "num_new_breaches": 1}
    assert ended.detail.links["report"] == breach["report"]


def test_a_failed_job_leaves_the_instance_inactive_saying_why(w):
    job = w.ct.start_continuous_test_from_reference(w.user, w.config())
    w.stress.start(w.workflows.started[job["job_id"]])
    w.ct.record_failure({**w.workflows.started[job["job_id"]],
                         "failure": {"Error": "States.TaskFailed", "Cause": "eval.csv: no column 'ts'"}})
    instance = w.ct.get_ct_instance(w.user, job["ct_instance_id"])
    assert not instance["active"] and instance["running_job_id"] is None
    assert job["job_id"] in instance["error"] and "no column 'ts'" in instance["error"]
    assert w.jobs.items[job["job_id"]].status is StressTestStatus.FAILING
    [ended] = [e for e in w.events.published if e.detail.kind is EventKind.CONTINUOUS_TEST]
    assert ended.detail.status == "FAILING" and "no column 'ts'" in ended.detail.reason


def test_a_job_ended_without_its_record_step_frees_the_instance_on_the_next_read(w):
    job = w.ct.start_continuous_test_from_reference(w.user, w.config())
    w.stress.end_interrupted("the local stack stopped while it ran")  # no record step runs
    instance = w.ct.get_ct_instance(w.user, job["ct_instance_id"])
    assert instance["running_job_id"] is None and "the local stack stopped" in instance["error"]
    assert w.instances.items[job["ct_instance_id"]].running_job_id is None
    assert not instance["active"]


def test_a_record_step_whose_instance_is_gone_or_without_bins_fails_so_the_job_fails(w):
    job = w.ct.start_continuous_test_from_reference(w.user, w.config())
    w.stress.start(w.workflows.started[job["job_id"]])
    with pytest.raises(Unprocessable, match="no ct_bins.json"):
        w.ct.record({**w.workflows.started[job["job_id"]], "result": {"extra_files": []}})
    w.instances.items.clear()
    with pytest.raises(NotFound, match="CT instance"):
        w.finish(job["job_id"], [a_bin(0)])


def test_an_unpublished_breach_is_still_recorded(w):
    w.events.failures["publish"] = Unavailable("bus down")
    job = w.ct.start_continuous_test_from_reference(w.user, w.config())
    w.finish(job["job_id"], [a_bin(0, drift=2.0)])
    assert [b["severity"] for b in w.ct.list_breaches(w.user, job["ct_instance_id"])] == ["MEDIUM"]


# -- instances ---------------------------------------------------------------------------------------

def succeeded_stress_test(w) -> dict:
    config = w.config()
    del config["continuous_info"]
    job = w.stress.start_stress_test(w.user, config)
    w.stress.start(w.workflows.started[job["job_id"]])
    w.stress.record({**w.workflows.started[job["job_id"]], "result": {}})
    return job


def test_create_needs_a_succeeded_stress_test_of_the_project_and_an_hour_or_a_day(w):
    job = succeeded_stress_test(w)
    with pytest.raises(InvalidInput, match="bin_size_seconds"):
        w.ct.create_ct_instance(w.user, "ct", 7200, job["test_run_id"], job["project_id"])
    with pytest.raises(NotFound, match="no stress test run"):
        w.ct.create_ct_instance(w.user, "ct", 3600, "nope", job["project_id"])
    other = w.projects.create_project(w.user, "other")
    with pytest.raises(Unprocessable, match="filed under project"):
        w.ct.create_ct_instance(w.user, "ct", 3600, job["test_run_id"], other["project_id"])
    running = w.stress.start_stress_test(w.user, {k: v for k, v in w.config().items() if k != "continuous_info"})
    with pytest.raises(Conflict, match="PENDING"):
        w.ct.create_ct_instance(w.user, "ct", 3600, running["test_run_id"], running["project_id"])
    made = w.ct.create_ct_instance(w.user, "ct", 86400, job["test_run_id"], job["project_id"])
    assert made["bin_size"] == "day" and not made["active"]
    assert [m["monitor_id"] for m in made["monitors"]] == ["abnormal-inputs", "drift", "model-performance",
                                                           "subset-performance"]
    intruder = User(id="user-2", email="x@example.com", user_type=UserType.MODEL_DEVELOPER, password_hash="x",
                    created_at=T0)
    with pytest.raises(NotFound):
        w.ct.get_ct_instance(intruder, made["ct_instance_id"])


def test_activating_one_instance_deactivates_the_projects_other(w):
    job = succeeded_stress_test(w)
    first = w.ct.create_ct_instance(w.user, "a", 3600, job["test_run_id"], job["project_id"])
    second = w.ct.create_ct_instance(w.user, "b", 3600, job["test_run_id"], job["project_id"])
    w.ct.activate_ct_instance(w.user, first["ct_instance_id"])
    w.ct.activate_ct_instance(w.user, second["ct_instance_id"])
    assert [i["active"] for i in w.ct.list_ct_instances(w.user, job["project_id"])] == [False, True]
    assert w.ct.get_active_ct_instance(w.user, job["project_id"])["name"] == "b"
    w.ct.deactivate_ct_instance(w.user, second["ct_instance_id"])
    with pytest.raises(NotFound):
        w.ct.get_active_ct_instance(w.user, job["project_id"])


def test_incremental_tests_new_data_with_the_history_one_job_at_a_time(w):
    first = w.ct.start_continuous_test_from_reference(w.user, w.config())
    instance_id = first["ct_instance_id"]
    for bad, message in (({"eval_path": w.upload("new.csv")}, "timestamp_col: required"),
                         ({"eval_path": "x", "timestamp_col": "ts", "label_col": "y"}, "label_col: unknown key")):
        with pytest.raises(InvalidInput, match=message):
            w.ct.start_incremental_continuous_test(w.user, instance_id, bad)
    new = {"eval_path": w.upload("new.csv"), "timestamp_col": "ts"}
    with pytest.raises(Conflict, match="one continuous test at a time"):
        w.ct.start_incremental_continuous_test(w.user, instance_id, new)
    w.finish(first["job_id"], [a_bin(0)])
    job = w.ct.start_incremental_continuous_test(w.user, instance_id, new)
    message = w.message(job["job_id"])
    assert message["continuous"] == {"mode": "incremental", "ct_instance_id": instance_id,
                                     "history_key": f"stress/{first['job_id']}/history.parquet"}
    assert message["config"]["continuous_info"]["bin_size"] == "hour"
    assert message["eval_key"] == new["eval_path"].split("/", 3)[3]
    assert message["ref_key"] == w.message(first["job_id"])["ref_key"]  # the instance's reference
    # Its bin 0 again (now fine) and bin 1: the breach of bin 0 is replaced by the new results.
    w.finish(job["job_id"], [a_bin(0, drift=0.0), a_bin(2, drift=2.0)], history=False)
    assert w.instances.items[instance_id].history_key.startswith(f"stress/{first['job_id']}/")  # none new: kept
    assert [b["time_bin_start"][11:13] for b in w.ct.list_breaches(w.user, instance_id)] == ["02"]
    assert [b["job_id"] for b in w.ct.list_bins(w.user, instance_id)] == [job["job_id"], job["job_id"]]


def test_a_start_that_fails_frees_the_instance(w):
    first = w.ct.start_continuous_test_from_reference(w.user, w.config())
    w.finish(first["job_id"], [a_bin(0)])
    with pytest.raises(NotFound):
        w.ct.start_incremental_continuous_test(w.user, first["ct_instance_id"],
                                               {"eval_path": f"s3://{BUCKET}/stress-inputs/user-1/x/none.csv",
                                                "timestamp_col": "ts"})
    assert w.instances.items[first["ct_instance_id"]].running_job_id is None


def test_source_of_gives_back_uris_of_uploads_datasets_and_trials():
    config = {"run_name": "r", "data_info": {"label_col": "y", "ref_path": "datasets/ds-1/data",
                                             "eval_path": "stress-inputs/u/e.csv", "timestamp_col": "ts"},
              "model_info": {"app": "a", "app_version": 2, "trial_id": "t-9"}, "continuous_info": {"x": 1}}
    source = source_of(config, BUCKET)
    assert source == {"run_name": "r", "data_info": {"label_col": "y", "ref_path": "kilele://datasets/ds-1"},
                      "model_info": {"trial_id": "t-9"}}
    assert source_of({"data_info": {"ref_path": "stress-inputs/u/r.csv"}, "model_info": {"path": "stress-inputs/u/m.py"}},
                     BUCKET)["model_info"] == {"path": f"s3://{BUCKET}/stress-inputs/u/m.py"}


# -- monitors -----------------------------------------------------------------------------------------

def bins_of(*values: float, metric: str = "m") -> dict:
    return {f"2024-01-01T0{i}:00:00+00:00": {"time_bin_end": f"2024-01-01T0{i + 1}:00:00+00:00",
                                             "metrics": {metric: v}} for i, v in enumerate(values)}


def test_monitors_aggregate_over_a_window_of_bins():
    bins = bins_of(0.1, 0.5, 0.3, None)
    starts = sorted(bins)
    mean2 = Monitor(id="m2", metric="m", operator=">=", bound=0.4, aggregation="mean", window_bins=2)
    assert [f.time_bin_start for f in ct_monitors.evaluate([mean2], bins, starts)] == starts[2:3]  # (0.5+0.3)/2
    low = Monitor(id="low", metric="m", operator="<", bound=0.2, aggregation="last")
    assert [f.time_bin_start for f in ct_monitors.evaluate([low], bins, starts)] == starts[:1]  # None: not judged
    worst3 = Monitor(id="w", metric="m", operator=">", bound=0.45, aggregation="max", window_bins=3)
    assert len(ct_monitors.evaluate([worst3], bins, starts)) == 3  # each window holding 0.5
    off = Monitor(id="off", metric="m", operator=">", bound=0.0, enabled=False)
    assert ct_monitors.evaluate([off], bins, starts) == []
    assert ct_monitors.evaluate([worst3], bins, ["2030-01-01T00:00:00+00:00"]) == []  # unknown bin


def test_a_level_metric_breach_has_the_levels_severity_others_the_monitors():
    level = Monitor(id="d", metric="category_worst:Drift", operator=">=", bound=2, severity="LOW")
    assert (level.breach_severity(2.0), level.breach_severity(3.0)) == ("MEDIUM", "HIGH")
    accuracy = Monitor(id="a", metric="model_performance:accuracy", operator="<", bound=0.8, severity="LOW")
    assert accuracy.breach_severity(0.5) == "LOW"


def test_monitors_are_listed_updated_and_made_with_checked_fields(w):
    job = succeeded_stress_test(w)
    instance = w.ct.create_ct_instance(w.user, "ct", 3600, job["test_run_id"], job["project_id"])["ct_instance_id"]
    changed = w.ct.update_monitor(w.user, instance, "drift", {"window_bins": 3, "aggregation": "mean"})
    assert changed["window_bins"] == 3 and changed["metric"] == "category_worst:Drift"
    for fields, message in (({"aggregation": "median"}, "aggregation"), ({"window_bins": 0}, "window_bins"),
                            ({"operator": "=="}, "operator"), ({"bound": float("nan")}, "bound"),
                            ({"colour": 1}, "colour: unknown")):
        with pytest.raises(InvalidInput, match=message):
            w.ct.update_monitor(w.user, instance, "drift", fields)
    with pytest.raises(NotFound):
        w.ct.update_monitor(w.user, instance, "nope", {"bound": 1})
    with pytest.raises(InvalidInput, match="needs metric, operator and bound"):
        w.ct.create_monitor(w.user, instance, {"metric": "model_performance:accuracy"})
    made = w.ct.create_monitor(w.user, instance, {"metric": "model_performance:accuracy", "operator": "<",
                                                  "bound": 0.8, "severity": "HIGH"})
    listed = w.ct.list_monitors(w.user, instance)
    assert listed[1]["window_bins"] == 3 and listed[-1] == made and len(listed) == 5
