"""The train-worker state machine, executed by moto with the real handlers."""
from __future__ import annotations

import itertools
import time
from datetime import datetime

import pytest

from workflows_support import ScriptedTrials

REPORTED_START = datetime.fromisoformat(ScriptedTrials.STARTED_AT.replace("Z", "+00:00"))


def test_happy_path_runs_the_trial_budget_and_stops(platform):
    dev, created = platform.start_job({"MODEL_TRIAL_COUNT": 4, "TIME_HOURS": 1})
    job = platform.wait_for_job(dev, "app")
    assert job["status"] == "STOPPED" and {w["status"] for w in job["workers"]} == {"STOPPED"}
    assert len(job["workers"]) == 2
    trials = platform.services.train_jobs.get_trials_of_train_job(dev, "app")
    assert len(trials) == 4 and {t["status"] for t in trials} == {"COMPLETED"}
    # The record step takes the worker's actual start from its output.
    assert {datetime.fromisoformat(t["datetime_started"]) for t in trials} == {REPORTED_START}
    assert len({tuple(sorted(t["knobs"].items())) for t in trials}) == 4  # no configuration twice
    best = platform.services.train_jobs.get_best_trials_of_train_job(dev, "app", max_count=3)
    assert [t["score"] for t in best] == sorted((t["score"] for t in trials), reverse=True)[:3]
    assert all(e["status"] == "SUCCEEDED" for e in platform.wait_executions_done())
    # The model's knob config was learnt once, from the worker (not by importing it in the API).
    assert [t["kind"] for t in platform.runner.seen].count("describe") >= 1


def test_a_failing_trial_is_errored_and_the_search_goes_on(platform):
    # Every other trial fails (by order, not by knob: random knobs could all be "ok" ones).
    answered = itertools.count()
    platform.runner.outcome = lambda trial: ("fail", "TrialError") if next(answered) % 2 == 0 else ("ok", 0.5)
    dev, _ = platform.start_job({"MODEL_TRIAL_COUNT": 6, "TIME_HOURS": 1})
    job = platform.wait_for_job(dev, "app")
    assert job["status"] == "STOPPED"
    trials = platform.services.train_jobs.get_trials_of_train_job(dev, "app")
    errored = [t for t in trials if t["status"] == "ERRORED"]
    assert errored and all(t["error_type"] == "TrialError" for t in errored)
    # The error comes from the worker's error.json (moto passes SendTaskFailure's cause as null).
    assert {t["error"] for t in errored} == {"scripted TrialError"}
    assert {datetime.fromisoformat(t["datetime_started"]) for t in errored} == {REPORTED_START}
    assert len(trials) <= 6


def test_a_slot_stops_after_too_many_errors_in_a_row_and_a_job_with_no_completed_trial_errors(platform):
    platform.runner.outcome = lambda trial: ("fail", "TrialError")
    dev, _ = platform.start_job({"MODEL_TRIAL_COUNT": -1, "TIME_HOURS": 1})
    job = platform.wait_for_job(dev, "app")
    assert job["status"] == "ERRORED"  # nothing to serve: it says why
    assert "no trial completed" in job["error"] and "TrialError: scripted TrialError" in job["error"]
    trials = platform.services.train_jobs.get_trials_of_train_job(dev, "app")
    assert len(trials) == 2 * 3 and {t["status"] for t in trials} == {"ERRORED"}
    assert all("in a row failed" in (w["error"] or "") for w in job["workers"])


def test_a_model_that_fails_its_check_ends_the_job_errored_with_the_check_and_its_logs(platform):
    log = "loading model.py\nModuleNotFoundError: No module named 'torch'\n"
    platform.runner.describe_outcome = lambda message: ("fail", log)
    dev, _ = platform.start_job({"MODEL_TRIAL_COUNT": 2, "TIME_HOURS": 1})
    job = platform.wait_for_job(dev, "app")
    assert job["status"] == "ERRORED"
    assert "the model check failed" in job["error"] and "No module named 'torch'" in job["error"]
    checks = platform.services.train_jobs.get_trials_of_train_job(dev, "app")
    assert checks and all(t["model_check"] and t["status"] == "ERRORED" for t in checks)
    assert all("No module named 'torch'" in w["error"] for w in job["workers"])
    logs = platform.services.train_jobs.get_trial_logs(dev, checks[0]["id"])
    assert logs["logs"] == log


def test_a_silent_trial_is_caught_by_the_heartbeat_timeout(platform):
    platform.runner.outcome = lambda trial: ("hang", None)
    dev, _ = platform.start_job({"MODEL_TRIAL_COUNT": 1, "TIME_HOURS": 1})
    deadline = time.monotonic() + 20
    while not (trials := platform.services.train_jobs.get_trials_of_train_job(dev, "app")):
        assert time.monotonic() < deadline, "no trial was proposed"
        time.sleep(0.1)
    # Dispatched: RUNNING at once (the trial loop marks it; the worker writes no record).
    assert trials[0]["status"] == "RUNNING" and trials[0]["datetime_started"] is not None
    job = platform.wait_for_job(dev, "app", timeout=30)
    trials = platform.services.train_jobs.get_trials_of_train_job(dev, "app")
    assert job["status"] == "ERRORED" and [t["status"] for t in trials] == ["ERRORED"]  # none completed
    assert trials[0]["error_type"].startswith("States.")  # no error.json: the failure's name


def test_stop_mid_run_ends_running_trials(platform):
    platform.runner.outcome = lambda trial: ("hang", None)
    dev, _ = platform.start_job({"MODEL_TRIAL_COUNT": -1, "TIME_HOURS": 1})
    deadline = time.monotonic() + 20
    while not platform.services.train_jobs.get_trials_of_train_job(dev, "app"):
        assert time.monotonic() < deadline, "no trial started"
        time.sleep(0.1)
    stopped = platform.services.train_jobs.stop_train_job(dev, "app")
    assert stopped["status"] == "STOPPED" and {w["status"] for w in stopped["workers"]} == {"STOPPED"}
    # A slot proposing at the moment of the stop terminates its new trial itself, at once.
    deadline = time.monotonic() + 5
    while {t["status"] for t in platform.services.train_jobs.get_trials_of_train_job(dev, "app")} != {"TERMINATED"}:
        assert time.monotonic() < deadline, platform.services.train_jobs.get_trials_of_train_job(dev, "app")
        time.sleep(0.1)
    platform.wait_executions_done(timeout=30)  # the loops notice the stop and end
    assert {t["status"] for t in platform.services.train_jobs.get_trials_of_train_job(dev, "app")} == {"TERMINATED"}


def test_time_budget_ends_the_search(platform):
    # 5 s: enough for the first trials even on a loaded machine (the budget counts from creation)
    seconds = 5.0
    platform.runner.seconds_per_trial = 0.3
    dev, _ = platform.start_job({"MODEL_TRIAL_COUNT": -1, "TIME_HOURS": seconds / 3600})
    job = platform.wait_for_job(dev, "app", timeout=30)
    trials = platform.services.train_jobs.get_trials_of_train_job(dev, "app")
    assert job["status"] == "STOPPED" and 1 <= len(trials) <= 2 * (seconds / 0.3 + 1)
    assert all(w["error"] is None for w in job["workers"])  # TIME_BUDGET is not an error


def test_long_loops_continue_in_new_executions(platform):
    platform.rebuild(max_trials_per_execution=2, worker_slots_per_model=1)
    dev, created = platform.start_job({"MODEL_TRIAL_COUNT": 5, "TIME_HOURS": 1})
    job = platform.wait_for_job(dev, "app")
    trials = platform.services.train_jobs.get_trials_of_train_job(dev, "app")
    assert job["status"] == "STOPPED" and len(trials) == 5
    names = sorted(e["name"] for e in platform.wait_executions_done() if e["name"].startswith(created["id"]))
    assert [n.rsplit("-", 1)[1] for n in names] == ["g0", "g1", "g2"]
    assert job["workers"][0]["execution_arn"].endswith("-g2")


def test_stop_all_jobs_is_for_the_superadmin_and_stops_every_running_job(platform):
    from chalicelib.errors import Forbidden

    platform.runner.outcome = lambda trial: ("hang", None)
    dev, _ = platform.start_job({"MODEL_TRIAL_COUNT": -1, "TIME_HOURS": 1}, app="a1")
    with pytest.raises(Forbidden):
        platform.services.inference_jobs.stop_all_jobs(dev)
    root = platform.services.auth._users.get("root@wf")
    assert platform.services.inference_jobs.stop_all_jobs(root)["train_jobs_stopped"] >= 1
    assert platform.services.train_jobs.get_train_job(dev, "a1")["status"] == "STOPPED"
    platform.wait_executions_done(timeout=30)


def test_app_versions_increment_atomically_under_concurrent_calls(platform):
    from concurrent.futures import ThreadPoolExecutor

    counters = platform.services.train_jobs._counters
    with ThreadPoolExecutor(8) as pool:
        values = list(pool.map(lambda _: counters.increment("app-version#u#concurrent"), range(24)))
    assert sorted(values) == list(range(1, 25))
