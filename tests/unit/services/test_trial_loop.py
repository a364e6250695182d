"""The trial loop's steps on fakes: propose (describe first, budgets, consecutive errors, the
job's end), record a trial or its failure, continue a worker in a new execution, and how the
job ends from its workers' states. Assertions stay on the loop's decisions and stored records,
not on the worker message's layout (tests/contract/test_trial_message.py covers that)."""
from __future__ import annotations

import json

import pytest

from chalicelib.entities import StopReason, Task, TrainJobStatus, TrialStatus, UserType, WorkerStatus
from chalicelib.errors import NotFound, Unprocessable
from chalicelib.services.trial_loop import execution_name, slot_state

KNOB_CONFIG = {"x": {"type": "integer", "value_min": 0, "value_max": 1000, "is_exp": False}}


@pytest.fixture
def dev(h):
    return h.user(UserType.MODEL_DEVELOPER)


@pytest.fixture
def make_job(h, dev):
    """``make_job(budget, knob_config=KNOB_CONFIG, models=1)``: a started job; returns (job, models)."""

    def make(budget=None, knob_config=KNOB_CONFIG, models=1):
        data = h.dataset(dev)
        model_list = [h.model(dev, knob_config=knob_config) for _ in range(models)]
        out = h.services.train_jobs.create_train_job(dev, "app", Task.TABULAR_CLASSIFICATION, data.id, data.id,
                                                     budget or {"TIME_HOURS": 1}, [m.id for m in model_list])
        return h.fakes.train_jobs.get(out["id"]), model_list

    return make


def first_state(job, slot=0):
    worker = sorted(job.workers.values(), key=lambda w: (w.model_id, w.slot))[slot]
    return slot_state(job.id, worker.key, worker.model_id, worker.slot)


def every_state(job):
    return [slot_state(job.id, key, w.model_id, w.slot) for key, w in job.workers.items()]


def proposal(state):
    return state["proposal"]


def test_a_model_without_a_knob_config_is_described_first(h, make_job):
    job, (model,) = make_job(knob_config=None)
    out = h.services.trial_loop.propose(first_state(job))
    assert proposal(out)["action"] == "describe"
    assert proposal(out)["trial"]["kind"] == "describe" and proposal(out)["trial"]["model_id"] == model.id
    assert h.fakes.trials.items == {} and h.fakes.advisor.calls["propose"] == 0
    assert not any(k.startswith("trials#") for k in h.fakes.counters.values)  # no trial number used


def test_the_described_knob_config_is_recorded_and_trials_follow(h, make_job):
    job, (model,) = make_job(knob_config=None)
    state = h.services.trial_loop.propose(first_state(job))
    h.services.trial_loop.record_knob_config({**state, "result": {"knob_config": KNOB_CONFIG}})
    assert h.fakes.models.get(model.id).knob_config == KNOB_CONFIG
    assert proposal(h.services.trial_loop.propose(first_state(job)))["action"] == "run"


def test_an_invalid_knob_config_is_refused_and_leaves_a_failed_model_check(h, dev, make_job):
    job, (model,) = make_job(knob_config=None)
    state = h.services.trial_loop.propose(first_state(job))
    with pytest.raises(Unprocessable, match="knob config"):
        h.services.trial_loop.record_knob_config({**state, "result": {"knob_config": {"x": {"type": "?"}}}})
    assert h.fakes.models.get(model.id).knob_config is None
    (check,) = h.services.train_jobs.get_trials_of_train_job(dev, "app")
    assert check["model_check"] and check["status"] == "ERRORED" and check["error_type"] == "InvalidKnobConfig"
    assert check["id"] == proposal(state)["trial"]["id"] and "knob config is not valid" in check["error"]


def test_a_run_proposal_stores_a_running_trial_and_starts_the_job(h, make_job):
    job, (model,) = make_job()
    state = first_state(job)
    out = h.services.trial_loop.propose(state)
    assert proposal(out)["action"] == "run"
    (trial,) = h.fakes.trials.items.values()
    assert proposal(out)["trial"]["id"] == trial.id and proposal(out)["trial"]["knobs"] == {"x": 0}
    assert (trial.status, trial.number, trial.model_id, trial.worker_key) == (
        TrialStatus.RUNNING, 1, model.id, state["worker_key"])
    assert trial.started_at == trial.created_at == h.fakes.clock.now
    assert h.fakes.train_jobs.get(job.id).status is TrainJobStatus.RUNNING
    assert {k: out[k] for k in ("train_job_id", "worker_key", "consecutive_errors")} == {
        "train_job_id": job.id, "worker_key": state["worker_key"], "consecutive_errors": 0}


def test_the_advisor_sees_the_models_history(h, make_job):
    job, (model,) = make_job()
    for _ in range(3):
        h.services.trial_loop.propose(first_state(job))
    assert sorted(t.knobs["x"] for t in h.fakes.trials.items.values()) == [0, 1, 2]
    assert [len(call["history"]) for call in h.fakes.advisor.seen] == [0, 1, 2]
    assert h.fakes.advisor.seen[0]["knob_config"] == KNOB_CONFIG
    assert h.fakes.advisor.seen[0]["strategy"] == h.settings.advisor_strategy


def test_the_advisor_is_told_how_many_trials_the_budget_has_left(h, make_job):
    # the advisor makes the budget's last trial a full one (screening trials are never served)
    job, _ = make_job({"TIME_HOURS": 1, "MODEL_TRIAL_COUNT": 3})
    for _ in range(4):
        h.services.trial_loop.propose(first_state(job))
    assert [call["trials_left"] for call in h.fakes.advisor.seen] == [3, 2, 1]
    unbounded, _ = make_job({"TIME_HOURS": 1})
    h.services.trial_loop.propose(first_state(unbounded))
    assert h.fakes.advisor.seen[-1]["trials_left"] is None


def test_a_configuration_claimed_by_another_slot_is_not_run_twice(h, make_job):
    job, (model,) = make_job()
    fingerprint_of_x0 = json.dumps({"x": 0}, sort_keys=True)  # the fake advisor's fingerprint
    assert h.fakes.trials.claim_fingerprint(job.id, model.id, fingerprint_of_x0, "another-slots-trial")
    out = h.services.trial_loop.propose(first_state(job))
    assert proposal(out)["trial"]["knobs"] == {"x": 1}
    assert [t.knobs for t in h.fakes.trials.items.values()] == [{"x": 1}]


def test_the_model_trial_count_is_a_budget_shared_by_the_slots(h, make_job):
    job, _ = make_job(budget={"MODEL_TRIAL_COUNT": 3, "TIME_HOURS": 1})
    slot0, slot1 = first_state(job, 0), first_state(job, 1)
    actions = [proposal(h.services.trial_loop.propose(s))["action"] for s in (slot0, slot1, slot0, slot1)]
    assert actions == ["run", "run", "run", "stop"]
    last = h.services.trial_loop.propose(slot0)
    assert proposal(last)["reason"] == StopReason.TRIAL_BUDGET.value
    assert len(h.fakes.trials.items) == 3


def test_the_time_budget_stops_proposals_by_the_clock(h, make_job):
    job, _ = make_job(budget={"TIME_HOURS": 0.5})
    h.fakes.clock.advance(minutes=29)
    assert proposal(h.services.trial_loop.propose(first_state(job)))["action"] == "run"
    h.fakes.clock.advance(minutes=1)
    out = h.services.trial_loop.propose(first_state(job))
    assert (proposal(out)["action"], proposal(out)["reason"]) == ("stop", StopReason.TIME_BUDGET.value)
    assert len(h.fakes.trials.items) == 1


def test_consecutive_errors_stop_the_slot(h, make_job):
    job, _ = make_job()
    limit = h.settings.max_consecutive_trial_errors
    assert proposal(h.services.trial_loop.propose({**first_state(job), "consecutive_errors": limit - 1}))["action"] == "run"
    out = h.services.trial_loop.propose({**first_state(job), "consecutive_errors": limit})
    assert (proposal(out)["action"], proposal(out)["reason"]) == ("stop", StopReason.CONSECUTIVE_ERRORS.value)


def test_a_stopped_job_proposes_nothing(h, make_job):
    job, _ = make_job()
    h.fakes.train_jobs.set_status(job.id, TrainJobStatus.STOPPED, only_from=(TrainJobStatus.STARTED,))
    out = h.services.trial_loop.propose(first_state(job))
    assert (proposal(out)["action"], proposal(out)["reason"]) == ("stop", StopReason.JOB_FINAL.value)
    assert h.fakes.trials.items == {}


def test_a_job_stopped_while_a_trial_is_proposed_keeps_no_running_trial(h, make_job):
    job, _ = make_job()
    # stop_train_job runs between the loop's status check and its trial write
    h.fakes.advisor.hook = lambda: h.fakes.train_jobs.set_status(job.id, TrainJobStatus.STOPPED,
                                                                 only_from=(TrainJobStatus.STARTED,))
    out = h.services.trial_loop.propose(first_state(job))
    assert proposal(out)["action"] == "stop"
    (trial,) = h.fakes.trials.items.values()
    assert trial.status is TrialStatus.TERMINATED


def test_a_deleted_model_or_an_exhausted_space_stops_the_slot(h, make_job):
    job, (model,) = make_job()
    h.fakes.advisor.exhausted = True
    out = h.services.trial_loop.propose(first_state(job))
    assert (proposal(out)["action"], proposal(out)["reason"]) == ("stop", StopReason.KNOB_SPACE_EXHAUSTED.value)
    del h.fakes.models.items[model.id]
    out = h.services.trial_loop.propose(first_state(job))
    assert (proposal(out)["action"], proposal(out)["reason"]) == ("stop", StopReason.MODEL_DELETED.value)


def test_a_slot_continues_in_a_new_execution_after_its_share_of_trials(h, make_job):
    job, _ = make_job()
    state = {**first_state(job), "trials_in_execution": h.settings.max_trials_per_execution}
    assert proposal(h.services.trial_loop.propose(state))["action"] == "continue"
    assert h.fakes.trials.items == {}
    h.fakes.workflows.started.clear()
    following = h.services.trial_loop.continue_worker(state)
    assert (following["generation"], following["trials_in_execution"]) == (1, 0)
    name = execution_name(job.id, state["worker_key"], 1)
    assert h.fakes.workflows.started == {name: following}
    assert h.fakes.train_jobs.get(job.id).workers[state["worker_key"]].execution_arn == h.fakes.workflows.arn(name)


def test_an_unknown_job_is_not_found(h):
    with pytest.raises(NotFound):
        h.services.trial_loop.propose(slot_state("no-such-job", "m-0", "m", 0))


# -- record ------------------------------------------------------------------------------------


def test_a_trial_result_is_recorded_and_resets_the_error_count(h, make_job):
    job, _ = make_job()
    out = h.services.trial_loop.propose({**first_state(job), "consecutive_errors": 2})
    h.fakes.clock.advance(minutes=3)
    after = h.services.trial_loop.record_trial({**out, "result": {
        "score": 0.875, "model_seconds": 12.5, "started_at": "2026-12-01T09:00:30Z"}})
    assert (after["consecutive_errors"], after["trials_in_execution"]) == (0, 1)
    trial = h.fakes.trials.get(proposal(out)["trial"]["id"])
    assert (trial.status, trial.score, trial.model_seconds) == (TrialStatus.COMPLETED, 0.875, 12.5)
    assert trial.stopped_at == h.fakes.clock.now
    assert trial.started_at.isoformat() == "2026-12-01T09:00:30+00:00"


def test_has_onnx_is_true_only_for_a_trial_that_exported_onnx(h, make_job):
    job, _ = make_job()
    plain = h.services.trial_loop.propose(first_state(job))
    assert proposal(plain)["trial"]["onnx_key"]  # the worker is told where a graph would go
    h.services.trial_loop.record_trial({**plain, "result": {"score": 0.5, "onnx_key": None}})
    exported = h.services.trial_loop.propose(first_state(job))
    key = proposal(exported)["trial"]["onnx_key"]
    h.services.trial_loop.record_trial({**exported, "result": {"score": 0.6, "onnx_key": key}})
    without = h.fakes.trials.get(proposal(plain)["trial"]["id"])
    with_graph = h.fakes.trials.get(proposal(exported)["trial"]["id"])
    assert without.to_dict()["has_onnx"] is False and without.onnx_key is None
    assert with_graph.to_dict()["has_onnx"] is True and with_graph.onnx_key == key


def test_a_trial_failure_is_recorded_from_the_workers_error_report(h, make_job):
    job, _ = make_job()
    out = h.services.trial_loop.propose(first_state(job))
    message = proposal(out)["trial"]
    h.fakes.blobs.put_bytes(message["error_key"], json.dumps(
        {"error_type": "ValueError", "message": "bad input shape"}).encode())
    after = h.services.trial_loop.record_trial_failure({**out, "failure": {"Error": "TrialFailed", "Cause": None}})
    assert (after["consecutive_errors"], after["trials_in_execution"]) == (1, 1)
    trial = h.fakes.trials.get(message["id"])
    assert (trial.status, trial.error_type, trial.error_message) == (TrialStatus.ERRORED, "ValueError",
                                                                      "bad input shape")


def test_a_silent_worker_fails_its_trial_by_the_failures_name(h, make_job):
    job, _ = make_job()
    out = h.services.trial_loop.propose(first_state(job))
    h.services.trial_loop.record_trial_failure({**out, "failure": {"Error": "States.HeartbeatTimeout"}})
    trial = h.fakes.trials.get(proposal(out)["trial"]["id"])
    assert (trial.status, trial.error_type) == (TrialStatus.ERRORED, "States.HeartbeatTimeout")


def test_a_trial_failing_after_the_job_stopped_is_terminated(h, make_job):
    job, _ = make_job()
    out = h.services.trial_loop.propose(first_state(job))
    trial_id = proposal(out)["trial"]["id"]
    h.fakes.train_jobs.set_status(job.id, TrainJobStatus.STOPPED, only_from=(TrainJobStatus.RUNNING,))
    h.services.trial_loop.record_trial_failure({**out, "failure": {"Error": "TaskFailed"}})
    assert h.fakes.trials.get(trial_id).status is TrialStatus.TERMINATED


def fail_model_check(h, state, log=b"loading\nImportError: no module named torch\n"):
    """Propose from ``state`` (a describe), write its log, record its failure; returns (proposed, after)."""
    out = h.services.trial_loop.propose(state)
    assert proposal(out)["action"] == "describe"
    h.fakes.blobs.put_bytes(proposal(out)["trial"]["logs_key"], log)
    return out, h.services.trial_loop.record_trial_failure({**out, "failure": {"Error": "TrialFailed"}})


def test_a_failed_model_check_is_a_trial_record_with_its_logs(h, dev, make_job):
    job, (model,) = make_job(knob_config=None)
    out, after = fail_model_check(h, first_state(job))
    assert after["consecutive_errors"] == 1
    error = h.fakes.train_jobs.get(job.id).workers[out["worker_key"]].error
    assert "loading the model failed" in error and "no module named torch" in error
    # The check is visible: listed with the job's trials (marked), with its logs.
    (listed,) = h.services.train_jobs.get_trials_of_train_job(dev, "app")
    assert listed["id"] == proposal(out)["trial"]["id"] and listed["model_check"] is True
    assert (listed["status"], listed["model_id"], listed["worker"]) == ("ERRORED", model.id, out["worker_key"])
    assert "no module named torch" in listed["error"] and listed["fully_trained"] is False
    logs = h.services.train_jobs.get_trial_logs(dev, listed["id"])
    assert "ImportError: no module named torch" in logs["logs"]
    assert h.services.train_jobs.get_best_trials_of_train_job(dev, "app") == []


def test_a_retried_record_of_a_failed_model_check_keeps_one_record(h, make_job):
    job, _ = make_job(knob_config=None)
    out, _ = fail_model_check(h, first_state(job))
    h.services.trial_loop.record_trial_failure({**out, "failure": {"Error": "TrialFailed"}})  # a retried step
    assert [t.id for t in h.fakes.trials.items.values()] == [proposal(out)["trial"]["id"]]


def test_a_failed_model_check_is_not_in_the_advisors_history(h, make_job):
    job, (model,) = make_job(knob_config=None)
    fail_model_check(h, first_state(job))
    state = h.services.trial_loop.propose(first_state(job))
    h.services.trial_loop.record_knob_config({**state, "result": {"knob_config": KNOB_CONFIG}})
    out = h.services.trial_loop.propose(first_state(job))
    assert proposal(out)["action"] == "run" and proposal(out)["trial"]["knobs"] == {"x": 0}
    assert h.fakes.advisor.seen[-1]["history"] == []


# -- the end of workers and of the job ---------------------------------------------------------


def complete_a_trial(h, state):
    out = h.services.trial_loop.propose(state)
    h.services.trial_loop.record_trial({**out, "result": {"score": 0.5}})


def test_the_job_stops_when_its_last_worker_finishes(h, make_job):
    job, _ = make_job()
    first, second = every_state(job)
    complete_a_trial(h, first)
    h.fakes.clock.advance(minutes=10)
    h.services.trial_loop.finish_worker({**first, "proposal": {"action": "stop", "reason": "TRIAL_BUDGET",
                                                              "detail": "MODEL_TRIAL_COUNT reached"}})
    stored = h.fakes.train_jobs.get(job.id)
    assert stored.status is TrainJobStatus.RUNNING  # its first trial ran
    assert stored.workers[first["worker_key"]].status is WorkerStatus.STOPPED
    assert stored.workers[first["worker_key"]].error is None  # a budget is no error
    h.services.trial_loop.finish_worker(second)
    stored = h.fakes.train_jobs.get(job.id)
    assert (stored.status, stored.stopped_at, stored.error) == (TrainJobStatus.STOPPED, h.fakes.clock.now, None)


def test_a_slot_stopped_by_errors_says_why_and_the_job_stops_if_a_trial_completed(h, make_job):
    job, _ = make_job()
    first, second = every_state(job)
    complete_a_trial(h, second)
    stop = {"action": "stop", "reason": StopReason.CONSECUTIVE_ERRORS.value, "detail": "3 trials in a row failed"}
    for state in (first, second):
        h.services.trial_loop.finish_worker({**state, "proposal": stop})
    stored = h.fakes.train_jobs.get(job.id)
    assert (stored.status, stored.error) == (TrainJobStatus.STOPPED, None)  # it has a model to serve
    assert stored.workers[first["worker_key"]].error == "3 trials in a row failed"


def test_a_job_whose_every_trial_failed_ends_errored_with_the_reason(h, make_job):
    job, _ = make_job()
    for state in every_state(job):
        out = h.services.trial_loop.propose(state)
        h.fakes.blobs.put_bytes(proposal(out)["trial"]["error_key"], json.dumps(
            {"error_type": "ValueError", "message": "bad input shape"}).encode())
        after = h.services.trial_loop.record_trial_failure({**out, "failure": {"Error": "TrialFailed"}})
        h.services.trial_loop.finish_worker({**after, "proposal": {
            "action": "stop", "reason": StopReason.CONSECUTIVE_ERRORS.value, "detail": "1 trial in a row failed"}})
    stored = h.fakes.train_jobs.get(job.id)
    assert stored.status is TrainJobStatus.ERRORED
    assert "no trial completed" in stored.error and "ValueError: bad input shape" in stored.error


def test_a_job_whose_model_check_failed_ends_errored_with_the_models_error(h, make_job):
    job, _ = make_job(knob_config=None)
    for state in every_state(job):
        for _ in range(h.settings.max_consecutive_trial_errors):
            _, state = fail_model_check(h, state)
        finished = h.services.trial_loop.propose(state)
        assert proposal(finished)["reason"] == StopReason.CONSECUTIVE_ERRORS.value
        h.services.trial_loop.finish_worker(finished)
    stored = h.fakes.train_jobs.get(job.id)
    assert stored.status is TrainJobStatus.ERRORED
    assert "the model check failed" in stored.error and "no module named torch" in stored.error
    assert all("no module named torch" in w.error for w in stored.workers.values())


def test_a_job_stopped_by_its_time_budget_with_a_completed_screening_trial_is_stopped(h, make_job):
    job, _ = make_job()
    first, second = every_state(job)
    out = h.services.trial_loop.propose(first)
    h.fakes.trials.items[proposal(out)["trial"]["id"]].screening = True
    h.services.trial_loop.record_trial({**out, "result": {"score": 0.5}})
    for state in (first, second):
        h.services.trial_loop.finish_worker({**state, "proposal": {"action": "stop", "reason": "TIME_BUDGET"}})
    assert h.fakes.train_jobs.get(job.id).status is TrainJobStatus.STOPPED


def test_the_job_errors_when_every_worker_broke_down(h, make_job):
    job, _ = make_job()
    for state in every_state(job):
        h.services.trial_loop.fail_worker({**state, "failure": {"Error": "States.Runtime", "Cause": "lambda died"}})
    stored = h.fakes.train_jobs.get(job.id)
    assert stored.status is TrainJobStatus.ERRORED
    assert "lambda died" in stored.error
    assert all(w.status is WorkerStatus.ERRORED for w in stored.workers.values())


def test_one_broken_worker_among_finished_ones_leaves_the_job_stopped(h, make_job):
    job, _ = make_job()
    first, second = every_state(job)
    complete_a_trial(h, second)
    h.services.trial_loop.fail_worker({**first, "failure": {"Error": "States.Runtime", "Cause": "x"}})
    h.services.trial_loop.finish_worker(second)
    assert h.fakes.train_jobs.get(job.id).status is TrainJobStatus.STOPPED


def test_a_worker_ending_after_the_job_was_stopped_changes_nothing(h, dev, make_job):
    job, _ = make_job()
    h.services.train_jobs.stop_train_job(dev, "app")
    stopped_at = h.fakes.train_jobs.get(job.id).stopped_at
    h.fakes.clock.advance(minutes=1)
    for state in every_state(job):
        h.services.trial_loop.fail_worker({**state, "failure": {"Error": "States.Runtime", "Cause": "x"}})
    stored = h.fakes.train_jobs.get(job.id)
    assert (stored.status, stored.stopped_at) == (TrainJobStatus.STOPPED, stopped_at)


def test_a_new_job_is_warm_started_from_the_best_trials_of_earlier_jobs_of_the_model(h, dev):
    from datetime import timedelta

    from chalicelib.entities import Trial

    data = h.dataset(dev)
    model = h.model(dev, knob_config=KNOB_CONFIG)

    def job(app):
        out = h.services.train_jobs.create_train_job(dev, app, Task.TABULAR_CLASSIFICATION, data.id, data.id,
                                                     {"TIME_HOURS": 1}, [model.id])
        return h.fakes.train_jobs.get(out["id"])

    def trial(job_id, number, x, score, status=TrialStatus.COMPLETED, screening=False):
        h.fakes.trials.add(Trial(id=f"{job_id[:6]}-{number}", train_job_id=job_id, model_id=model.id,
                                 model_name=model.name, worker_key=f"{model.id}-0", number=number, knobs={"x": x},
                                 fingerprint=str(x), created_at=h.fakes.clock.now, status=status,
                                 screening=screening, score=score, params_key=f"trials/{job_id}/{number}/params.npz"))

    older = job("a")
    h.fakes.clock.advance(timedelta(minutes=1))
    old = job("b")
    for j, trials in ((older, [(1, 0.5), (2, 0.7)]), (old, [(3, 0.6), (4, 0.9), (5, 0.8)])):
        for number, (x, score) in enumerate(trials, 1):
            trial(j.id, number, x, score)
        h.fakes.train_jobs.set_status(j.id, TrainJobStatus.STOPPED, only_from=(TrainJobStatus.STARTED,))
    trial(old.id, 6, 7, 0.99, screening=True)  # screening scores are not a model's: never used
    trial(old.id, 7, 8, None, status=TrialStatus.ERRORED)
    running = job("c")  # not finished: not used
    trial(running.id, 1, 9, 0.95)
    h.fakes.clock.advance(timedelta(minutes=1))

    new = job("d")
    h.services.trial_loop.propose(first_state(new))
    # the most recent job first, each job's best two fully trained trials, best first
    assert h.fakes.advisor.seen[-1]["prior"] == [{"x": 4}, {"x": 5}, {"x": 2}, {"x": 1}]
    # another model's first job has no prior
    other = h.model(dev, knob_config=KNOB_CONFIG)
    out = h.services.train_jobs.create_train_job(dev, "e", Task.TABULAR_CLASSIFICATION, data.id, data.id,
                                                 {"TIME_HOURS": 1}, [other.id])
    h.services.trial_loop.propose(first_state(h.fakes.train_jobs.get(out["id"])))
    assert h.fakes.advisor.seen[-1]["prior"] == []


def test_with_the_real_advisor_a_screened_model_ends_its_budget_with_a_full_trial():
    # PolicyKnob EARLY_STOP / QUICK_EVAL: screening trials are never ranked or served, so the
    # budget's last trial must be a full one even when the promotion schedule has not come
    from chalicelib.advisor import propose

    from unit.services.fakes import services

    h = services(advisor=propose)
    try:
        dev = h.user(UserType.MODEL_DEVELOPER)
        data = h.dataset(dev)
        config = {"lr": {"type": "float", "value_min": 1e-4, "value_max": 1.0, "is_exp": True},
                  "early_stop": {"type": "policy", "policy": "EARLY_STOP"},
                  "quick_eval": {"type": "policy", "policy": "QUICK_EVAL"}}
        model = h.model(dev, knob_config=config)
        out = h.services.train_jobs.create_train_job(dev, "app", Task.TABULAR_CLASSIFICATION, data.id, data.id,
                                                     {"TIME_HOURS": 1, "MODEL_TRIAL_COUNT": 2}, [model.id])
        state = first_state(h.fakes.train_jobs.get(out["id"]))
        for _ in range(3):
            state = h.services.trial_loop.propose(state)
            if state["proposal"]["action"] != "run":
                break
            state = h.services.trial_loop.record_trial(state | {"result": {"score": 0.5}})
        trials = sorted(h.fakes.trials.items.values(), key=lambda t: t.number)
        assert [t.screening for t in trials] == [True, False]
        assert trials[1].knobs["early_stop"] is False and trials[1].knobs["lr"] == trials[0].knobs["lr"]
        best = h.services.train_jobs.get_best_trials_of_train_job(dev, "app")
        assert [t["id"] for t in best] == [trials[1].id]
    finally:
        h.services.close()
