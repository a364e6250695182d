"""InferenceJobService on fakes: an inference job serves the best trial of each model of a
STOPPED train job through one endpoint; its status follows the endpoint's."""
from __future__ import annotations

import io
import tarfile
from datetime import timedelta

import pytest

from chalicelib import ports
from chalicelib.entities import InferenceJobStatus, Task, TrainJobStatus, Trial, TrialStatus, UserType
from chalicelib.errors import Conflict, Forbidden, NotFound, Unprocessable
from chalicelib.ports import EndpointState
from chalicelib.services.inference_jobs import best_trial_per_model

TABULAR = Task.TABULAR_CLASSIFICATION


@pytest.fixture
def dev(h):
    return h.user(UserType.MODEL_DEVELOPER, email="dev@example.com")


@pytest.fixture
def train(h, dev):
    """``train(trials={model index: [(score, screening, status)]}, status=STOPPED, models=2)``:
    a train job of ``app`` with those trials (parameters stored); returns (job id, models, trials)."""

    def make(trials, status=TrainJobStatus.STOPPED, models=2, app="app"):
        data = h.dataset(dev)
        model_list = [h.model(dev, name=f"{app}-m{i}") for i in range(models)]
        job_id = h.services.train_jobs.create_train_job(dev, app, TABULAR, data.id, data.id, {},
                                                        [m.id for m in model_list])["id"]
        made = []
        for index, specs in trials.items():
            for score, screening, trial_status in specs:
                number = len(made) + 1
                trial = Trial(id=f"{job_id[:6]}-t{number}", train_job_id=job_id, model_id=model_list[index].id,
                              model_name=model_list[index].name, worker_key=f"{model_list[index].id}-0",
                              number=number, knobs={"x": number}, fingerprint=str(number),
                              created_at=h.fakes.clock.now + timedelta(seconds=number), status=trial_status,
                              screening=screening, score=score, params_key=f"trials/{job_id}/{number}/params.npz")
                h.fakes.trials.add(trial)
                h.fakes.blobs.put_bytes(trial.params_key, b"npz-bytes")
                made.append(trial)
        if status is not TrainJobStatus.STARTED:
            h.fakes.train_jobs.set_status(job_id, status, only_from=(TrainJobStatus.STARTED,), at=h.fakes.clock.now)
        return job_id, model_list, made

    return make


DONE = TrialStatus.COMPLETED


def test_best_trial_per_model_takes_fully_trained_trials_only_then_the_score():
    def trial(model, score, screening=False, status=DONE, params="p"):
        return Trial(id=f"{model}-{score}-{screening}", train_job_id="j", model_id=model, model_name=model,
                     worker_key="w", number=1, knobs={}, fingerprint="f", created_at=None, status=status,
                     screening=screening, score=score, params_key=params)

    trials = [trial("a", 0.5), trial("a", 0.9, screening=True), trial("a", 0.6), trial("b", 0.8),
              trial("b", 0.99, status=TrialStatus.ERRORED), trial("c", 0.95, params=None),
              trial("d", 0.97, screening=True)]  # d was only screened: it has no member
    assert [t.id for t in best_trial_per_model(trials)] == ["b-0.8-False", "a-0.6-False"]


def test_screening_trials_are_never_served(h, dev, train):
    # model 0's best score is a screening one; model 1 was only screened
    _, _, trials = train({0: [(0.99, True, DONE), (0.8, False, DONE)], 1: [(0.95, True, DONE)]})
    out = h.services.inference_jobs.create_inference_job(dev, "app")
    job = h.fakes.inference_jobs.get(out["id"])
    assert [m["id"] for m in job.members] == [trials[1].id]
    with tarfile.open(fileobj=io.BytesIO(h.fakes.blobs.get_bytes(job.bundle_key))) as bundle:
        names = bundle.getnames()
    assert not any(trials[0].id in name or trials[2].id in name for name in names)


def test_a_train_job_with_only_screening_trials_is_not_served_and_says_why(h, dev, train):
    train({0: [(0.9, True, DONE)], 1: [(0.8, True, DONE), (None, False, TrialStatus.ERRORED)]})
    with pytest.raises(Unprocessable, match=r"no fully trained trial to serve \(2 completed screening trial"):
        h.services.inference_jobs.create_inference_job(dev, "app")
    with pytest.raises(Unprocessable, match="no fully trained trial to export"):
        h.services.inference_jobs.export_bundle(dev, "app")
    assert h.fakes.inference_jobs.items == {} and h.fakes.endpoints.deployed == {}


def test_an_inference_job_serves_the_best_trial_of_each_model(h, dev, train):
    job_id, models, trials = train({0: [(0.7, False, DONE), (0.9, False, DONE)], 1: [(0.8, False, DONE),
                                                                                     (0.3, False, TrialStatus.ERRORED)]})
    out = h.services.inference_jobs.create_inference_job(dev, "app")
    assert (out["status"], out["app_version"], out["train_job_id"]) == ("RUNNING", 1, job_id)
    assert out["predictor_url"] == f"{h.settings.public_api_url.rstrip('/')}/apps/app/predict"
    job = h.fakes.inference_jobs.get(out["id"])
    assert [m["id"] for m in job.members] == [trials[1].id, trials[2].id]  # best first
    assert h.fakes.endpoints.deployed == {job.endpoint_name: job.bundle_key}
    assert h.fakes.endpoints.gpu[job.endpoint_name] is False
    with tarfile.open(fileobj=io.BytesIO(h.fakes.blobs.get_bytes(job.bundle_key))) as bundle:
        names = bundle.getnames()
    assert any(trials[1].id in name for name in names) and not any(trials[0].id in name for name in names)


def test_a_gpu_budget_deploys_a_gpu_endpoint(h, dev, train):
    train({0: [(0.7, False, DONE)]}, models=1)
    out = h.services.inference_jobs.create_inference_job(dev, "app", budget={"GPU_COUNT": 1})
    assert h.fakes.endpoints.gpu[h.fakes.inference_jobs.get(out["id"]).endpoint_name] is True


@pytest.mark.parametrize("status", [TrainJobStatus.STARTED, TrainJobStatus.RUNNING, TrainJobStatus.ERRORED])
def test_only_a_stopped_train_job_is_served(h, dev, train, status):
    job_id, _, _ = train({0: [(0.7, False, DONE)]}, status=TrainJobStatus.STARTED)
    if status is not TrainJobStatus.STARTED:
        h.fakes.train_jobs.set_status(job_id, status, only_from=(TrainJobStatus.STARTED,))
    with pytest.raises(Conflict, match="STOPPED"):
        h.services.inference_jobs.create_inference_job(dev, "app")
    assert h.fakes.inference_jobs.items == {} and h.fakes.endpoints.deployed == {}


def test_a_train_job_without_a_completed_trial_is_not_served(h, dev, train):
    train({0: [(None, False, TrialStatus.ERRORED)], 1: [(0.9, False, TrialStatus.TERMINATED)]})
    with pytest.raises(Unprocessable, match="no completed trial"):
        h.services.inference_jobs.create_inference_job(dev, "app")
    assert h.fakes.inference_jobs.items == {}


def test_a_version_is_served_once_at_a_time(h, dev, train):
    train({0: [(0.7, False, DONE)]})
    h.services.inference_jobs.create_inference_job(dev, "app")
    with pytest.raises(Conflict, match="already running"):
        h.services.inference_jobs.create_inference_job(dev, "app")
    assert len(h.fakes.inference_jobs.items) == 1


def test_an_endpoint_that_cannot_be_deployed_leaves_the_job_errored(h, dev, train):
    train({0: [(0.7, False, DONE)]})
    h.fakes.endpoints.deploy_failure = RuntimeError("no capacity")
    with pytest.raises(RuntimeError, match="no capacity"):
        h.services.inference_jobs.create_inference_job(dev, "app")
    (job,) = h.fakes.inference_jobs.items.values()
    assert job.status is InferenceJobStatus.ERRORED
    assert "could not be created" in job.error and "no capacity" in job.error
    # an errored job does not block a new attempt
    h.fakes.endpoints.deploy_failure = None
    assert h.services.inference_jobs.create_inference_job(dev, "app")["status"] == "RUNNING"


def test_a_job_follows_its_endpoints_state(h, dev, train):
    train({0: [(0.7, False, DONE)]})
    h.fakes.endpoints.state_override = EndpointState("Creating")
    out = h.services.inference_jobs.create_inference_job(dev, "app")
    assert out["status"] == "STARTED"
    assert [j["status"] for j in h.services.inference_jobs.get_inference_jobs_of_app(dev, "app")] == ["STARTED"]
    h.fakes.endpoints.state_override = EndpointState("InService")
    assert [j["status"] for j in h.services.inference_jobs.get_inference_jobs_of_app(dev, "app")] == ["RUNNING"]
    h.fakes.endpoints.state_override = EndpointState("Failed", reason="the container exited")
    (listed,) = h.services.inference_jobs.get_inference_jobs_by_user(dev, dev.id)
    assert (listed["status"], listed["error"]) == ("ERRORED", "the container exited")
    stored = h.fakes.inference_jobs.get(out["id"])
    assert stored.stopped_at == h.fakes.clock.now
    h.fakes.endpoints.state_override = EndpointState("InService")  # an ended job stays ended
    assert h.services.inference_jobs.get_inference_jobs_of_app(dev, "app")[0]["status"] == "ERRORED"


def test_a_deleted_endpoint_errors_its_job(h, dev, train):
    train({0: [(0.7, False, DONE)]})
    out = h.services.inference_jobs.create_inference_job(dev, "app")
    h.fakes.endpoints.deployed.clear()  # gone behind the platform's back
    job = h.services.inference_jobs.report_endpoint_failure(h.fakes.inference_jobs.get(out["id"]))
    assert job.status is InferenceJobStatus.ERRORED and "deleted" in job.error


def test_the_running_job_is_the_newest_live_version(h, dev, train):
    train({0: [(0.7, False, DONE)]})
    v1 = h.services.inference_jobs.create_inference_job(dev, "app")
    train({0: [(0.8, False, DONE)]})
    v2 = h.services.inference_jobs.create_inference_job(dev, "app")
    assert h.services.inference_jobs.running_job(dev.id, "app").id == v2["id"]
    assert h.services.inference_jobs.running_job(dev.id, "app", 1).id == v1["id"]
    with pytest.raises(NotFound):
        h.services.inference_jobs.running_job(dev.id, "app", 3)
    with pytest.raises(NotFound):
        h.services.inference_jobs.running_job(dev.id, "other")


def test_stopping_an_inference_job_deletes_its_endpoint(h, dev, train):
    train({0: [(0.7, False, DONE)]})
    out = h.services.inference_jobs.create_inference_job(dev, "app")
    name = h.fakes.inference_jobs.get(out["id"]).endpoint_name
    stopped = h.services.inference_jobs.stop_inference_job(dev, "app")
    assert stopped["status"] == "STOPPED" and stopped["datetime_stopped"] == h.fakes.clock.now.isoformat()
    assert h.fakes.endpoints.deleted == [name]
    with pytest.raises(NotFound):
        h.services.inference_jobs.stop_inference_job(dev, "app")


def test_stop_all_jobs_is_for_the_superadmin(h, dev, train):
    train({0: [(0.7, False, DONE)]})
    h.services.inference_jobs.create_inference_job(dev, "app")
    train({0: [(0.7, False, DONE)]}, status=TrainJobStatus.STARTED, app="other")
    with pytest.raises(Forbidden):
        h.services.inference_jobs.stop_all_jobs(h.user(UserType.ADMIN))
    out = h.services.inference_jobs.stop_all_jobs(h.user(UserType.SUPERADMIN))
    assert out == {"train_jobs_stopped": 1, "inference_jobs_stopped": 1}
    assert h.fakes.endpoints.deployed == {}


def test_jobs_of_another_user_are_listed_for_admins_only(h, dev, train):
    train({0: [(0.7, False, DONE)]})
    h.services.inference_jobs.create_inference_job(dev, "app")
    with pytest.raises(Forbidden):
        h.services.inference_jobs.get_inference_jobs_by_user(h.user(UserType.MODEL_DEVELOPER), dev.id)
    assert len(h.services.inference_jobs.get_inference_jobs_by_user(h.user(UserType.ADMIN), dev.id)) == 1


def test_a_bundle_is_exported_for_a_completed_trial_or_the_ensemble(h, dev, train):
    _, _, trials = train({0: [(0.7, False, DONE), (None, False, TrialStatus.RUNNING)], 1: [(0.8, False, DONE)]})
    one = h.services.inference_jobs.export_bundle(dev, "app", trial_id=trials[0].id)
    assert [m["trial_id"] for m in one["manifest"]["members"]] == [trials[0].id]
    assert one["url"].startswith("https://blobs.fake/exports/")
    ensemble = h.services.inference_jobs.export_bundle(dev, "app")
    assert [m["trial_id"] for m in ensemble["manifest"]["members"]] == [trials[2].id, trials[0].id]
    with pytest.raises(Conflict, match="RUNNING"):
        h.services.inference_jobs.export_bundle(dev, "app", trial_id=trials[1].id)
    assert h.fakes.endpoints.deployed == {}  # exporting deploys nothing


# -- the app's serving record (which live jobs answer predict) ---------------------------------

needs_serving_record = pytest.mark.skipif(
    not hasattr(ports, "ServingState"), reason="the app serving record (ApplicationStore.serving_state) has not landed")


def live_ids(h, dev, app="app"):
    state = h.fakes.apps.serving_state(dev.id, app)
    assert state.tracked
    return state.live_job_ids


@needs_serving_record
def test_a_created_job_is_recorded_live_and_a_stopped_one_forgotten(h, dev, train):
    train({0: [(0.7, False, DONE)]})
    out = h.services.inference_jobs.create_inference_job(dev, "app")
    assert live_ids(h, dev) == {out["id"]}
    h.services.inference_jobs.stop_inference_job(dev, "app")
    assert live_ids(h, dev) == frozenset()


@needs_serving_record
def test_a_job_whose_endpoint_fails_leaves_the_serving_record(h, dev, train):
    train({0: [(0.7, False, DONE)]})
    h.fakes.endpoints.deploy_failure = RuntimeError("no capacity")
    with pytest.raises(RuntimeError):
        h.services.inference_jobs.create_inference_job(dev, "app")
    assert live_ids(h, dev) == frozenset()
    h.fakes.endpoints.deploy_failure = None
    out = h.services.inference_jobs.create_inference_job(dev, "app")
    h.fakes.endpoints.state_override = EndpointState("Failed", reason="oom")
    h.services.inference_jobs.get_inference_jobs_of_app(dev, "app")
    assert live_ids(h, dev) == frozenset()
    assert h.fakes.inference_jobs.get(out["id"]).status is InferenceJobStatus.ERRORED


@needs_serving_record
def test_the_serving_job_is_the_pinned_version_else_the_newest(h, dev, train):
    train({0: [(0.7, False, DONE)]})
    v1 = h.services.inference_jobs.create_inference_job(dev, "app")
    train({0: [(0.8, False, DONE)]})
    v2 = h.services.inference_jobs.create_inference_job(dev, "app")
    serving_job = h.services.inference_jobs.serving_job
    assert serving_job(dev.id, "app", h.fakes.apps.serving_state(dev.id, "app")).id == v2["id"]
    h.services.apps.register_application(dev, "app", None, None, 1_000_000)
    h.services.apps.set_model_version(dev, "app", 1)
    assert serving_job(dev.id, "app", h.fakes.apps.serving_state(dev.id, "app")).id == v1["id"]
    h.services.inference_jobs.stop_inference_job(dev, "app", 1)
    with pytest.raises(NotFound):
        serving_job(dev.id, "app", h.fakes.apps.serving_state(dev.id, "app"))


@needs_serving_record
def test_live_jobs_from_before_the_serving_record_are_recorded_with_the_next_one(h, dev, train):
    train({0: [(0.7, False, DONE)]})
    old = h.services.inference_jobs.create_inference_job(dev, "app")
    h.fakes.apps.serving.clear()  # as a row written before the record existed
    untracked = h.fakes.apps.serving_state(dev.id, "app")
    assert h.services.inference_jobs.serving_job(dev.id, "app", untracked).id == old["id"]  # read the old way
    train({0: [(0.8, False, DONE)]})
    new = h.services.inference_jobs.create_inference_job(dev, "app")
    assert live_ids(h, dev) == {old["id"], new["id"]}


def test_an_iam_users_export_is_written_under_its_own_prefix_for_it_to_read(h, dev, train):
    train({0: [(0.7, False, DONE)]})
    mine = h.services.inference_jobs.export_bundle(dev, "app", iam_principal="arn:aws:iam::123456789012:user/ops/alice")
    direct = mine["direct"]
    assert direct["key"].startswith("direct/alice/exports/") and direct["key"].endswith("/bundle.tar.gz")
    assert direct["bucket"] and mine["url"].startswith(f"https://blobs.fake/{direct['key']}")  # the same object
    assert mine["image_uri"] is None  # no managed image, and no inference image named by this stack
    # roles (no aws:username) and callers without AWS credentials: the shared exports/ prefix, URL only
    for principal in ("arn:aws:sts::123456789012:assumed-role/ml/alice", None):
        other = h.services.inference_jobs.export_bundle(dev, "app", iam_principal=principal)
        assert other["direct"] is None and other["url"].startswith("https://blobs.fake/exports/")
