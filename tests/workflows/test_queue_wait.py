"""Issue 13, finding 1: a run's wait for capacity (a Batch queue; the GPU environment starts at 0
instances) is bounded by its own queue timeout, and the heartbeat timeout counts from the moment
the worker says the job started. Before, the heartbeat counted from the moment the message was
queued, so every run queued longer than the heartbeat timeout (3 s here) failed."""
from __future__ import annotations

import time


def test_a_trial_queued_longer_than_the_heartbeat_timeout_runs_and_completes(platform):
    # The first trial's job waits 4 s for capacity (the heartbeat timeout is 3 s), then runs.
    waited: list[str] = []

    def queue_wait(message: dict) -> float:
        if message["kind"] == "trial" and not waited:
            waited.append(message["id"])
            return 4.0
        return 0.0

    platform.runner.queue_wait = queue_wait
    dev, _ = platform.start_job({"MODEL_TRIAL_COUNT": 2, "TIME_HOURS": 1})
    job = platform.wait_for_job(dev, "app")
    trials = platform.services.train_jobs.get_trials_of_train_job(dev, "app")
    assert waited and job["status"] == "STOPPED"
    assert {t["status"] for t in trials} == {"COMPLETED"}, trials
    assert all(e["status"] == "SUCCEEDED" for e in platform.wait_executions_done())


def test_a_run_that_started_and_went_silent_still_fails_at_the_heartbeat_timeout(platform):
    platform.runner.outcome = lambda trial: ("hang", None)
    dev, _ = platform.start_job({"MODEL_TRIAL_COUNT": 1, "TIME_HOURS": 1})
    started = time.monotonic()
    job = platform.wait_for_job(dev, "app", timeout=60)
    trials = platform.services.train_jobs.get_trials_of_train_job(dev, "app")
    assert job["status"] == "ERRORED" and trials and {t["status"] for t in trials} == {"ERRORED"}
    assert all(t["error_type"] != "QueueTimeout" for t in trials)
    assert time.monotonic() - started < 40


def test_a_trial_whose_job_never_starts_fails_at_the_queue_timeout_saying_so(platform):
    platform.rebuild(trial_queue_timeout_seconds=2)
    platform.runner.queue_wait = lambda message: None if message["kind"] == "trial" else 0.0
    dev, _ = platform.start_job({"MODEL_TRIAL_COUNT": 1, "TIME_HOURS": 1})
    job = platform.wait_for_job(dev, "app", timeout=60)
    trials = platform.services.train_jobs.get_trials_of_train_job(dev, "app")
    assert job["status"] == "ERRORED" and trials
    assert {t["error_type"] for t in trials} == {"QueueTimeout"}
    assert all("did not start within 2 s of being queued" in t["error"] for t in trials)
    assert not [m for m in platform.runner.started if m["kind"] == "trial"]


def test_a_started_run_whose_job_is_lost_fails_on_its_run_task_at_once(platform):
    # What the Batch job-failed rule (and the local dispatcher) do for a job that died after it
    # started: its queue task is answered already, so the run task (token beside the log) fails.
    platform.runner.outcome = lambda trial: ("hang", None)
    dev, _ = platform.start_job({"MODEL_TRIAL_COUNT": 1, "TIME_HOURS": 1})
    deadline = time.monotonic() + 30
    while not [m for m in platform.runner.started if m["kind"] == "trial"]:
        assert time.monotonic() < deadline, "no trial started"
        time.sleep(0.1)
    [body] = [b for b in platform.runner.bodies if b["trial"]["kind"] == "trial"]
    s3, trial = platform.services.aws.client("s3"), body["trial"]
    while not s3.list_objects_v2(Bucket=trial["bucket"], Prefix=trial["run_token_key"]).get("KeyCount"):
        assert time.monotonic() < deadline, "the run task wrote no token"
        time.sleep(0.1)  # the run task writes its token after the queue task's answer
    assert platform.services.tokens.fail_run(body, "WorkerLost", "the Batch job failed: host lost")
    trials = platform.services.train_jobs.get_trials_of_train_job(dev, "app")
    deadline = time.monotonic() + 10
    while not trials or trials[0]["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.1)
        trials = platform.services.train_jobs.get_trials_of_train_job(dev, "app")
    assert trials[0]["status"] == "ERRORED" and trials[0]["error_type"] == "WorkerLost"
