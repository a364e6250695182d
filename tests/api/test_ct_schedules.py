"""CT instances' schedules with a data source through the API under moto (issue 12 item 4): the
schedule is made through the scheduler port, a firing (the registered target, as the scheduler
invokes it) tests the new files of an S3 prefix once, and bad sources are 4xx."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import boto3
import pytest
from api_support import assert_error
from test_continuous_tests import a_bin, ct_config, record

from chalicelib.entities.schedules import Firing
from unit.services.fakes import FakeClock, FakeWorkflowRunner
from unit.services.fakes_events import FakeScheduler


@pytest.fixture
def stress_workflows() -> FakeWorkflowRunner:
    return FakeWorkflowRunner()


@pytest.fixture
def service_overrides(stress_workflows) -> dict[str, Any]:
    # The scheduler's own twins are under tests/contract/test_schedulers.py; here its fake holds the schedule.
    return {"clock": FakeClock(), "stress_workflows": stress_workflows, "scheduler": FakeScheduler()}


def fire(instance_id: str) -> Any:
    from chalicelib.wiring import services

    return services().schedule_targets.invoke(Firing(f"ct-{instance_id}", "run_incremental_continuous_test",
                                                     {"ct_instance_id": instance_id},
                                                     datetime(2026, 1, 1, tzinfo=timezone.utc)))


def test_a_schedule_on_an_s3_prefix(make_user, settings, stress_workflows):
    dev = make_user("MODEL_DEVELOPER")
    started = dev.call("POST", "/continuous-tests", {"test_run_config": ct_config(dev, settings)})
    assert started.status_code == 201, started.data
    instance_id = started.data["ct_instance_id"]
    record(settings, stress_workflows, started.data["job_id"], [a_bin(1, 0.0)])
    path = f"/ct-instances/{instance_id}/schedule"
    assert_error(dev.call("GET", path), 404, "not_found", "no schedule")
    assert_error(dev.call("PUT", path, {"expression": "hourly", "source": {"app": "x"}}), 400, "invalid_input")
    assert_error(dev.call("PUT", path, {"expression": "rate(1 hour)", "source": {"app": "none-such"}}),
                 404, "not_found", "no app")
    assert_error(dev.call("PUT", path, {"expression": "rate(1 hour)", "source": {"s3_prefix": "s3://elsewhere/x/"}}),
                 400, "invalid_input", "your uploads")
    user_id = dev.call("POST", "/stress-tests/uploads", {"filename": "x.csv"}).data["uri"].split("/")[4]
    prefix = f"stress-inputs/{user_id}/landing/"
    made = dev.call("PUT", path, {"expression": "rate(1 hour)",
                                  "source": {"s3_prefix": f"s3://{settings.data_bucket}/{prefix}"}})
    assert made.status_code == 200, made.data
    assert made.data["enabled"] is True and made.data["runs"] == []
    assert_error(make_user("MODEL_DEVELOPER").call("GET", path), 404, "not_found")

    boto3.client("s3", region_name=settings.region).put_object(
        Bucket=settings.data_bucket, Key=prefix + "day3.csv",
        Body=b"x1,x2,y,ts\n1,2,0,2024-01-03T01:00:00Z\n3,4,1,2024-01-03T02:00:00Z\n")
    out = fire(instance_id)
    assert out["status"] == "STARTED" and out["num_files"] == 1, out  # handed over, read by the job's worker
    continuous = stress_workflows.started[out["job_id"]]["message"]["continuous"]
    assert continuous["mode"] == "incremental" and continuous["source_prefixes"] == [prefix]
    again = fire(instance_id)  # the job runs: skipped, recorded
    assert again["status"] == "SKIPPED"
    shown = dev.call("GET", path).data
    assert [r["status"] for r in shown["runs"]] == ["SKIPPED", "STARTED"] and shown["num_files_tested"] == 1

    removed = dev.call("DELETE", path)
    assert removed.status_code == 200 and removed.data == {"ct_instance_id": instance_id, "removed": True}
    assert_error(dev.call("GET", path), 404, "not_found")
