"""``kilele projects …`` and ``kilele stress-tests …`` through click's CliRunner against the
fake API (the routes of test_sdk_stress_tests.StressApi)."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner
from test_sdk_stress_tests import CASE_COLUMNS, PROJECT, REPORT, RUN_COLUMNS, S3_CONFIG, StressApi

from kilele.cli import cli


@pytest.fixture
def run(tmp_path, monkeypatch, server):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("KILELE_URL", "KILELE_API_KEY", "KILELE_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(cli, ["--url", server.url, "--api-key", "k", *args], catch_exceptions=False)

    return invoke


def ok(result):
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_projects_create_list_show(server, run):
    StressApi(server)
    assert ok(run("projects", "create", "foo", "--description", "bar")) == PROJECT
    assert server.last().json() == {"name": "foo", "description": "bar"}
    assert server.last().headers["x-api-key"] == "k"
    assert ok(run("projects", "list")) == [PROJECT]
    assert ok(run("projects", "show", "p-1")) == PROJECT


def test_start_uploads_paths_relative_to_the_config_file(server, run, tmp_path):
    api = StressApi(server)
    folder = tmp_path / "titanic"
    folder.mkdir()
    (folder / "ref.csv").write_text("Age,Survived\n22,0\n")
    (folder / "model.py").write_text("def predict_df(df):\n    return df['Age'].values\n")
    config = {"run_name": "Titanic",
              "data_info": {"label_col": "Survived", "ref_path": "ref.csv", "eval_path": "kilele://datasets/d-1"},
              "model_info": {"path": "model.py"}}
    (folder / "cfg.json").write_text(json.dumps(config))

    job = ok(run("stress-tests", "start", "--config", str(folder / "cfg.json"), "--project", "p-1",
                 "--ram-mb", "8000", "--cpu-millicores", "2000"))

    assert job["job_id"] == "j-1" and job["type"] == "MODEL_STRESS_TEST"
    body = server.last("POST", "/stress-tests").json()
    assert body == {"test_run_config": {
        "run_name": "Titanic",
        "data_info": {"label_col": "Survived", "ref_path": "s3://kilele-data/stress-inputs/u-1/1/ref.csv",
                      "eval_path": "kilele://datasets/d-1"},
        "model_info": {"path": "s3://kilele-data/stress-inputs/u-1/2/model.py"}},
        "project_id": "p-1", "ram_request_megabytes": 8000, "cpu_request_millicores": 2000}
    assert api.uploaded["s3://kilele-data/stress-inputs/u-1/1/ref.csv"] == b"Age,Survived\n22,0\n"


def test_start_with_images(server, run, tmp_path):
    StressApi(server)
    (tmp_path / "cfg.json").write_text(json.dumps(S3_CONFIG))
    ok(run("stress-tests", "start", "--config", str(tmp_path / "cfg.json"), "--managed-image", "tf115",
           "--custom-image", "img:1", "--pull-secret", "regcred"))
    body = server.last("POST", "/stress-tests").json()
    assert body["rime_managed_image"] == "tf115"
    assert body["custom_image"] == {"name": "img:1", "pull_secret": {"name": "regcred"}}


def test_start_with_a_missing_file_fails_before_any_request(server, run, tmp_path):
    (tmp_path / "cfg.json").write_text(json.dumps({"run_name": "x", "data_info": {"ref_path": "gone.csv"}}))
    result = run("stress-tests", "start", "--config", str(tmp_path / "cfg.json"))
    assert result.exit_code == 1
    assert "data_info.ref_path" in result.stderr and "does not exist" in result.stderr
    assert server.requests == []


def test_start_with_a_config_that_is_not_json(server, run, tmp_path):
    (tmp_path / "cfg.json").write_text("run_name: x")
    result = run("stress-tests", "start", "--config", str(tmp_path / "cfg.json"))
    assert result.exit_code == 2 and "is not JSON" in result.stderr


def test_list_with_statuses_and_project(server, run):
    StressApi(server)
    jobs = ok(run("stress-tests", "list", "--status", "RUNNING", "--status", "SUCCEEDED", "--project", "p-1"))
    assert [j["job_id"] for j in jobs] == ["j-1", "j-0"]
    assert server.last().query == {"status": ["RUNNING", "SUCCEEDED"], "project_id": ["p-1"]}
    assert run("stress-tests", "list", "--status", "DONE").exit_code == 2


def test_get_shows_every_field(server, run):
    StressApi(server, statuses=["RUNNING"])
    job = ok(run("stress-tests", "get", "j-1"))
    assert job["progress"] == "10 of 42 tests" and job["ram_request_megabytes"] == 4000


def test_status_waits_with_progress_on_stderr_and_json_on_stdout(server, run):
    StressApi(server, statuses=["RUNNING", "SUCCEEDED"])
    result = run("stress-tests", "status", "j-1", "--wait", "--verbose", "--poll", "0")
    assert ok(result) == {"name": "Titanic", "type": "MODEL_STRESS_TEST", "status": "SUCCEEDED",
                          "start_time_secs": 1795000000, "running_time_secs": 3.0}
    assert "status RUNNING" in result.stderr and "42 tests ran" in result.stderr


def test_status_of_a_failing_job_exits_1(server, run):
    StressApi(server, statuses=["FAILING"], failure="model.py failed to load")
    result = run("stress-tests", "status", "j-1")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["status"] == "FAILING"
    assert "model.py failed to load" in result.stderr


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_results_writes_both_frames(server, run, tmp_path, fmt):
    StressApi(server)
    out = tmp_path / "results"
    written = ok(run("stress-tests", "results", "j-1", "--out", str(out), "--format", fmt))
    assert written["test_cases"] == {"path": str(out / f"test_cases.{fmt}"), "rows": 2, "columns": len(CASE_COLUMNS)}
    read = pd.read_csv if fmt == "csv" else pd.read_parquet
    assert list(read(out / f"test_cases.{fmt}").columns) == CASE_COLUMNS
    assert list(read(out / f"test_run.{fmt}").columns) == RUN_COLUMNS


def test_results_of_a_failing_job_exit_1_with_the_reason(server, run, tmp_path):
    StressApi(server, statuses=["FAILING"], failure="no column 'Survived'")
    result = run("stress-tests", "results", "j-1", "--out", str(tmp_path / "results"))
    assert result.exit_code == 1
    assert "stress_test_failed" in result.stderr and "no column 'Survived'" in result.stderr
    assert not (tmp_path / "results").exists()


def test_report_and_logs(server, run, tmp_path):
    StressApi(server)
    assert ok(run("stress-tests", "report", "j-1", str(tmp_path / "r.html"))) == {
        "job_id": "j-1", "path": str(tmp_path / "r.html")}
    assert (tmp_path / "r.html").read_bytes() == REPORT
    assert ok(run("stress-tests", "logs", "j-1")) == {"job_id": "j-1", "logs": "loaded 891 rows\n42 tests ran\n"}
    assert run("stress-tests", "logs", "j-1", "--raw").stdout == "loaded 891 rows\n42 tests ran\n"


def test_the_engines_stress_group_is_not_taken():
    cli.load_plugins()
    stress = cli.commands.get("stress")  # `kilele stress run` belongs to the kilele_stress package
    assert stress is None or not stress.callback.__module__.startswith("kilele.")
    assert {"projects", "stress-tests"} <= set(cli.commands)


def test_logs_follow_prints_the_engine_log_as_it_grows(server, run):
    states = iter(["RUNNING", "RUNNING", "SUCCEEDED"])
    logs = iter(["loaded 891 rows\n", "loaded 891 rows\n20 tests ran\n", "loaded 891 rows\n20 tests ran\n42 tests ran\n"])
    server.handler("GET", "/stress-tests/j-1", lambda _: server.Canned(200, {"job_id": "j-1", "status": next(states)}))
    server.handler("GET", "/stress-tests/j-1/logs", lambda _: server.Canned(200, {"job_id": "j-1", "logs": next(logs)}))
    result = run("stress-tests", "logs", "j-1", "--follow", "--poll", "0.1")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "loaded 891 rows\n20 tests ran\n42 tests ran\n"
