"""``kilele train-jobs`` and ``kilele trials`` through click's CliRunner, against the fake API."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pytest
from click.testing import CliRunner

from kilele.cli import train_jobs as cli_module  # the module of `kilele train-jobs`
from kilele.cli import cli, render_watch
from kilele.model import deserialize_params, serialize_params

JOB = {"id": "j-1", "app": "iris_app", "app_version": 3, "task": "TABULAR_CLASSIFICATION", "status": "RUNNING",
       "user_id": "u-1", "train_dataset_id": "d-1", "val_dataset_id": "d-2",
       "budget": {"MODEL_TRIAL_COUNT": 2}, "model_ids": ["m-1"], "train_args": {},
       "datetime_started": "2026-11-23T10:00:00+00:00", "datetime_stopped": None, "error": None,
       "workers": [{"service_id": "m-1-0", "model_id": "m-1", "model_name": "logreg", "slot": 0,
                    "status": "RUNNING", "execution_arn": "arn:x", "datetime_started": None,
                    "datetime_stopped": None, "error": None}]}


def trial(no: int, status: str = "COMPLETED", score=0.9, knobs=None) -> dict:
    return {"id": f"t-{no}", "no": no, "model_id": "m-1", "model_name": "logreg", "status": status,
            "screening": False, "score": score, "knobs": knobs or {"c": 0.123456, "iters": 10},
            "datetime_started": "2026-11-23T10:00:00+00:00",
            "datetime_stopped": "2026-11-23T10:01:05+00:00" if status in ("COMPLETED", "ERRORED") else None}


@pytest.fixture
def run(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("KILELE_URL", "KILELE_API_KEY", "KILELE_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    runner = CliRunner()

    def invoke(server, *args: str):
        return runner.invoke(cli, ["--url", server.url, "--api-key", "kk_a.b", *args], catch_exceptions=False)

    return invoke


def test_train_jobs_create_with_budget_models_and_train_args(server, run):
    server.route("POST", "/train-jobs", 201, {"id": "j-1", "app": "iris_app", "app_version": 1})
    result = run(server, "train-jobs", "create", "iris_app", "TABULAR_CLASSIFICATION",
                 "--train-dataset", "d-1", "--val-dataset", "d-2", "--model", "m-1", "--model", "m-2",
                 "--trials", "5", "--hours", "0.5", "--gpus", "0",
                 "--train-arg", "epochs=3", "--train-arg", "name=abc", "--train-arg", "flags=[1, 2]")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"id": "j-1", "app": "iris_app", "app_version": 1}
    request = server.last("POST", "/train-jobs")
    assert request.headers["x-api-key"] == "kk_a.b"
    assert request.json() == {
        "app": "iris_app", "task": "TABULAR_CLASSIFICATION", "train_dataset_id": "d-1", "val_dataset_id": "d-2",
        "budget": {"MODEL_TRIAL_COUNT": 5, "TIME_HOURS": 0.5, "GPU_COUNT": 0},
        "models": ["m-1", "m-2"], "train_args": {"epochs": 3, "name": "abc", "flags": [1, 2]},
    }


def test_train_jobs_create_minimal_sends_defaults(server, run):
    server.route("POST", "/train-jobs", 201, {"id": "j-1", "app": "a", "app_version": 1})
    result = run(server, "train-jobs", "create", "a", "TABULAR_CLASSIFICATION", "--train-dataset", "d-1",
                 "--val-dataset", "d-2")
    assert result.exit_code == 0, result.stderr
    body = server.last().json()
    assert body["budget"] == {} and body["models"] is None and body["train_args"] == {}


def test_train_jobs_create_bad_train_arg_is_a_usage_error(server, run):
    result = run(server, "train-jobs", "create", "a", "TABULAR_CLASSIFICATION", "--train-dataset", "d-1",
                 "--val-dataset", "d-2", "--train-arg", "novalue")
    assert result.exit_code == 2
    assert "key=value" in result.stderr
    assert server.requests == []


def test_train_jobs_create_api_error(server, run):
    server.route("POST", "/train-jobs", 422,
                 {"error": {"code": "unprocessable", "message": "dataset 'd-1' is not READY (it is UPLOADING)"}})
    result = run(server, "train-jobs", "create", "a", "TABULAR_CLASSIFICATION", "--train-dataset", "d-1",
                 "--val-dataset", "d-2")
    assert result.exit_code == 1
    assert "422 unprocessable: dataset 'd-1' is not READY" in result.stderr


def test_train_jobs_list_get_stop(server, run):
    server.route("GET", "/train-jobs", 200, [JOB])
    server.route("GET", "/train-jobs/iris_app", 200, [JOB])
    server.route("GET", "/train-jobs/iris_app/-1", 200, JOB)
    server.route("GET", "/train-jobs/iris_app/2", 200, {**JOB, "app_version": 2})
    server.route("POST", "/train-jobs/iris_app/3/stop", 200, {**JOB, "status": "STOPPED"})

    result = run(server, "train-jobs", "list")
    assert json.loads(result.stdout) == [JOB]
    assert server.last().path == "/train-jobs" and server.last().query == {}
    assert json.loads(run(server, "train-jobs", "list", "--app", "iris_app").stdout) == [JOB]
    assert server.last().path == "/train-jobs/iris_app"
    assert json.loads(run(server, "train-jobs", "get", "iris_app").stdout)["workers"] == JOB["workers"]
    assert json.loads(run(server, "train-jobs", "get", "iris_app", "--version", "2").stdout)["app_version"] == 2
    result = run(server, "train-jobs", "stop", "iris_app", "--version", "3")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "STOPPED"
    assert server.last().method == "POST"


def test_train_jobs_stop_conflict(server, run):
    server.route("POST", "/train-jobs/iris_app/-1/stop", 409,
                 {"error": {"code": "conflict", "message": "train job iris_app v3 is already STOPPED"}})
    result = run(server, "train-jobs", "stop", "iris_app")
    assert result.exit_code == 1
    assert "409 conflict: train job iris_app v3 is already STOPPED" in result.stderr


def test_trials_commands(server, run, tmp_path):
    trials = [trial(1, score=0.8), trial(2, score=0.95)]
    server.route("GET", "/train-jobs/iris_app/-1/trials", 200, trials)
    server.route("GET", "/train-jobs/iris_app/3/best-trials", 200, [trials[1]])
    server.route("GET", "/trials/t-1", 200, trials[0])
    server.route("GET", "/trials/t-1/logs", 200, {"trial_id": "t-1", "status": "COMPLETED", "logs": "done\n"})

    assert json.loads(run(server, "trials", "list", "iris_app").stdout) == trials
    result = run(server, "trials", "list", "iris_app", "--version", "3", "--best", "1")
    assert json.loads(result.stdout) == [trials[1]]
    assert server.last().query == {"max_count": ["1"]}
    assert json.loads(run(server, "trials", "get", "t-1").stdout) == trials[0]
    assert json.loads(run(server, "trials", "logs", "t-1").stdout)["logs"] == "done\n"


def test_trials_params_saves_the_raw_npz_without_auth_on_the_download(server, run, tmp_path):
    blob = serialize_params({"w": np.array([1.0, 2.0]), "bias": 0.5})
    server.route("GET", "/trials/t-1/parameters", 200,
                 {"trial_id": "t-1", "format": "npz", "url": f"{server.url}/fake-s3/t-1.npz?X-Amz-Signature=s"})
    server.route("GET", "/fake-s3/t-1.npz", 200, blob, {"Content-Type": "application/octet-stream"})
    out = tmp_path / "out.npz"
    result = run(server, "trials", "params", "t-1", str(out))
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes() == blob
    assert deserialize_params(out.read_bytes())["bias"] == 0.5
    assert json.loads(result.stdout)["size_bytes"] == len(blob)
    download = server.last("GET", "/fake-s3/t-1.npz")
    assert "x-api-key" not in download.headers and "authorization" not in download.headers


def test_trials_params_of_unfinished_trial(server, run, tmp_path):
    server.route("GET", "/trials/t-1/parameters", 409,
                 {"error": {"code": "conflict", "message": "trial 't-1' is RUNNING: it has no parameters"}})
    out = tmp_path / "out.npz"
    result = run(server, "trials", "params", "t-1", str(out))
    assert result.exit_code == 1
    assert "no parameters" in result.stderr
    assert not out.exists()


# ---------------------------------------------------------------------- watch


def sequence(server, snapshots):
    """Each GET of the job moves one step; the trials answer what the current step shows."""
    step = {"n": 0}

    def job(recorded):
        i = min(step["n"], len(snapshots) - 1)
        step["n"] += 1
        return server.Canned(200, snapshots[i][0])

    def trials(recorded):
        return server.Canned(200, snapshots[min(step["n"] - 1, len(snapshots) - 1)][1])

    server.handler("GET", "/train-jobs/iris_app/-1", job)
    server.handler("GET", "/train-jobs/iris_app/3", job)
    server.handler("GET", "/train-jobs/iris_app/3/trials", trials)
    return step


def test_watch_non_tty_prints_each_change_once_and_ends_when_stopped(server, run, monkeypatch):
    cleared = []
    monkeypatch.setattr(cli_module.click, "clear", lambda: cleared.append(1))
    running = [trial(1, "RUNNING", None)]
    one_done = [trial(1, score=0.8123), trial(2, "RUNNING", None)]
    both_done = [trial(1, score=0.8123), trial(2, score=0.9345)]
    stopped = {**JOB, "status": "STOPPED", "datetime_stopped": "2026-11-23T10:05:00+00:00",
               "workers": [{**JOB["workers"][0], "status": "STOPPED"}]}
    step = sequence(server, [
        (JOB, running), (JOB, running), (JOB, running),  # unchanged: printed once
        (JOB, one_done),
        (JOB, both_done),
        (stopped, both_done),
    ])

    result = run(server, "train-jobs", "watch", "iris_app", "--interval", "0")

    assert result.exit_code == 0, result.stderr
    assert step["n"] == 6
    assert cleared == []  # never clears a non-terminal
    out = result.stdout
    assert out.count("train job iris_app v3") == 4  # one snapshot per change
    assert "progress: 0/2 trials done" in out
    assert "progress: 1/2 trials done (1 completed, 0 errored, 1 running), best score 0.8123" in out
    assert "progress: 2/2 trials done" in out and "best score 0.9345" in out
    assert out.rstrip().splitlines()[0].startswith("train job iris_app v3  RUNNING")
    last = out.split("train job iris_app v3")[-1]
    assert last.startswith("  STOPPED")
    assert "m-1-0" in last and "logreg" in last
    assert "1m05s" in last  # trial duration
    assert "c=0.1235, iters=10" in last
    # polls stay on the version the first answer named
    assert {p for _, p in server.paths()} == {"/train-jobs/iris_app/-1", "/train-jobs/iris_app/3",
                                              "/train-jobs/iris_app/3/trials"}


def test_watch_errored_job_exits_1(server, run):
    sequence(server, [({**JOB, "status": "ERRORED", "error": "could not start the workers"}, [])])
    result = run(server, "train-jobs", "watch", "iris_app", "--interval", "0")
    assert result.exit_code == 1
    assert "ERRORED" in result.stdout and "error: could not start the workers" in result.stdout
    assert "no trials yet" in result.stdout
    # the reason on stderr too, for scripts that keep only stderr
    assert "train job iris_app v3 ended ERRORED: could not start the workers" in result.stderr


def test_watch_ctrl_c_stops_watching(server, run, monkeypatch):
    sequence(server, [(JOB, [])])

    def interrupt(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_module.time, "sleep", interrupt)
    result = run(server, "train-jobs", "watch", "iris_app")
    assert result.exit_code == 0
    assert "train job iris_app v3  RUNNING" in result.stdout
    assert "stopped watching" in result.stderr


def test_watch_tty_clears_between_refreshes(server, run, monkeypatch):
    cleared = []
    monkeypatch.setattr(cli_module.click, "clear", lambda: cleared.append(1))
    monkeypatch.setattr(cli_module, "_stdout_is_tty", lambda: True)
    sequence(server, [(JOB, []), (JOB, []), ({**JOB, "status": "STOPPED"}, [])])
    result = run(server, "train-jobs", "watch", "iris_app", "--interval", "0")
    assert result.exit_code == 0, result.stderr
    assert len(cleared) == 3
    assert result.stdout.count("train job iris_app v3") == 3  # redrawn every refresh


def test_watch_unknown_app(server, run):
    server.route("GET", "/train-jobs/nope/-1", 404, {"error": {"code": "not_found", "message": "no app 'nope'"}})
    result = run(server, "train-jobs", "watch", "nope")
    assert result.exit_code == 1
    assert "404 not_found: no app 'nope'" in result.stderr


def test_render_watch_truncates_knobs_and_marks_unlimited_budget():
    now = datetime(2026, 11, 23, 10, 0, 30, tzinfo=timezone.utc)
    job = {**JOB, "budget": {"MODEL_TRIAL_COUNT": -1}}
    long_knobs = {f"knob_{i}": "value" for i in range(10)}
    text = render_watch(job, [trial(1, "RUNNING", None, knobs=long_knobs)], now=now, knob_width=30)
    row = [line for line in text.splitlines() if line.startswith("1 ")][0]
    assert row.endswith("...")
    assert "knob_0=value" in row and "knob_9" not in row
    assert "30s" in row  # running for 30 s
    assert "(no trial limit)" in text


def test_trials_logs_follow_prints_the_log_as_it_grows(server, run):
    """--follow polls and prints only what is new, until the trial has ended."""
    answers = iter([("RUNNING", "10:00 [worker] started\n"),
                    ("RUNNING", "10:00 [worker] started\n10:01 [model] epoch 1\n"),
                    ("COMPLETED", "10:00 [worker] started\n10:01 [model] epoch 1\n10:02 [worker] trial COMPLETED\n")])

    def answer(_):
        status, logs = next(answers)
        return server.Canned(200, {"trial_id": "t-1", "status": status, "logs": logs})

    server.handler("GET", "/trials/t-1/logs", answer)
    result = run(server, "trials", "logs", "t-1", "--follow", "--poll", "0.1")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ("10:00 [worker] started\n10:01 [model] epoch 1\n10:02 [worker] trial COMPLETED\n")
    assert server.paths().count(("GET", "/trials/t-1/logs")) == 3


def test_trials_logs_without_follow_is_one_json_answer(server, run):
    server.route("GET", "/trials/t-1/logs", 200, {"trial_id": "t-1", "status": "RUNNING", "logs": "a\n"})
    result = run(server, "trials", "logs", "t-1")
    assert result.exit_code == 0 and json.loads(result.stdout)["logs"] == "a\n"
