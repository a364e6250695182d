"""End-to-end (issue 12 item 4): a CT instance's schedule on an S3 prefix fires on the real local
stack when the test moves the scheduler's clock (a stack started with a manual clock): the new
file is handed to an incremental continuous test, whose worker reads and tests it (its drifted
days breach the drift monitor), a
firing while that job runs is skipped and recorded, and a later firing finds no new data."""
from __future__ import annotations

import time

import pytest

import ct_data

from .conftest import SUPERADMIN, developers

pytestmark = pytest.mark.slow


def test_a_scheduled_continuous_test_on_a_prefix(stack_factory, tmp_path):
    stack = stack_factory(KILELE_LOCAL_SCHEDULER_CLOCK="manual")
    admin = stack.client()
    admin.login(*SUPERADMIN)
    client = developers(stack)["MODEL_DEVELOPER"]
    evaluation = ct_data.evaluation(4, rows_per_bin=120, drift_from=2)
    (tmp_path / "ref.csv").write_bytes(ct_data.csv(ct_data.reference(400)))
    (tmp_path / "eval.csv").write_bytes(ct_data.csv(evaluation[:240]))  # days 0-1: no drift
    (tmp_path / "new.csv").write_bytes(ct_data.csv(evaluation[240:]))  # days 2-3: drifted
    (tmp_path / "model.py").write_bytes(ct_data.MODEL)
    job = client.start_continuous_test_from_reference(
        {"run_name": "scheduled", "data_info": {"label_col": "y", "ref_path": str(tmp_path / "ref.csv"),
                                                "eval_path": str(tmp_path / "eval.csv")},
         "model_info": {"path": str(tmp_path / "model.py")},
         "continuous_info": {"timestamp_col": "timestamp", "bin_size": "day"}}, ram_request_megabytes=2000)
    instance_id = job.info["ct_instance_id"]  # the start's answer names it
    assert job.get_status(wait_until_finish=True, poll_rate_sec=1)["status"] == "SUCCEEDED", job.get_logs()
    instance = client.get_ct_instance(instance_id)
    assert not instance.list_breaches()

    uri = client.upload_stress_test_file(str(tmp_path / "new.csv"))  # where new files land: its folder
    schedule = instance.set_schedule("rate(1 hour)", {"s3_prefix": uri.rsplit("/", 1)[0] + "/"})
    assert schedule["runs"] == [] and schedule["enabled"] is True

    fired = admin.advance_scheduler_clock(3600)["fired"]
    assert [f["target"] for f in fired] == ["run_incremental_continuous_test"]
    admin.advance_scheduler_clock(3600)  # the job it started still runs: skipped, never queued
    runs = instance.get_schedule()["runs"]
    assert [r["status"] for r in runs] == ["SKIPPED", "STARTED"], runs
    started = runs[1]
    assert started["num_files"] == 1  # handed over: the job reads it in the worker
    deadline = time.monotonic() + 300
    while instance.refresh()["running_job_id"] is not None and time.monotonic() < deadline:
        time.sleep(1)
    assert instance.info["last_job_id"] == started["job_id"] and instance.info["error"] is None, instance.info
    tested = [b for b in instance.list_bins() if b["job_id"] == started["job_id"]]
    assert [b["metrics"]["num_inputs"] for b in tested] == [120, 120]  # new.csv's two days, read by the worker
    assert "the new data: 240 row(s) from 1 file(s)" in client.get_stress_test_job(started["job_id"]).get_logs()
    assert {b["time_bin_start"][:10] for b in instance.list_breaches() if b["monitor_id"] == "drift"} == {
        "2024-04-03", "2024-04-04"}
    admin.advance_scheduler_clock(3600)
    assert instance.get_schedule()["runs"][0]["status"] == "NO_DATA"
    instance.remove_schedule()
