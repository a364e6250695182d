"""End-to-end: seed 002's continuous-testing section on the real local stack through
``kilele.rime.RIMEClient``: timestamped data whose feature drifts from a chosen day on, a
continuous test from the reference (the days before the drift pass, the days after fail and
breach the drift monitor), then an incremental test of the next days on the active instance.
The worker runs the engine in its sandboxed model process, as for any stress test."""
from __future__ import annotations

import json

import pytest

import ct_data

from .conftest import developers

pytestmark = pytest.mark.slow

DRIFT_FROM = 2  # the first drifted day


def drift_failed(job) -> dict[str, bool]:
    """Per bin start (day): whether the drift test of the drifted feature failed in it."""
    cases = job.get_test_cases_result()
    drift = cases[(cases["test_batch_type"] == "Numeric Feature Drift") & cases["features"].map(lambda f: "x" in list(f))]
    return {str(start)[:10]: bool((group["status"] == "FAIL").any()) for start, group in drift.groupby("time_bin_start")}


def test_seed_002s_continuous_tests_on_drifting_days(stack, tmp_path, capsys):
    from kilele.rime import RIMEClient, RIMECTInstance, RIMEStressTestJob

    user = developers(stack)["MODEL_DEVELOPER"]
    rime_client = RIMEClient(f"127.0.0.1:{stack.port}", user.create_api_key("rime-ct")["key"])
    evaluation = ct_data.evaluation(5, rows_per_bin=120, drift_from=DRIFT_FROM)
    (tmp_path / "ref.csv").write_bytes(ct_data.csv(ct_data.reference(400)))
    (tmp_path / "eval.csv").write_bytes(ct_data.csv(evaluation[:360]))  # days 0-2
    (tmp_path / "new.csv").write_bytes(ct_data.csv(evaluation[360:]))  # days 3-4
    (tmp_path / "model.py").write_bytes(ct_data.MODEL)
    project = rime_client.create_project(name="ct-e2e", description="continuous tests")

    config_from_reference = {
        "run_name": "Five Day Drift",
        "data_info": {"label_col": "y", "ref_path": str(tmp_path / "ref.csv"), "eval_path": str(tmp_path / "eval.csv")},
        "model_info": {"path": str(tmp_path / "model.py")},
        "continuous_info": {"timestamp_col": "timestamp", "bin_size": "day"},
    }
    job = rime_client.start_continuous_test_from_reference(test_run_config=config_from_reference,
                                                           project_id=project.project_id, ram_request_megabytes=2000)
    assert isinstance(job, RIMEStressTestJob)
    instance_id = job.info["ct_instance_id"]  # the start's answer names the instance made
    status = job.get_status(verbose=True, wait_until_finish=True, poll_rate_sec=1)
    assert status["status"] == "SUCCEEDED", job.get_logs()
    assert drift_failed(job) == {"2024-04-01": False, "2024-04-02": False, "2024-04-03": True}

    ct_instance = rime_client.get_active_ct_instance_for_project(project.project_id)
    assert isinstance(ct_instance, RIMECTInstance) and ct_instance.ct_instance_id == instance_id
    assert ct_instance.info["ot_test_run_id"] == job.get_test_run_id()
    assert ct_instance.info["last_job_id"] == job.job_id and ct_instance.info["running_job_id"] is None
    breached = {b["time_bin_start"][:10] for b in ct_instance.list_breaches() if b["monitor_id"] == "drift"}
    assert breached == {"2024-04-03"}

    incremental_config = {"eval_path": str(tmp_path / "new.csv"), "timestamp_col": "timestamp"}
    ct_instance = rime_client.get_ct_instance(ct_instance.ct_instance_id)
    second = ct_instance.start_incremental_continuous_test(test_run_config=incremental_config)
    assert second.get_status(wait_until_finish=True, poll_rate_sec=1)["status"] == "SUCCEEDED", second.get_logs()
    assert drift_failed(second) == {"2024-04-04": True, "2024-04-05": True}
    assert [b["time_bin_start"][:10] for b in ct_instance.list_bins()] == [
        "2024-04-01", "2024-04-02", "2024-04-03", "2024-04-04", "2024-04-05"]
    report = second.get_report(str(tmp_path / "ct-report.html"))
    assert 'data-key="numeric_drift"' in open(report).read()

    # What CloudWatch would get (docs/continuous-tests.md, Metrics): the local stack writes the same
    # EMF documents to its data dir. One document of counts per job, app "-" (no schedule on an
    # app's traffic); bins of 2024 are older than CloudWatch's 14 days, so no per-bin value.
    documents = [json.loads(line) for line in
                 (stack.data_dir / "metrics" / "ct-metrics.jsonl").read_text().splitlines()]
    ours = [d for d in documents if d.get("ct_instance") == instance_id]
    assert [(d["app"], d["BinsTested"]) for d in ours] == [("-", [3.0]), ("-", [2.0])], ours
    assert ours[0]["MonitorsBreached"][0] >= 1 and ours[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == \
        "Kilele/ContinuousTests"

    ct_instance.deactivate_ct_instance()
    with pytest.raises(Exception, match="no active CT instance"):
        rime_client.get_active_ct_instance_for_project(project.project_id)
