"""CT instances and continuous tests through the API under moto (the DynamoDB repository, S3).
The workflow is a fake here (tests/workflows/test_continuous_test.py runs the real one)."""
from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from api_support import assert_error
from test_stress_tests import CSV, a_config, upload

from unit.services.fakes import FakeClock, FakeWorkflowRunner


@pytest.fixture
def stress_workflows() -> FakeWorkflowRunner:
    return FakeWorkflowRunner()


@pytest.fixture
def service_overrides(stress_workflows) -> dict[str, Any]:
    return {"clock": FakeClock(), "stress_workflows": stress_workflows}


def ct_config(api, settings, **info: Any) -> dict:
    return {**a_config(api, settings), "continuous_info": {"timestamp_col": "ts", "bin_size": "day", **info}}


def record(settings, stress_workflows, job_id: str, bins: list[dict]) -> dict:
    """The state machine's record step after the worker answered with these bins."""
    from chalicelib.wiring import services

    state = stress_workflows.started[job_id]
    services().stress_tests.start(state)
    boto3.client("s3", region_name=settings.region).put_object(
        Bucket=settings.data_bucket, Key=f"stress/{job_id}/ct_bins.json", Body=json.dumps(bins).encode())
    files = ["ct_bins.json", "history.parquet"]
    return services().continuous_tests.record({**state, "result": {"extra_files": files}})


def a_bin(day: int, drift: float) -> dict:
    return {"time_bin_start": f"2024-01-0{day}T00:00:00+00:00", "time_bin_end": f"2024-01-0{day + 1}T00:00:00+00:00",
            "severity": "NONE", "status_counts": {}, "metrics": {"category_worst:Drift": drift}}


def test_seed_002s_continuous_testing_calls(make_user, settings, stress_workflows):
    dev = make_user("MODEL_DEVELOPER")
    bad = dev.call("POST", "/continuous-tests", {"test_run_config": ct_config(dev, settings, bin_size="week")})
    assert_error(bad, 400, "invalid_input", "bin_size")
    started = dev.call("POST", "/continuous-tests", {"test_run_config": ct_config(dev, settings),
                                                     "ram_request_megabytes": 1000})
    assert started.status_code == 201, started.data
    job, instance_id = started.data, started.data["ct_instance_id"]
    assert stress_workflows.started[job["job_id"]]["message"]["continuous"]["mode"] == "from_reference"
    instance = dev.call("GET", f"/ct-instances/{instance_id}").data
    assert instance["active"] is False and instance["bin_size"] == "day" and instance["running_job_id"] == job["job_id"]
    assert_error(dev.call("GET", f"/projects/{job['project_id']}/active-ct-instance"), 404, "not_found", "no active")

    record(settings, stress_workflows, job["job_id"], [a_bin(1, 0.0), a_bin(2, 3.0)])
    assert dev.call("GET", f"/stress-tests/{job['job_id']}").data["status"] == "SUCCEEDED"
    active = dev.call("GET", f"/projects/{job['project_id']}/active-ct-instance")
    assert active.status_code == 200 and active.data["ct_instance_id"] == instance_id
    [breach] = dev.call("GET", f"/ct-instances/{instance_id}/breaches").data
    assert breach["severity"] == "HIGH" and breach["time_bin_start"].startswith("2024-01-02")
    assert len(dev.call("GET", f"/ct-instances/{instance_id}/bins").data) == 2

    changed = dev.call("PATCH", f"/ct-instances/{instance_id}/monitors/drift", {"window_bins": 2})
    assert changed.status_code == 200 and changed.data["window_bins"] == 2
    assert_error(dev.call("PATCH", f"/ct-instances/{instance_id}/monitors/drift", {"aggregation": "median"}),
                 400, "invalid_input", "aggregation")

    new = {"eval_path": upload(dev, settings, "more.csv", CSV), "timestamp_col": "ts"}
    incremental = dev.call("POST", f"/ct-instances/{instance_id}/continuous-tests", {"test_run_config": new})
    assert incremental.status_code == 201, incremental.data
    message = stress_workflows.started[incremental.data["job_id"]]["message"]
    assert message["continuous"]["history_key"] == f"stress/{job['job_id']}/history.parquet"
    assert_error(dev.call("POST", f"/ct-instances/{instance_id}/continuous-tests", {"test_run_config": new}),
                 409, "conflict", "one continuous test at a time")

    deactivated = dev.call("POST", f"/ct-instances/{instance_id}/deactivate")
    assert deactivated.status_code == 200 and deactivated.data["active"] is False
    assert dev.call("POST", f"/ct-instances/{instance_id}/activate").data["active"] is True

    other = make_user("MODEL_DEVELOPER")
    assert_error(other.call("GET", f"/ct-instances/{instance_id}"), 404, "not_found")
    made = dev.call("POST", "/ct-instances", {"name": "again", "bin_size_seconds": 3600,
                                              "ot_test_run_id": job["test_run_id"], "project_id": job["project_id"]})
    assert made.status_code == 201 and made.data["active"] is False, made.data
    assert_error(dev.call("POST", "/ct-instances", {"name": "x", "bin_size_seconds": 60, "ot_test_run_id": "r",
                                                    "project_id": job["project_id"]}), 400, "invalid_input")
    listed = dev.call("GET", f"/projects/{job['project_id']}/ct-instances").data
    assert sorted(i["name"] for i in listed) == ["again", "run 1"]  # one instant (a fixed clock)
