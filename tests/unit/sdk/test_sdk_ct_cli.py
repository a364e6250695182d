"""``kilele ct …`` through click's CliRunner against the fake API (canned CT routes)."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from test_sdk_stress_tests import StressApi, job_body

from kilele.cli import cli

INSTANCE = {"ct_instance_id": "ct-1", "name": "loans", "project_id": "p-1", "active": True}


@pytest.fixture
def run(tmp_path, monkeypatch, server):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("KILELE_URL", "KILELE_API_KEY", "KILELE_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, ["--url", server.url, "--api-key", "k", *args], catch_exceptions=False)


def ok(result):
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_start_test_and_read_a_ct_instance(server, run, tmp_path):
    StressApi(server)  # the uploads
    server.route("POST", "/continuous-tests", 201, {**job_body(job_id="j-ct"), "ct_instance_id": "ct-1"})
    server.route("POST", "/ct-instances/ct-1/continuous-tests", 201, {**job_body(job_id="j-2"), "ct_instance_id": "ct-1"})
    server.route("GET", "/projects/p-1/active-ct-instance", 200, INSTANCE)
    server.route("GET", "/ct-instances/ct-1/breaches", 200, [{"monitor_id": "drift", "severity": "HIGH"}])
    server.route("PATCH", "/ct-instances/ct-1/monitors/drift", 200, {"monitor_id": "drift", "window_bins": 3})
    (tmp_path / "ref.csv").write_text("x,y,ts\n1,0,2024-01-01\n")
    config = {"data_info": {"label_col": "y", "ref_path": "ref.csv", "eval_path": "kilele://datasets/d-1"},
              "pred_col": None, "continuous_info": {"timestamp_col": "ts", "bin_size": "day"}}
    del config["pred_col"]
    (tmp_path / "cfg.json").write_text(json.dumps(config))

    job = ok(run("ct", "start", "--config", str(tmp_path / "cfg.json"), "--project", "p-1", "--ram-mb", "1000"))
    assert job["ct_instance_id"] == "ct-1"
    body = server.last("POST", "/continuous-tests").json()
    assert body["project_id"] == "p-1" and body["ram_request_megabytes"] == 1000
    assert body["test_run_config"]["data_info"]["ref_path"].startswith("s3://")  # uploaded
    assert body["test_run_config"]["continuous_info"] == {"timestamp_col": "ts", "bin_size": "day"}

    (tmp_path / "new.csv").write_text("x,y,ts\n1,0,2024-01-02\n")
    assert ok(run("ct", "test", "ct-1", "--eval", str(tmp_path / "new.csv"), "--timestamp-col", "ts"))["job_id"] == "j-2"
    sent = server.last("POST", "/ct-instances/ct-1/continuous-tests").json()["test_run_config"]
    assert sent["timestamp_col"] == "ts" and sent["eval_path"].startswith("s3://")

    assert ok(run("ct", "active", "p-1")) == INSTANCE
    assert ok(run("ct", "breaches", "ct-1")) == [{"monitor_id": "drift", "severity": "HIGH"}]
    assert ok(run("ct", "monitor", "ct-1", "drift", "--set", "window_bins=3", "--set", "aggregation=mean"))
    assert server.last("PATCH", "/ct-instances/ct-1/monitors/drift").json() == {"window_bins": 3, "aggregation": "mean"}
    assert run("ct", "monitor", "ct-1", "drift").exit_code != 0  # nothing to change


def test_a_ct_schedule_through_the_cli(server, run):
    shown = {"ct_instance_id": "ct-1", "expression": "rate(1 hour)", "source": {"app": "loans"}, "runs": []}
    server.route("PUT", "/ct-instances/ct-1/schedule", 200, shown)
    server.route("GET", "/ct-instances/ct-1/schedule", 200, shown)
    server.route("DELETE", "/ct-instances/ct-1/schedule", 200, {"ct_instance_id": "ct-1", "removed": True})
    assert ok(run("ct", "schedule", "ct-1", "--expression", "rate(1 hour)", "--app", "loans")) == shown
    assert server.last("PUT", "/ct-instances/ct-1/schedule").json() == {"expression": "rate(1 hour)",
                                                                        "source": {"app": "loans"}}
    ok(run("ct", "schedule", "ct-1", "--expression", "rate(1 day)", "--s3-prefix", "s3://b/stress-inputs/u/in/"))
    assert server.last("PUT", "/ct-instances/ct-1/schedule").json()["source"] == {"s3_prefix": "s3://b/stress-inputs/u/in/"}
    assert ok(run("ct", "schedule-show", "ct-1")) == shown
    assert ok(run("ct", "unschedule", "ct-1"))["removed"] is True
    assert server.last().method == "DELETE"
    both = run("ct", "schedule", "ct-1", "--expression", "rate(1 hour)", "--app", "a", "--s3-prefix", "s3://b/x/")
    assert both.exit_code != 0 and "one data source" in both.stderr
