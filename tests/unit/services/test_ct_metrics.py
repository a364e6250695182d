"""Continuous tests' CloudWatch metrics: what a job's record steps emit (services/ct_metrics.py, on
the fakes), the EMF documents made of it (ct_metrics_format.py, pure) and which sink the settings
name (wiring_metrics.py)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Optional

import pytest

from chalicelib.adapters.ct_metrics.emf import EmfCTMetrics
from chalicelib.adapters.ct_metrics.local import LocalCTMetricsLog
from chalicelib.ct_metrics_format import (BIN_DIMENSIONS, JOB_DIMENSIONS, NAMESPACE, NO_APP, BinValue,
                                          CTMetricsRecord, emf_documents)
from chalicelib.entities import User, UserType
from chalicelib.errors import NotFound, Unavailable
from chalicelib.services.continuous_tests import ContinuousTestService
from chalicelib.services.ct_metrics import CTMetrics, bin_failed
from chalicelib.services.projects import ProjectService
from chalicelib.services.stress_messages import StressMessageConfig
from chalicelib.services.stress_tests import StressTestService
from chalicelib.settings import Settings
from chalicelib.wiring_metrics import ct_metrics_sink

from unit.services.fakes import (T0, FakeBlobStore, FakeClock, FakeDatasetStore, FakeProjectStore,
                                 FakeStressTestJobStore, FakeWorkflowRunner)
from unit.services.fakes_continuous import FakeCTInstanceStore, FakeCTMetricsSink
from unit.services.fakes_events import FakeEventPublisher


class World:
    def __init__(self, apps: dict[str, str]):
        self.clock = FakeClock()
        self.blobs, self.jobs, self.workflows = FakeBlobStore(), FakeStressTestJobStore(), FakeWorkflowRunner()
        projects = ProjectService(FakeProjectStore(), clock=self.clock)
        self.stress = StressTestService(self.jobs, projects, FakeDatasetStore(), self.blobs, self.workflows,
                                        StressMessageConfig(bucket="b", timeout_seconds=600, heartbeat_seconds=5),
                                        heartbeat_timeout_seconds=60, presigned_url_seconds=60,
                                        max_upload_bytes=10**6, clock=self.clock)
        self.sink = FakeCTMetricsSink()
        self.apps = apps  # CT instance id -> the app its schedule tests

        def app_of(instance_id: str) -> Optional[str]:
            if instance_id == "unreadable":
                raise Unavailable("S3 down")
            return self.apps.get(instance_id)

        self.instances = FakeCTInstanceStore()
        self.ct = ContinuousTestService(self.instances, self.stress, self.jobs, projects, self.blobs,
                                        FakeEventPublisher(), "b", clock=self.clock,
                                        metrics=CTMetrics(self.sink, app_of, clock=self.clock))
        self.user = User(id="user-1", email="dev@example.com", user_type=UserType.MODEL_DEVELOPER,
                         password_hash="x", created_at=T0)

    def upload(self) -> str:
        uri = self.stress.start_upload(self.user, "d.csv")["uri"]
        self.blobs.objects[uri.split("/", 3)[3]] = b"x,y,ts\n1,0,2026-12-01T00:00:00Z\n"
        return uri

    def start(self) -> dict:
        uri = self.upload()
        return self.ct.start_continuous_test_from_reference(self.user, {
            "run_name": "fraud", "data_info": {"label_col": "y", "ref_path": uri, "eval_path": uri},
            "model_info": {"path": uri}, "continuous_info": {"timestamp_col": "ts", "bin_size": "hour"}})

    def finish(self, job_id: str, bins: list[dict]) -> dict:
        self.stress.start(self.workflows.started[job_id])
        self.blobs.objects[f"stress/{job_id}/ct_bins.json"] = json.dumps(bins).encode()
        return self.ct.record({**self.workflows.started[job_id],
                               "result": {"test_run_id": "r", "extra_files": ["ct_bins.json"]}})


def a_bin(hour: int, drift: float = 0.0, fail: int = 0, day: datetime = T0) -> dict:
    start = day.replace(hour=hour, minute=0)
    return {"time_bin_start": start.isoformat(), "time_bin_end": (start + timedelta(hours=1)).isoformat(),
            "severity": "NONE", "status_counts": {"fail": fail, "pass": 3},
            "metrics": {"category_worst:Drift": drift, "model_performance:accuracy": 0.9, "num_inputs": 10.0}}


def test_a_recorded_job_emits_its_counts_and_its_monitored_metrics_per_bin_for_its_app():
    w = World({})
    job = w.start()
    w.apps[job["ct_instance_id"]] = "fraud"
    w.clock.now = T0 + timedelta(hours=3)
    w.finish(job["job_id"], [a_bin(0), a_bin(1, drift=3.0, fail=2), a_bin(2, fail=1)])
    [record] = w.sink.records
    assert (record.app, record.ct_instance_id, record.at) == ("fraud", job["ct_instance_id"], T0 + timedelta(hours=3))
    assert (record.bins_tested, record.bins_failed, record.monitors_breached, record.job_failed) == (3, 2, 1, False)
    # Only what an enabled monitor watches: the four default categories' worst levels; the bins
    # have only the Drift one (accuracy and num_inputs are watched by no monitor).
    assert [(v.time_bin_start.hour, v.metric, v.value) for v in record.values] == [
        (0, "category_worst:Drift", 0.0), (1, "category_worst:Drift", 3.0), (2, "category_worst:Drift", 0.0)]


def test_a_new_monitor_adds_its_metric_and_a_disabled_one_removes_its_own():
    w = World({})
    job = w.start()
    w.finish(job["job_id"], [a_bin(0)])
    instance_id = job["ct_instance_id"]
    w.ct.create_monitor(w.user, instance_id, {"metric": "model_performance:accuracy", "operator": "<", "bound": 0.5})
    w.ct.update_monitor(w.user, instance_id, "drift", {"enabled": False})
    second = w.ct.start_incremental_continuous_test(w.user, instance_id, {"eval_path": w.upload(),
                                                                          "timestamp_col": "ts"})
    w.finish(second["job_id"], [a_bin(5)])
    assert [(v.metric, v.value) for v in w.sink.records[-1].values] == [("model_performance:accuracy", 0.9)]
    assert w.sink.records[-1].app is None  # no schedule on an app's traffic: the "-" app


def test_a_failed_job_emits_jobs_failed():
    w = World({})
    job = w.start()
    w.stress.start(w.workflows.started[job["job_id"]])
    w.ct.record_failure({**w.workflows.started[job["job_id"]],
                         "failure": {"Error": "States.TaskFailed", "Cause": "no column 'ts'"}})
    [record] = w.sink.records
    assert record.job_failed and (record.bins_tested, record.values) == (0, ())


def test_metrics_that_cannot_be_written_or_an_app_that_cannot_be_read_never_fail_the_job(caplog):
    w = World({})
    job = w.start()
    w.sink.failures["emit"] = Unavailable("log stream closed")
    assert w.finish(job["job_id"], [a_bin(0, drift=3.0)])["status"] == "SUCCEEDED"
    assert w.ct.list_breaches(w.user, job["ct_instance_id"])  # recorded all the same
    assert "could not emit the metrics" in caplog.text and "log stream closed" in caplog.text
    del w.sink.failures["emit"]
    w.instances.items["unreadable"] = w.instances.items[job["ct_instance_id"]]
    w.instances.items["unreadable"].id = "unreadable"
    w.ct._metrics.job_failed(w.instances.items["unreadable"])
    assert w.sink.records[-1].app is None and "could not tell which app" in caplog.text


def test_a_bin_failed_when_a_test_failed():
    assert bin_failed({"status_counts": {"fail": 1}}) and not bin_failed({"status_counts": {"fail": 0, "warning": 4}})
    assert not bin_failed({}) and not bin_failed({"status_counts": {"fail": True}})


# -- the EMF documents ----------------------------------------------------------------------------

def _record(**fields) -> CTMetricsRecord:
    values = (BinValue(T0 - timedelta(hours=2), "category_worst:Drift", 3.0),
              BinValue(T0 - timedelta(days=15), "category_worst:Drift", 2.0),  # older than CloudWatch keeps
              BinValue(T0 + timedelta(hours=3), "category_worst:Drift", 1.0),  # too far ahead
              BinValue(T0 - timedelta(hours=1), "model_performance:accuracy", float("nan")))
    return CTMetricsRecord(**{"app": "fraud", "ct_instance_id": "ct1", "at": T0, "bins_tested": 4, "bins_failed": 1,
                              "monitors_breached": 1, "values": values, **fields})


def test_the_documents_are_emf_with_one_dimension_set_each():
    job, value = emf_documents(_record(), "prod")
    for doc, dims in ((job, JOB_DIMENSIONS), (value, BIN_DIMENSIONS)):
        [directive] = doc["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == NAMESPACE
        assert [sorted(d) for d in directive["Dimensions"]] == [sorted(dims)]
        assert all(isinstance(doc[d], str) and doc[d] for d in dims)
        assert all(isinstance(doc[m["Name"]], list) for m in directive["Metrics"])  # EMF: a value or values
    assert job["_aws"]["Timestamp"] == int(T0.timestamp() * 1000)
    assert {m["Name"]: job[m["Name"]] for m in job["_aws"]["CloudWatchMetrics"][0]["Metrics"]} == {
        "BinsTested": [4.0], "BinsFailed": [1.0], "MonitorsBreached": [1.0], "JobsFailed": [0.0]}
    assert (job["app"], job["ct_instance"], job["stage"], job["service"]) == ("fraud", "ct1", "prod", "kilele-ct")
    # The one bin value CloudWatch would keep: at its bin's start.
    assert (value["metric"], value["MetricValue"]) == ("category_worst:Drift", [3.0])
    assert value["_aws"]["Timestamp"] == int((T0 - timedelta(hours=2)).timestamp() * 1000)


def test_an_instance_on_no_apps_traffic_is_the_dash_app_and_a_failed_job_counts_one():
    [job] = emf_documents(_record(app=None, values=(), job_failed=True, bins_tested=0), "prod")
    assert job["app"] == NO_APP and job["JobsFailed"] == [1.0] and job["BinsTested"] == [0.0]


# -- which sink the settings name ---------------------------------------------------------------------

def test_the_settings_name_the_sink(tmp_path):
    assert ct_metrics_sink(Settings(stage="s")) is None
    assert isinstance(ct_metrics_sink(Settings(stage="s", cloudwatch_metrics=True)), EmfCTMetrics)
    local = ct_metrics_sink(Settings(stage="s", ct_metrics_uri=f"local://{tmp_path}"))
    assert isinstance(local, LocalCTMetricsLog) and local.path.parent == tmp_path
    with pytest.raises(ValueError, match="KILELE_CT_METRICS_URI"):
        ct_metrics_sink(Settings(stage="s", ct_metrics_uri="s3://bucket"))


def test_not_found_is_not_swallowed_by_the_record_step():
    # The metrics hook runs after the bins are kept: a job whose instance is gone still fails as before.
    w = World({})
    job = w.start()
    w.instances.items.clear()
    with pytest.raises(NotFound):
        w.finish(job["job_id"], [a_bin(0)])
    assert not w.sink.records


def test_the_composition_root_names_the_app_a_ct_instances_schedule_tests():
    from unit.services.fakes import services

    h = services()
    metrics = h.services.continuous_tests._metrics
    h.fakes.blobs.objects["ct/ct1/schedule.json"] = json.dumps(
        {"source": {"app": "fraud"}, "owner_email": "dev@example.com", "runs": []}).encode()
    h.fakes.blobs.objects["ct/ct2/schedule.json"] = json.dumps(
        {"source": {"s3_prefix": "s3://b/stress-inputs/u/x/"}, "runs": []}).encode()
    assert [metrics._app_of(i) for i in ("ct1", "ct2", "ct3")] == ["fraud", None, None]
    instance = w_instance("ct1")
    metrics.job_failed(instance)
    assert [(r.app, r.job_failed) for r in h.fakes.ct_metrics_sink.records] == [("fraud", True)]


def w_instance(instance_id: str):
    from chalicelib.entities.continuous import CTInstance

    return CTInstance(id=instance_id, owner_id="u", project_id="p", name="n", bin_size_seconds=3600,
                      ot_test_run_id="r", created_at=T0, source={})
