"""What the services do with jobs a stop of the platform interrupted (the local stack calls these
at start-up from saved state): train jobs go on in new executions, stress tests end FAILING,
inference jobs get their endpoints back, each with the reason when it cannot."""
from __future__ import annotations

from datetime import timedelta

from chalicelib.entities import InferenceJobStatus, Task, TrainJobStatus, Trial, TrialStatus, UserType, WorkerStatus
from chalicelib.services.trial_loop import execution_name, slot_state

REASON = "the local stack stopped while this job was running"
TABULAR = Task.TABULAR_CLASSIFICATION


def running_job(h, slots_running=True):
    dev = h.user(UserType.MODEL_DEVELOPER)
    data, model = h.dataset(dev), h.model(dev)
    job_id = h.services.train_jobs.create_train_job(dev, "app", TABULAR, data.id, data.id, {}, [model.id])["id"]
    h.fakes.train_jobs.set_status(job_id, TrainJobStatus.RUNNING, only_from=(TrainJobStatus.STARTED,))
    job = h.fakes.train_jobs.get(job_id)
    statuses = [TrialStatus.COMPLETED, TrialStatus.RUNNING, TrialStatus.PENDING]
    for number, status in enumerate(statuses, 1):
        h.fakes.trials.add(Trial(id=f"t{number}", train_job_id=job_id, model_id=model.id, model_name=model.name,
                                 worker_key=f"{model.id}-0", number=number, knobs={"x": number},
                                 fingerprint=str(number), created_at=h.fakes.clock.now + timedelta(seconds=number),
                                 status=status, score=0.5 if status is TrialStatus.COMPLETED else None))
    return dev, job


def test_running_workers_go_on_in_a_new_generation_and_unfinished_trials_end_with_the_reason(h):
    dev, job = running_job(h)
    assert h.services.train_jobs.resume_interrupted(REASON) == len(job.workers)

    trials = {t.id: t for t in h.fakes.trials.list_of_job(job.id)}
    assert trials["t1"].status is TrialStatus.COMPLETED
    assert {trials[i].status for i in ("t2", "t3")} == {TrialStatus.ERRORED}
    assert trials["t2"].error_message == REASON
    after = h.fakes.train_jobs.get(job.id)
    assert after.status is TrainJobStatus.RUNNING
    for key, worker in after.workers.items():
        name = execution_name(job.id, key, 1)
        assert h.fakes.workflows.started[name] == slot_state(job.id, key, worker.model_id, worker.slot, 1)
        assert worker.execution_arn == h.fakes.workflows.arn(name) and worker.status is WorkerStatus.RUNNING


def test_a_finished_job_is_left_alone(h):
    dev, job = running_job(h)
    h.fakes.train_jobs.set_status(job.id, TrainJobStatus.STOPPED, only_from=(TrainJobStatus.RUNNING,))
    started = dict(h.fakes.workflows.started)
    assert h.services.train_jobs.resume_interrupted(REASON) == 0
    assert h.fakes.workflows.started == started
    assert h.fakes.trials.get("t2").status is TrialStatus.RUNNING


def test_a_job_none_of_whose_workers_can_start_again_ends_errored_with_why(h):
    dev, job = running_job(h)
    h.fakes.workflows.failures["start"] = RuntimeError("no state machine")
    assert h.services.train_jobs.resume_interrupted(REASON) == 0
    after = h.fakes.train_jobs.get(job.id)
    assert after.status is TrainJobStatus.ERRORED and REASON in after.error
    assert all(w.status is WorkerStatus.ERRORED and "no state machine" in w.error for w in after.workers.values())


def test_running_stress_tests_end_failing_with_the_reason(h):
    from unit.services.test_stress_tests import config

    dev = h.user()
    s = h.services.stress_tests
    pending, running, done = (s.start_stress_test(dev, config(h, dev)) for _ in range(3))
    s.start(h.fakes.stress_workflows.started[running["job_id"]])
    state = h.fakes.stress_workflows.started[done["job_id"]]
    s.start(state)
    s.record({**state, "result": {"test_run_id": done["test_run_id"], "num_test_cases": 1}})

    assert s.end_interrupted(REASON) == 2
    for job in (pending, running):
        stored = s.get_stress_test(dev, job["job_id"])
        assert stored["status"] == "FAILING" and REASON in str(stored)
    assert s.get_stress_test(dev, done["job_id"])["status"] == "SUCCEEDED"


def serving(h):
    dev = h.user(UserType.MODEL_DEVELOPER)
    data, model = h.dataset(dev), h.model(dev)
    job_id = h.services.train_jobs.create_train_job(dev, "app", TABULAR, data.id, data.id, {}, [model.id])["id"]
    h.fakes.trials.add(Trial(id="best", train_job_id=job_id, model_id=model.id, model_name=model.name,
                             worker_key=f"{model.id}-0", number=1, knobs={}, fingerprint="1",
                             created_at=h.fakes.clock.now, status=TrialStatus.COMPLETED, score=0.9,
                             params_key="trials/best/params.npz"))
    h.fakes.blobs.put_bytes("trials/best/params.npz", b"npz")
    h.fakes.train_jobs.set_status(job_id, TrainJobStatus.STOPPED, only_from=(TrainJobStatus.STARTED,))
    job = h.services.inference_jobs.create_inference_job(dev, "app")
    return dev, h.fakes.inference_jobs.get(job["id"])


def test_endpoints_of_live_inference_jobs_are_started_again_from_their_bundles(h):
    dev, job = serving(h)
    h.fakes.endpoints.deployed.clear()  # the stack stopped: its endpoint processes are gone
    [resumed] = h.services.inference_jobs.resume_endpoints(REASON)
    assert resumed["status"] == "RUNNING"
    assert h.fakes.endpoints.deployed == {job.endpoint_name: job.bundle_key}


def test_an_endpoint_that_cannot_start_again_ends_its_job_with_the_reason(h):
    dev, job = serving(h)
    h.fakes.endpoints.deployed.clear()
    h.fakes.endpoints.deploy_failure = RuntimeError("no bundle")
    [resumed] = h.services.inference_jobs.resume_endpoints(REASON)
    stored = h.fakes.inference_jobs.get(job.id)
    assert resumed["status"] == "ERRORED" and stored.status is InferenceJobStatus.ERRORED
    assert REASON in stored.error and "no bundle" in stored.error


def test_an_endpoint_still_serving_is_left_alone(h):
    dev, job = serving(h)
    deployed = dict(h.fakes.endpoints.deployed)
    assert h.services.inference_jobs.resume_endpoints(REASON) == []
    assert h.fakes.endpoints.deployed == deployed


def test_as_the_stack_stops_unfinished_trials_of_running_jobs_end_with_the_reason(h):
    dev, job = running_job(h)
    assert h.services.train_jobs.end_unfinished_trials(REASON) == 2
    assert {t.id: (t.status, t.error_message) for t in h.fakes.trials.list_of_job(job.id)} == {
        "t1": (TrialStatus.COMPLETED, None), "t2": (TrialStatus.ERRORED, REASON), "t3": (TrialStatus.ERRORED, REASON)}
