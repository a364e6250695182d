"""TrainJobService on fakes: creating a job (slots, checks, workflow starts), stopping it,
and reading its trials, logs and parameters."""
from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.entities import (
    AccessRight,
    DatasetStatus,
    Task,
    TrainJobStatus,
    Trial,
    TrialStatus,
    UserType,
    WorkerStatus,
)
from chalicelib.errors import Conflict, Forbidden, NotFound, Unprocessable
from chalicelib.services.trial_loop import execution_name, slot_state

TABULAR = Task.TABULAR_CLASSIFICATION


@pytest.fixture
def dev(h):
    return h.user(UserType.MODEL_DEVELOPER, email="dev@example.com")


@pytest.fixture
def data(h, dev):
    return h.dataset(dev)


def create(h, actor, data, model_ids=None, budget=None, app="app", task=TABULAR, val=None):
    return h.services.train_jobs.create_train_job(actor, app, task, data.id, (val or data).id,
                                                  budget or {"MODEL_TRIAL_COUNT": 2}, model_ids=model_ids)


def add_trial(h, job_id, model, number, status=TrialStatus.COMPLETED, score=None, screening=False, **changes):
    trial = Trial(id=f"trial-{job_id[:4]}-{number}", train_job_id=job_id, model_id=model.id, model_name=model.name,
                  worker_key=f"{model.id}-0", number=number, knobs={"x": number}, fingerprint=str(number),
                  created_at=h.fakes.clock.now + timedelta(seconds=number), status=status, screening=screening,
                  score=score, params_key=f"trials/{number}/params.npz", logs_key=f"trials/{number}/logs.txt",
                  **changes)
    h.fakes.trials.add(trial)
    return trial


# -- create ------------------------------------------------------------------------------------


def test_each_model_gets_the_configured_slots_each_started_as_a_workflow(h, dev, data):
    m1, m2 = h.model(dev), h.model(dev)
    out = create(h, dev, data, model_ids=[m1.id, m2.id])
    job = h.fakes.train_jobs.get(out["id"])
    slots = h.settings.worker_slots_per_model
    assert sorted(job.workers) == sorted(f"{m.id}-{s}" for m in (m1, m2) for s in range(slots))
    assert h.fakes.workflows.started == {
        execution_name(job.id, key, 0): slot_state(job.id, key, w.model_id, w.slot) for key, w in job.workers.items()
    }
    assert all(w.execution_arn == h.fakes.workflows.arn(execution_name(job.id, k, 0)) for k, w in job.workers.items())
    assert all(w.status is WorkerStatus.RUNNING and w.started_at == job.created_at for w in job.workers.values())
    assert (job.status, job.model_ids, job.budget) == (TrainJobStatus.STARTED, [m1.id, m2.id], {"MODEL_TRIAL_COUNT": 2})
    assert h.fakes.models.get(m1.id).train_job_count == 1


@pytest.mark.parametrize("gpus, models, slots", [(4, 2, 2), (3, 1, 3), (1, 2, 1)])
def test_a_gpu_budget_shares_its_gpus_among_the_models(h, dev, data, gpus, models, slots):
    ids = [h.model(dev).id for _ in range(models)]
    out = create(h, dev, data, model_ids=ids, budget={"GPU_COUNT": gpus})
    workers = h.fakes.train_jobs.get(out["id"]).workers.values()
    assert sorted(w.slot for w in workers if w.model_id == ids[0]) == list(range(slots))
    assert len(workers) == slots * models


def test_app_versions_count_per_app(h, dev, data):
    model = h.model(dev)
    versions = [create(h, dev, data, [model.id], app=app)["app_version"] for app in ("a", "a", "b", "a")]
    assert versions == [1, 2, 1, 3]


def test_without_model_ids_every_usable_model_of_the_task_is_used(h, dev, data):
    other = h.user(UserType.MODEL_DEVELOPER)
    mine = h.model(dev)
    public = h.model(other, access_right=AccessRight.PUBLIC)
    h.model(other)  # private to someone else
    h.model(dev, task=Task.TABULAR_REGRESSION)  # another task
    out = create(h, dev, data)
    assert h.fakes.train_jobs.get(out["id"]).model_ids == [mine.id, public.id]


def test_without_any_usable_model_nothing_starts(h, dev, data):
    h.model(dev, task=Task.IMAGE_CLASSIFICATION)
    with pytest.raises(Unprocessable, match="no model available"):
        create(h, dev, data)
    assert_nothing_created(h)


def assert_nothing_created(h):
    assert h.fakes.train_jobs.items == {}
    assert h.fakes.workflows.started == {}
    assert h.fakes.counters.values == {}  # no app version was used up


def test_unusable_datasets_are_refused(h, dev, data):
    model = h.model(dev)
    other = h.user(UserType.MODEL_DEVELOPER)
    cases = [
        (h.dataset(other), NotFound),  # someone else's
        (h.dataset(dev, status=DatasetStatus.UPLOADING), Conflict),
        (h.dataset(dev, status=DatasetStatus.PENDING), Conflict),  # its check job has not ended yet
        (h.dataset(dev, status=DatasetStatus.INVALID), Conflict),
        (h.dataset(dev, task=Task.TABULAR_REGRESSION), Unprocessable),
    ]
    for dataset, error in cases:
        with pytest.raises(error, match=None if error is not Conflict else f"it is {dataset.status.value}"):
            create(h, dev, data, [model.id], val=dataset)
    with pytest.raises(NotFound):
        h.services.train_jobs.create_train_job(dev, "app", TABULAR, "missing", data.id, {}, [model.id])
    assert_nothing_created(h)


def test_an_admin_may_train_on_anyones_dataset(h, dev, data):
    admin = h.user(UserType.ADMIN)
    model = h.model(admin)
    assert create(h, admin, data, [model.id])["app_version"] == 1


def test_unusable_models_are_refused(h, dev, data):
    other = h.user(UserType.MODEL_DEVELOPER)
    cases = [("missing", NotFound), (h.model(other).id, NotFound),
             (h.model(dev, task=Task.TABULAR_REGRESSION).id, Unprocessable)]
    for model_id, error in cases:
        with pytest.raises(error):
            create(h, dev, data, [model_id])
    assert_nothing_created(h)


def test_a_model_listed_twice_is_used_once(h, dev, data):
    model = h.model(dev)
    out = create(h, dev, data, [model.id, model.id])
    assert h.fakes.train_jobs.get(out["id"]).model_ids == [model.id]
    assert h.fakes.models.get(model.id).train_job_count == 1


def test_a_workflow_that_cannot_start_leaves_the_job_errored(h, dev, data):
    model = h.model(dev)
    h.fakes.workflows.failures["start"] = RuntimeError("states is down")
    with pytest.raises(RuntimeError, match="states is down"):
        create(h, dev, data, [model.id])
    (job,) = h.fakes.train_jobs.items.values()
    assert job.status is TrainJobStatus.ERRORED
    assert "could not start the workers" in job.error and "states is down" in job.error
    assert job.stopped_at == h.fakes.clock.now


# -- reading -----------------------------------------------------------------------------------


def test_a_job_is_found_by_app_and_version(h, dev, data):
    model = h.model(dev)
    first, second = create(h, dev, data, [model.id]), create(h, dev, data, [model.id])
    assert h.services.train_jobs.get_train_job(dev, "app")["id"] == second["id"]
    got = h.services.train_jobs.get_train_job(dev, "app", 1)
    assert got["id"] == first["id"] and len(got["workers"]) == h.settings.worker_slots_per_model
    with pytest.raises(NotFound):
        h.services.train_jobs.get_train_job(dev, "app", 3)
    with pytest.raises(NotFound):
        h.services.train_jobs.get_train_job(dev, "other")
    with pytest.raises(NotFound):  # apps are per user
        h.services.train_jobs.get_train_job(h.user(UserType.ADMIN), "app")


def test_jobs_of_another_user_are_listed_for_admins_only(h, dev, data):
    create(h, dev, data, [h.model(dev).id])
    other, admin = h.user(UserType.MODEL_DEVELOPER), h.user(UserType.ADMIN)
    assert len(h.services.train_jobs.get_train_jobs_by_user(dev, dev.id)) == 1
    assert len(h.services.train_jobs.get_train_jobs_by_user(admin, dev.id)) == 1
    with pytest.raises(Forbidden):
        h.services.train_jobs.get_train_jobs_by_user(other, dev.id)


def test_best_trials_are_fully_trained_completed_ones_best_first_never_screening(h, dev, data):
    m = h.model(dev)
    job = create(h, dev, data, [m.id])["id"]
    add_trial(h, job, m, 1, score=0.7)
    add_trial(h, job, m, 2, score=0.99, screening=True)  # a quick screening score: never ranked
    add_trial(h, job, m, 3, score=0.9)
    add_trial(h, job, m, 4, status=TrialStatus.ERRORED)
    add_trial(h, job, m, 5, status=TrialStatus.RUNNING)
    best = h.services.train_jobs.get_best_trials_of_train_job(dev, "app", max_count=3)
    assert [t["no"] for t in best] == [3, 1]
    assert all(t["fully_trained"] and not t["screening"] for t in best)
    assert [t["no"] for t in h.services.train_jobs.get_best_trials_of_train_job(dev, "app")] == [3, 1]
    listed = h.services.train_jobs.get_trials_of_train_job(dev, "app")
    assert [t["no"] for t in listed] == [1, 2, 3, 4, 5]
    # trial details mark the screening trial beside the seed's fields
    assert [(t["screening"], t["fully_trained"]) for t in listed] == [
        (False, True), (True, False), (False, True), (False, False), (False, False)]
    assert h.services.train_jobs.get_trial(dev, listed[1]["id"])["fully_trained"] is False


def test_a_job_with_only_screening_trials_has_no_best_trial(h, dev, data):
    m = h.model(dev)
    job = create(h, dev, data, [m.id])["id"]
    for number in (1, 2):
        add_trial(h, job, m, number, score=0.9, screening=True)
    assert h.services.train_jobs.get_best_trials_of_train_job(dev, "app") == []


def test_trial_logs_come_from_the_blob_store(h, dev, data):
    m = h.model(dev)
    job = create(h, dev, data, [m.id])["id"]
    trial = add_trial(h, job, m, 1)
    h.fakes.blobs.put_bytes(trial.logs_key, b"epoch 1\nepoch 2\n")
    assert h.services.train_jobs.get_trial_logs(dev, trial.id) == {
        "trial_id": trial.id, "status": "COMPLETED", "logs": "epoch 1\nepoch 2\n"}
    unwritten = add_trial(h, job, m, 2, status=TrialStatus.RUNNING)
    assert h.services.train_jobs.get_trial_logs(dev, unwritten.id)["logs"] == ""


def test_a_trials_details_name_its_model_class(h, dev, data):
    m = h.model(dev)
    job = create(h, dev, data, [m.id])["id"]
    trial = add_trial(h, job, m, 1)
    details = h.services.train_jobs.get_trial(dev, trial.id)
    assert (details["model_name"], details["model_class"]) == (m.name, "M")
    del h.fakes.models.items[m.id]  # a deleted model: the trial is still shown, its class unknown
    assert h.services.train_jobs.get_trial(dev, trial.id)["model_class"] is None


def test_trials_of_other_users_jobs_are_not_found(h, dev, data):
    m = h.model(dev)
    trial = add_trial(h, create(h, dev, data, [m.id])["id"], m, 1)
    other = h.user(UserType.MODEL_DEVELOPER)
    for read in (h.services.train_jobs.get_trial, h.services.train_jobs.get_trial_logs,
                 h.services.train_jobs.get_trial_parameters):
        with pytest.raises(NotFound):
            read(other, trial.id)
    assert h.services.train_jobs.get_trial(h.user(UserType.ADMIN), trial.id)["id"] == trial.id
    with pytest.raises(NotFound):
        h.services.train_jobs.get_trial(dev, "no-such-trial")


def test_parameters_are_offered_for_completed_trials_only(h, dev, data):
    m = h.model(dev)
    job = create(h, dev, data, [m.id])["id"]
    done = add_trial(h, job, m, 1, score=0.5)
    out = h.services.train_jobs.get_trial_parameters(dev, done.id)
    assert out == {"trial_id": done.id, "format": "npz",
                   "url": h.fakes.blobs.presigned_get(done.params_key, h.settings.presigned_url_seconds),
                   "direct": None}  # not signed by an IAM user
    for number, status in enumerate((TrialStatus.RUNNING, TrialStatus.ERRORED, TrialStatus.TERMINATED), start=2):
        trial = add_trial(h, job, m, number, status=status)
        with pytest.raises(Conflict, match=status.value):
            h.services.train_jobs.get_trial_parameters(dev, trial.id)


def test_an_iam_user_gets_its_own_copy_of_the_parameters_to_read_from_s3(h, dev, data):
    m = h.model(dev)
    done = add_trial(h, create(h, dev, data, [m.id])["id"], m, 1, score=0.5)
    h.fakes.blobs.put_bytes(done.params_key, b"npz bytes")
    out = h.services.train_jobs.get_trial_parameters(dev, done.id, iam_principal="arn:aws:iam::123456789012:user/alice")
    direct = out["direct"]
    assert direct["key"] == f"direct/alice/trials/{done.id}/params.npz" and direct["bucket"]
    assert h.fakes.blobs.objects[direct["key"]] == b"npz bytes"  # a server-side copy, under alice's prefix
    h.fakes.blobs.put_bytes(direct["key"], b"kept")  # made once: the parameters never change
    again = h.services.train_jobs.get_trial_parameters(dev, done.id, iam_principal="arn:aws:iam::123456789012:user/alice")
    assert again["direct"] == direct and h.fakes.blobs.objects[direct["key"]] == b"kept"
    role = h.services.train_jobs.get_trial_parameters(dev, done.id,
                                                      iam_principal="arn:aws:sts::123456789012:assumed-role/ml/s")
    assert role["direct"] is None


# -- stop --------------------------------------------------------------------------------------


def test_stopping_a_job_terminates_its_running_trials_and_stops_its_workers(h, dev, data):
    m = h.model(dev)
    job_id = create(h, dev, data, [m.id])["id"]
    done = add_trial(h, job_id, m, 1, score=0.5)
    running = add_trial(h, job_id, m, 2, status=TrialStatus.RUNNING)
    h.fakes.clock.advance(minutes=5)
    out = h.services.train_jobs.stop_train_job(dev, "app")
    assert out["status"] == "STOPPED" and out["datetime_stopped"] == h.fakes.clock.now.isoformat()
    assert h.fakes.trials.get(running.id).status is TrialStatus.TERMINATED
    assert h.fakes.trials.get(running.id).error_message == "stopped with the train job"
    assert h.fakes.trials.get(done.id).status is TrialStatus.COMPLETED
    job = h.fakes.train_jobs.get(job_id)
    assert all(w.status is WorkerStatus.STOPPED and w.stopped_at == h.fakes.clock.now for w in job.workers.values())
    assert sorted(arn for arn, _ in h.fakes.workflows.stopped) == sorted(w.execution_arn for w in job.workers.values())


def test_a_stopped_job_cannot_be_stopped_again(h, dev, data):
    create(h, dev, data, [h.model(dev).id])
    h.services.train_jobs.stop_train_job(dev, "app")
    h.fakes.workflows.stopped.clear()
    with pytest.raises(Conflict, match="already STOPPED"):
        h.services.train_jobs.stop_train_job(dev, "app")
    assert h.fakes.workflows.stopped == []


def test_stop_all_stops_only_live_jobs(h, dev, data):
    m = h.model(dev)
    live = [create(h, dev, data, [m.id], app=app)["id"] for app in ("a", "b")]
    ended = create(h, dev, data, [m.id], app="c")["id"]
    h.fakes.train_jobs.set_status(ended, TrainJobStatus.ERRORED, only_from=(TrainJobStatus.STARTED,))
    h.fakes.train_jobs.set_status(live[1], TrainJobStatus.RUNNING, only_from=(TrainJobStatus.STARTED,))
    assert h.services.train_jobs.stop_all_train_jobs() == 2
    assert [h.fakes.train_jobs.get(j).status for j in live] == [TrainJobStatus.STOPPED] * 2
    assert h.fakes.train_jobs.get(ended).status is TrainJobStatus.ERRORED


def test_train_args_too_large_for_the_workflow_are_refused_before_anything_starts(h, dev, data):
    from chalicelib.errors import PayloadTooLarge
    from chalicelib.services.trial_messages import TRAIN_ARGS_MAX_BYTES

    model = h.model(dev)
    # 30,000 'é' are 60 KB in UTF-8 but 180 KB as the workflow carries them (\u00e9 each)
    with pytest.raises(PayloadTooLarge) as e:
        h.services.train_jobs.create_train_job(dev, "app", TABULAR, data.id, data.id, {"MODEL_TRIAL_COUNT": 1},
                                               model_ids=[model.id], train_args={"note": "é" * 30_000})
    assert str(TRAIN_ARGS_MAX_BYTES) in e.value.message and "256 KiB" in e.value.message
    assert h.fakes.train_jobs.list_by_user(dev.id) == [] and h.fakes.workflows.started == {}
    ok = h.services.train_jobs.create_train_job(dev, "app", TABULAR, data.id, data.id, {"MODEL_TRIAL_COUNT": 1},
                                                model_ids=[model.id], train_args={"note": "é" * 1000})
    assert h.fakes.train_jobs.get(ok["id"]).train_args == {"note": "é" * 1000}
