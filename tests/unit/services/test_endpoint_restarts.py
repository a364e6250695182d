"""An inference job whose endpoint's server died and is being started again (the local runner's
restarts, issue 10): the job stays RUNNING, predict answers the app's marked default meanwhile,
each worker shows the restarts and the last one's reason and time; when the runner gives up the
job ends ERRORED with the reason and keeps its restarts; a runner that cannot count restarts
(SageMaker) leaves them None."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from chalicelib.entities import InferenceJobStatus, Task, TrainJobStatus, Trial, TrialStatus, UserType
from chalicelib.errors import Unavailable
from chalicelib.ports import EndpointState, EndpointUnavailable

TABULAR = Task.TABULAR_CLASSIFICATION
DIED = "the inference server exited with code -9: serving on unix:/x/server.sock"
AT = datetime(2026, 12, 1, 10, 0, 5, tzinfo=timezone.utc)


@pytest.fixture
def served(h):
    """A RUNNING inference job of ``app`` with two members (two workers); (developer, job)."""
    dev = h.user(UserType.MODEL_DEVELOPER)
    data = h.dataset(dev)
    models = [h.model(dev), h.model(dev)]
    job_id = h.services.train_jobs.create_train_job(dev, "app", TABULAR, data.id, data.id, {},
                                                    [m.id for m in models])["id"]
    for number, model in enumerate(models, 1):
        h.fakes.trials.add(Trial(id=f"t{number}", train_job_id=job_id, model_id=model.id, model_name=model.name,
                                 worker_key=f"{model.id}-0", number=number, knobs={}, fingerprint=str(number),
                                 created_at=h.fakes.clock.now, status=TrialStatus.COMPLETED, score=0.9,
                                 params_key=f"trials/t{number}/params.npz"))
        h.fakes.blobs.put_bytes(f"trials/t{number}/params.npz", b"npz")
    h.fakes.train_jobs.set_status(job_id, TrainJobStatus.STOPPED, only_from=(TrainJobStatus.STARTED,))
    created = h.services.inference_jobs.create_inference_job(dev, "app")
    assert created["status"] == "RUNNING"
    return dev, h.fakes.inference_jobs.get(created["id"])


def test_while_the_server_is_started_again_the_job_runs_on_and_predict_answers_the_marked_default(h, served):
    dev, job = served
    h.services.apps.register_application(dev, "app", None, "fallback", 1_000_000)
    h.fakes.endpoints.failure = EndpointUnavailable(f"{DIED}; it is being started again")
    h.fakes.endpoints.states[job.endpoint_name] = EndpointState("Restarting", f"{DIED}; it is started again",
                                                                restarts=0)
    outcome = h.services.predict.predict_queries(dev.id, "app", [[1.0, 2.0]])
    assert outcome.default and outcome.predictions == ["fallback"] and "started again" in outcome.explanation
    details = h.services.inference_jobs.get_inference_job(dev, "app")
    assert details["status"] == "RUNNING" and details["error"] is None
    assert h.fakes.apps.serving_state(dev.id, "app").live_job_ids == {job.id}  # still served once it is back


def test_without_a_default_predict_while_restarting_is_a_503(h, served):
    dev, job = served
    h.fakes.endpoints.failure = EndpointUnavailable(f"{DIED}; it is being started again")
    h.fakes.endpoints.states[job.endpoint_name] = EndpointState("Restarting", DIED, restarts=0)
    with pytest.raises(Unavailable, match="being started again"):
        h.services.predict.predict_queries(dev.id, "app", [[1.0, 2.0]])
    assert h.fakes.inference_jobs.get(job.id).status is InferenceJobStatus.RUNNING


def test_each_worker_shows_the_restarts_and_the_last_ones_reason_and_time_beside_the_seeds_fields(h, served):
    dev, job = served
    h.fakes.endpoints.states[job.endpoint_name] = EndpointState("InService", restarts=1, last_restart_reason=DIED,
                                                                last_restart_at=AT)
    details = h.services.inference_jobs.get_inference_job(dev, "app")
    assert details["status"] == "RUNNING" and len(details["workers"]) == 2
    for worker in details["workers"]:
        assert {"service_id", "status", "replicas", "trial"} <= set(worker)  # the seeds' fields stay
        assert worker["status"] == "RUNNING" and worker["replicas"] == 1 and worker["trial"]["id"]
        assert worker["restarts"] == 1
        assert worker["last_restart"] == {"reason": DIED, "at": "2026-12-01T10:00:05+00:00"}
    h.fakes.inference_jobs.reset_calls()
    h.services.inference_jobs.get_inference_job(dev, "app")  # nothing new: nothing written
    assert h.fakes.inference_jobs.calls["set_restarts"] == 0


def test_when_the_runner_gives_up_the_job_ends_errored_with_the_reason_and_keeps_its_restarts(h, served):
    dev, job = served
    gave_up = f"the inference server died again after 3 restart(s) within 300 s (at most 3 are made); last: {DIED}"
    h.fakes.endpoints.states[job.endpoint_name] = EndpointState("Failed", gave_up, restarts=3,
                                                                last_restart_reason=DIED, last_restart_at=AT)
    details = h.services.inference_jobs.get_inference_job(dev, "app")
    assert details["status"] == "ERRORED" and details["error"] == gave_up
    assert [w["restarts"] for w in details["workers"]] == [3, 3]
    assert job.id not in h.fakes.apps.serving_state(dev.id, "app").live_job_ids
    h.fakes.endpoints.states.pop(job.endpoint_name)  # the endpoint is gone; the job's record stays
    assert h.services.inference_jobs.get_inference_job(dev, "app")["workers"][0]["restarts"] == 3


def test_a_runner_that_cannot_count_restarts_leaves_them_none(h, served):
    dev, job = served  # the fake runner, as SageMaker's, reports restarts None
    worker = h.services.inference_jobs.get_inference_job(dev, "app")["workers"][0]
    assert (worker["restarts"], worker["last_restart"]) == (None, None)
    assert h.fakes.inference_jobs.calls["set_restarts"] == 0


def test_the_stack_does_not_deploy_again_an_endpoint_its_runner_is_restarting(h, served):
    dev, job = served
    h.fakes.endpoints.states[job.endpoint_name] = EndpointState("Restarting", DIED, restarts=1)
    h.fakes.endpoints.deployed.clear()
    assert h.services.inference_jobs.resume_endpoints("the local stack's moto restarted") == []
    assert h.fakes.endpoints.deployed == {}
