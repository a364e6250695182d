"""One suite of repository behaviours, run against the pynamodb repositories under moto
("dynamodb") and the in-memory fakes of the unit tests ("memory"), so the fakes stay honest.

What is checked is what the services rely on: round trips, the conditional writes (duplicate
email / model name / API key / application, ``set_status`` only from ``only_from``,
``switch_version`` only from ``expected``, ``delete_unused`` refusing a used model,
``claim_fingerprint`` once, counters with limits, a trial's ``finish`` once), the orderings
the services use, and that what a caller holds is a copy.

The moto tables are provisioned once for the module; each test works on its own ids.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest

from chalicelib import ports
from chalicelib.entities import (
    AccessRight,
    ApiKey,
    Application,
    Dataset,
    DatasetStatus,
    InferenceJob,
    InferenceJobStatus,
    InputType,
    Model,
    ServingResult,
    Session,
    Task,
    TrainJob,
    TrainJobStatus,
    Trial,
    TrialStatus,
    User,
    UserType,
    Worker,
    WorkerStatus,
)
from chalicelib.errors import Conflict, NotFound
from settings_support import make_settings

from unit.services import fakes

UTC = timezone.utc
T0 = datetime(2026, 12, 1, 9, 0, 0, 123456, tzinfo=UTC)


def uid() -> str:
    return uuid.uuid4().hex[:12]


@dataclass
class Stores:
    backend: str
    users: Any
    sessions: Any
    api_keys: Any
    datasets: Any
    models: Any
    train_jobs: Any
    trials: Any
    counters: Any
    inference_jobs: Any
    apps: Any
    app_metrics: Any
    serving_results: Any
    now: list  # [epoch seconds] the serving-result store reads as its clock


@pytest.fixture(scope="module")
def moto_tables() -> Iterator[Any]:
    """Every table, in moto, for the whole module."""
    import functools

    import botocore.loaders
    import botocore.session
    from moto import mock_aws

    from chalicelib.local.provision import provision

    patch = pytest.MonkeyPatch()  # one botocore loader for every client (as tests/api does)
    patch.setattr(botocore.session, "create_loader", functools.lru_cache(maxsize=None)(botocore.loaders.create_loader))
    settings = make_settings()
    with mock_aws():
        provision(settings)
        yield settings
    patch.undo()


def _dynamodb_stores(settings: Any, now: list) -> Stores:
    import boto3

    from chalicelib import resources
    from chalicelib.store import models, queues, repositories, serving, train_jobs, users

    models.bind(settings.resource_name, settings.region)
    return Stores(
        backend="dynamodb",
        users=users.UserRepository(),
        sessions=repositories.SessionRepository(),
        api_keys=repositories.ApiKeyRepository(),
        datasets=repositories.DatasetRepository(),
        models=repositories.ModelRepository(),
        train_jobs=train_jobs.TrainJobRepository(),
        trials=train_jobs.TrialRepository(),
        counters=train_jobs.CounterRepository(),
        inference_jobs=serving.InferenceJobRepository(),
        apps=serving.ApplicationRepository(),
        app_metrics=serving.AppMetricsRepository(settings.resource_name(resources.APP_METRICS.name),
                                                 boto3.client("dynamodb", region_name=settings.region)),
        serving_results=queues.ServingResultRepository(now=lambda: now[0]),
        now=now,
    )


def _memory_stores(now: list) -> Stores:
    model_store = fakes.FakeModelStore()
    return Stores(
        backend="memory",
        users=fakes.FakeUserStore(),
        sessions=fakes.FakeSessionStore(),
        api_keys=fakes.FakeApiKeyStore(),
        datasets=fakes.FakeDatasetStore(),
        models=model_store,
        train_jobs=fakes.FakeTrainJobStore(model_store),
        trials=fakes.FakeTrialStore(),
        counters=fakes.FakeCounterStore(),
        inference_jobs=fakes.FakeInferenceJobStore(),
        apps=fakes.FakeApplicationStore(),
        app_metrics=fakes.FakeAppMetricsStore(),
        serving_results=fakes.FakeServingResultStore(now=lambda: now[0]),
        now=now,
    )


@pytest.fixture(params=["dynamodb", "memory"])
def stores(request) -> Stores:
    now = [T0.timestamp()]
    if request.param == "dynamodb":
        return _dynamodb_stores(request.getfixturevalue("moto_tables"), now)
    return _memory_stores(now)


# -- entities ----------------------------------------------------------------------------------


def a_user(email: str = "", created_at: datetime = T0, **changes: Any) -> User:
    return User(id=uid(), email=email or f"{uid()}@example.com", user_type=UserType.MODEL_DEVELOPER,
                password_hash="hash:pw", created_at=created_at, **changes)


def a_dataset(owner_id: str, created_at: datetime = T0, **changes: Any) -> Dataset:
    dataset_id = uid()
    values = dict(id=dataset_id, owner_id=owner_id, name="d", task=Task.TABULAR_CLASSIFICATION,
                  status=DatasetStatus.READY, object_key=f"datasets/{dataset_id}/data", created_at=created_at,
                  size_bytes=42, target_column="target", stats={"rows": 3, "columns": ["x1", "target"]})
    values.update(changes)
    return Dataset(**values)


def a_model(owner_id: str, name: str = "", created_at: datetime = T0, **changes: Any) -> Model:
    model_id = uid()
    values = dict(id=model_id, owner_id=owner_id, name=name or f"m-{uid()}", task=Task.TABULAR_CLASSIFICATION,
                  model_class="M", object_key=f"models/{model_id}/model.py", created_at=created_at,
                  dependencies={"scikit-learn": "1.5"})
    values.update(changes)
    return Model(**values)


def a_train_job(user_id: str, model_ids: list[str], app: str = "app", app_version: int = 1,
                created_at: datetime = T0, **changes: Any) -> TrainJob:
    job = TrainJob(id=uid(), user_id=user_id, app=app, app_version=app_version, task=Task.TABULAR_CLASSIFICATION,
                   train_dataset_id="d1", val_dataset_id="d2",
                   budget={"MODEL_TRIAL_COUNT": 5, "TIME_HOURS": 0.5, "GPU_COUNT": 0},
                   model_ids=model_ids, created_at=created_at, train_args={"epochs": 2, "tags": ["a"]}, **changes)
    for slot, model_id in enumerate(model_ids):
        worker = Worker(model_id, f"name-{model_id}", slot, started_at=created_at)
        job.workers[worker.key] = worker
    return job


def a_trial(job_id: str, model_id: str = "m1", number: int = 1, created_at: datetime = T0, **changes: Any) -> Trial:
    trial_id = uid()
    values = dict(id=trial_id, train_job_id=job_id, model_id=model_id, model_name="m", worker_key=f"{model_id}-0",
                  number=number, knobs={"x": 0.5, "depth": 3}, fingerprint=uid(), created_at=created_at,
                  status=TrialStatus.RUNNING, started_at=created_at,
                  params_key=f"trials/{trial_id}/params.npz", logs_key=f"trials/{trial_id}/logs.txt")
    values.update(changes)
    return Trial(**values)


def an_inference_job(user_id: str, app: str = "app", created_at: datetime = T0, **changes: Any) -> InferenceJob:
    job_id = uid()
    values = dict(id=job_id, user_id=user_id, app=app, app_version=1, train_job_id=uid(),
                  task=Task.TABULAR_CLASSIFICATION, endpoint_name=f"kilele-test-{job_id}",
                  bundle_key=f"bundles/{job_id}/bundle.tar.gz",
                  members=[{"id": "t1", "model_name": "m", "knobs": {"x": 0.5}, "score": 0.875}],
                  created_at=created_at, budget={"GPU_COUNT": 0}, predictor_url="http://x/apps/app/predict")
    values.update(changes)
    return InferenceJob(**values)


# -- users and sessions ------------------------------------------------------------------------


def test_user_round_trip_and_duplicate_email(stores):
    user = a_user()
    stores.users.add(user)
    assert stores.users.get(user.email) == user
    assert stores.users.get(f"nobody-{uid()}@example.com") is None
    with pytest.raises(Conflict):
        stores.users.add(replace(user, id=uid()))
    assert stores.users.get(user.email).id == user.id


def test_users_are_listed_oldest_first(stores):
    later, earlier = a_user(created_at=T0 + timedelta(seconds=5)), a_user(created_at=T0 - timedelta(seconds=5))
    stores.users.add(later)
    stores.users.add(earlier)
    mine = [u.email for u in stores.users.list() if u.email in (later.email, earlier.email)]
    assert mine == [earlier.email, later.email]


def test_a_user_is_banned_once(stores):
    user = a_user()
    stores.users.add(user)
    banned = stores.users.mark_banned(user.email, T0 + timedelta(hours=1))
    assert banned.banned_at == T0 + timedelta(hours=1) and banned.email == user.email and banned.id == user.id
    assert stores.users.get(user.email).is_banned
    with pytest.raises(Conflict):
        stores.users.mark_banned(user.email, T0 + timedelta(hours=2))
    assert stores.users.get(user.email).banned_at == T0 + timedelta(hours=1)
    with pytest.raises(Conflict):
        stores.users.mark_banned(f"nobody-{uid()}@example.com", T0)


def test_an_iam_principal_is_linked_to_one_user(stores):
    alice, bob = a_user(), a_user()
    stores.users.add(alice)
    stores.users.add(bob)
    role = f"arn:aws:iam::123456789012:role/ml-{uid()}"
    linked = stores.users.link_iam_principal(alice.email, role)
    assert linked.iam_principals == (role,) and linked.id == alice.id
    assert stores.users.link_iam_principal(alice.email, role).iam_principals == (role,)  # again: no change
    assert stores.users.get_by_iam_principal(role).email == alice.email
    assert stores.users.get(alice.email).iam_principals == (role,)
    with pytest.raises(Conflict):
        stores.users.link_iam_principal(bob.email, role)
    assert stores.users.get(bob.email).iam_principals == ()
    with pytest.raises(NotFound):
        stores.users.link_iam_principal(f"nobody-{uid()}@example.com", f"{role}-other")
    assert stores.users.get_by_iam_principal(f"{role}-other") is None


def test_an_unlinked_principal_no_longer_finds_its_user(stores):
    alice = a_user()
    stores.users.add(alice)
    user_arn = f"arn:aws:iam::123456789012:user/{uid()}"
    stores.users.link_iam_principal(alice.email, user_arn)
    with pytest.raises(NotFound):
        stores.users.unlink_iam_principal(alice.email, f"{user_arn}-never-linked")
    assert stores.users.unlink_iam_principal(alice.email, user_arn).iam_principals == ()
    assert stores.users.get_by_iam_principal(user_arn) is None
    with pytest.raises(NotFound):
        stores.users.unlink_iam_principal(alice.email, user_arn)


def test_what_a_caller_holds_is_a_copy(stores):
    user = a_user()
    stores.users.add(user)
    user.user_type = UserType.ADMIN  # the caller's object, changed after the write
    fetched = stores.users.get(user.email)
    assert fetched.user_type is UserType.MODEL_DEVELOPER
    fetched.password_hash = "changed"
    assert stores.users.get(user.email).password_hash == "hash:pw"


def test_a_session_lives_until_its_expiry_in_whole_seconds(stores):
    token = uid()
    expires = T0.replace(microsecond=500_000) + timedelta(hours=1)
    stores.sessions.add(Session(token, "a@example.com", T0, expires))
    live = stores.sessions.get_live(token, T0)
    assert live is not None and live.user_email == "a@example.com"
    assert live.expires_at == expires.replace(microsecond=0)  # kept as epoch seconds (the TTL attribute)
    assert stores.sessions.get_live(token, expires.replace(microsecond=0) - timedelta(seconds=1)) is not None
    assert stores.sessions.get_live(token, expires.replace(microsecond=200_000)) is None
    assert stores.sessions.get_live(uid(), T0) is None


def test_a_deleted_session_is_gone(stores):
    token = uid()
    stores.sessions.add(Session(token, "a@example.com", T0, T0 + timedelta(hours=1)))
    stores.sessions.delete(token)
    assert stores.sessions.get_live(token, T0) is None
    stores.sessions.delete(uid())  # deleting nothing is fine


# -- API keys ----------------------------------------------------------------------------------


def test_api_keys_round_trip_and_list_by_owner_oldest_first(stores):
    owner = f"{uid()}@example.com"
    second = ApiKey(uid(), owner, "second", "digest2", T0 + timedelta(minutes=1))
    first = ApiKey(uid(), owner, "first", "digest1", T0)
    other = ApiKey(uid(), f"{uid()}@example.com", "other", "digest3", T0)
    for key in (second, first, other):
        stores.api_keys.add(key)
    assert stores.api_keys.get(first.key_id) == first
    assert stores.api_keys.get(uid()) is None
    assert [k.name for k in stores.api_keys.list_by_owner(owner)] == ["first", "second"]


def test_only_the_owner_deletes_an_api_key(stores):
    owner = f"{uid()}@example.com"
    key = ApiKey(uid(), owner, "k", "digest", T0)
    stores.api_keys.add(key)
    with pytest.raises(NotFound):
        stores.api_keys.delete(key.key_id, "someone-else@example.com")
    assert stores.api_keys.get(key.key_id) is not None
    stores.api_keys.delete(key.key_id, owner)
    assert stores.api_keys.get(key.key_id) is None
    with pytest.raises(NotFound):
        stores.api_keys.delete(key.key_id, owner)


def test_a_duplicate_api_key_id_is_a_conflict(stores):
    key = ApiKey(uid(), f"{uid()}@example.com", "k", "digest", T0)
    stores.api_keys.add(key)
    with pytest.raises(Conflict):
        stores.api_keys.add(replace(key, name="again"))


# -- datasets ----------------------------------------------------------------------------------


def test_dataset_round_trip_and_overwrite(stores):
    dataset = a_dataset(uid(), status=DatasetStatus.UPLOADING, stats={})
    stores.datasets.save(dataset)
    assert stores.datasets.get(dataset.id) == dataset
    ready = replace(dataset, status=DatasetStatus.READY, size_bytes=99, stats={"rows": 3, "classes": {"a": 2}})
    stores.datasets.save(ready)
    assert stores.datasets.get(dataset.id) == ready
    assert stores.datasets.get(uid()) is None


def test_datasets_listed_are_ready_ones_oldest_first_by_owner_and_task(stores):
    owner, other = uid(), uid()
    newer = a_dataset(owner, created_at=T0 + timedelta(seconds=2))
    older = a_dataset(owner, created_at=T0)
    regression = a_dataset(owner, created_at=T0 + timedelta(seconds=1), task=Task.TABULAR_REGRESSION)
    uploading = a_dataset(owner, status=DatasetStatus.UPLOADING)
    theirs = a_dataset(other)
    for dataset in (newer, older, regression, uploading, theirs):
        stores.datasets.save(dataset)
    assert [d.id for d in stores.datasets.list(owner_id=owner)] == [older.id, regression.id, newer.id]
    assert [d.id for d in stores.datasets.list(owner_id=owner, task=Task.TABULAR_CLASSIFICATION)] == [older.id, newer.id]
    everyone = {d.id for d in stores.datasets.list()}
    assert {older.id, newer.id, regression.id, theirs.id} <= everyone and uploading.id not in everyone


def test_a_deleted_dataset_is_gone(stores):
    dataset = a_dataset(uid())
    stores.datasets.save(dataset)
    stores.datasets.delete(dataset.id)
    assert stores.datasets.get(dataset.id) is None


# -- models ------------------------------------------------------------------------------------


def test_model_round_trip_and_name_unique_per_owner(stores):
    owner = uid()
    model = a_model(owner, name="clf")
    stores.models.add(model)
    assert stores.models.get(model.id) == model
    assert stores.models.get(uid()) is None
    with pytest.raises(Conflict):
        stores.models.add(a_model(owner, name="clf"))
    stores.models.add(a_model(uid(), name="clf"))  # another owner may use the name


def test_own_and_public_models_each_once(stores):
    me, other = uid(), uid()
    mine_private = a_model(me)
    mine_public = a_model(me, access_right=AccessRight.PUBLIC)
    theirs_public = a_model(other, access_right=AccessRight.PUBLIC)
    theirs_private = a_model(other)
    for model in (mine_private, mine_public, theirs_public, theirs_private):
        stores.models.add(model)
    seen = [m.id for m in stores.models.list_own_and_public(me)]
    assert len(seen) == len(set(seen))
    assert {mine_private.id, mine_public.id, theirs_public.id} <= set(seen)
    assert theirs_private.id not in seen
    assert {m.id for m in (mine_private, theirs_private)} <= {m.id for m in stores.models.list_all()}


def test_an_unused_model_is_deleted_and_its_name_freed(stores):
    owner = uid()
    model = a_model(owner, name="clf")
    stores.models.add(model)
    stores.models.delete_unused(model)
    assert stores.models.get(model.id) is None
    stores.models.add(a_model(owner, name="clf"))


def test_a_model_used_by_a_train_job_is_not_deleted(stores):
    owner = uid()
    used, unused = a_model(owner), a_model(owner)
    stores.models.add(used)
    stores.models.add(unused)
    stores.train_jobs.add(a_train_job(owner, [used.id]))
    assert stores.models.get(used.id).train_job_count == 1
    assert stores.models.get(unused.id).train_job_count == 0
    with pytest.raises(Conflict):
        stores.models.delete_unused(used)
    assert stores.models.get(used.id) is not None
    with pytest.raises(Conflict):  # nor a model that is gone
        stores.models.delete_unused(a_model(owner))


def test_a_train_job_of_a_missing_model_is_not_stored(stores):
    owner = uid()
    model = a_model(owner)
    stores.models.add(model)
    job = a_train_job(owner, [model.id, uid()])
    with pytest.raises(Conflict):
        stores.train_jobs.add(job)
    assert stores.train_jobs.get(job.id) is None
    assert stores.models.get(model.id).train_job_count == 0


def test_knob_config_is_set_on_the_model(stores):
    model = a_model(uid())
    stores.models.add(model)
    assert stores.models.get(model.id).knob_config is None
    config = {"x": {"type": "float", "value_min": 0.0, "value_max": 1.0, "is_exp": False}}
    stores.models.set_knob_config(model.id, config)
    assert stores.models.get(model.id).knob_config == config


# -- counters ----------------------------------------------------------------------------------


def test_counters_count_up_to_their_limit(stores):
    key, other = f"test#{uid()}", f"test#{uid()}"
    assert [stores.counters.increment(key) for _ in range(3)] == [1, 2, 3]
    assert [stores.counters.increment(other, limit=2) for _ in range(4)] == [1, 2, None, None]
    assert stores.counters.increment(other) == 3  # a refused step changed nothing


# -- train jobs --------------------------------------------------------------------------------


def test_train_job_round_trip(stores):
    owner = uid()
    model = a_model(owner)
    stores.models.add(model)
    job = a_train_job(owner, [model.id])
    stores.train_jobs.add(job)
    assert stores.train_jobs.get(job.id) == job
    assert stores.train_jobs.get(uid()) is None


def test_train_jobs_by_user_oldest_first_and_of_app_by_version(stores):
    owner = uid()
    model = a_model(owner)
    stores.models.add(model)
    v2 = a_train_job(owner, [model.id], app_version=2, created_at=T0 + timedelta(seconds=1))
    v1 = a_train_job(owner, [model.id], app_version=1, created_at=T0 + timedelta(seconds=2))
    other_app = a_train_job(owner, [model.id], app="other", created_at=T0)
    for job in (v2, v1, other_app):
        stores.train_jobs.add(job)
    assert [j.id for j in stores.train_jobs.list_by_user(owner)] == [other_app.id, v2.id, v1.id]
    assert [j.app_version for j in stores.train_jobs.list_of_app(owner, "app")] == [1, 2]
    assert stores.train_jobs.list_of_app(uid(), "app") == []
    assert {v1.id, v2.id, other_app.id} <= {j.id for j in stores.train_jobs.list_all()}


def test_train_job_status_changes_only_from_the_given_statuses(stores):
    owner = uid()
    model = a_model(owner)
    stores.models.add(model)
    job = a_train_job(owner, [model.id])
    stores.train_jobs.add(job)
    at = T0 + timedelta(minutes=5)
    assert stores.train_jobs.set_status(job.id, TrainJobStatus.RUNNING, only_from=(TrainJobStatus.STARTED,), at=at)
    assert stores.train_jobs.get(job.id).stopped_at is None  # not final: no stop time
    assert not stores.train_jobs.set_status(job.id, TrainJobStatus.RUNNING, only_from=(TrainJobStatus.STARTED,))
    assert stores.train_jobs.set_status(job.id, TrainJobStatus.ERRORED,
                                        only_from=(TrainJobStatus.STARTED, TrainJobStatus.RUNNING),
                                        at=at, error="boom " * 1000)
    stored = stores.train_jobs.get(job.id)
    assert (stored.status, stored.stopped_at, len(stored.error)) == (TrainJobStatus.ERRORED, at, 2000)
    assert not stores.train_jobs.set_status(job.id, TrainJobStatus.STOPPED,
                                            only_from=(TrainJobStatus.STARTED, TrainJobStatus.RUNNING),
                                            at=at + timedelta(minutes=1))
    assert stores.train_jobs.get(job.id).status is TrainJobStatus.ERRORED
    assert not stores.train_jobs.set_status(uid(), TrainJobStatus.STOPPED, only_from=(TrainJobStatus.STARTED,))


def test_workers_are_put_and_updated(stores):
    owner = uid()
    model = a_model(owner)
    stores.models.add(model)
    job = a_train_job(owner, [model.id])
    stores.train_jobs.add(job)
    extra = Worker(model.id, model.name, 7, started_at=T0)
    stores.train_jobs.put_worker(job.id, extra)
    at = T0 + timedelta(minutes=3)
    stores.train_jobs.update_worker(job.id, extra.key, status=WorkerStatus.ERRORED, stopped_at=at,
                                    error="it broke", execution_arn="arn:x")
    stored = stores.train_jobs.get(job.id).workers
    assert set(stored) == set(job.workers) | {extra.key}
    assert stored[extra.key] == replace(extra, status=WorkerStatus.ERRORED, stopped_at=at, error="it broke",
                                        execution_arn="arn:x")
    first = next(iter(job.workers))
    assert stored[first] == job.workers[first]


# -- trials ------------------------------------------------------------------------------------


def test_a_fingerprint_is_claimed_once_per_job_and_model(stores):
    job, fingerprint = uid(), uid()
    assert stores.trials.claim_fingerprint(job, "m1", fingerprint, "t1")
    assert not stores.trials.claim_fingerprint(job, "m1", fingerprint, "t2")
    assert stores.trials.claim_fingerprint(job, "m2", fingerprint, "t3")
    assert stores.trials.claim_fingerprint(uid(), "m1", fingerprint, "t4")


def test_trial_round_trip_and_job_trials_oldest_first(stores):
    job = uid()
    late = a_trial(job, number=2, created_at=T0 + timedelta(seconds=2))
    early = a_trial(job, number=1, created_at=T0 + timedelta(seconds=1))
    elsewhere = a_trial(uid())
    for trial in (late, early, elsewhere):
        stores.trials.add(trial)
    assert stores.trials.get(early.id) == early
    assert stores.trials.get(uid()) is None
    assert [t.id for t in stores.trials.list_of_job(job)] == [early.id, late.id]


def test_a_model_check_record_round_trips_marked(stores):
    check = a_trial(uid(), number=0, knobs={}, model_check=True, params_key=None, logs_key="describe/m1/d/logs.txt")
    stores.trials.add(check)
    assert stores.trials.get(check.id) == check and stores.trials.get(check.id).model_check is True


def test_a_trial_finishes_once(stores):
    trial = a_trial(uid())
    stores.trials.add(trial)
    at = T0 + timedelta(minutes=2)
    actual_start = "2026-12-01T09:00:30+00:00"  # a stored value, as the trial loop passes it
    assert stores.trials.finish(trial.id, TrialStatus.COMPLETED, at, score=0.75, model_seconds=12.5,
                                worker_seconds=None, started_at=actual_start)
    done = stores.trials.get(trial.id)
    assert (done.status, done.stopped_at, done.score, done.model_seconds) == (TrialStatus.COMPLETED, at, 0.75, 12.5)
    assert done.started_at == datetime(2026, 12, 1, 9, 0, 30, tzinfo=UTC)
    assert done.worker_seconds is None and done.params_key == trial.params_key  # None leaves a field as it was
    assert not stores.trials.finish(trial.id, TrialStatus.TERMINATED, at + timedelta(minutes=1),
                                    error_message="stopped")
    again = stores.trials.get(trial.id)
    assert (again.status, again.stopped_at, again.error_message) == (TrialStatus.COMPLETED, at, None)
    assert not stores.trials.finish(uid(), TrialStatus.ERRORED, at)


def test_a_trial_finishes_from_the_given_statuses_only(stores):
    trial = a_trial(uid(), status=TrialStatus.COMPLETED)
    stores.trials.add(trial)
    assert not stores.trials.finish(trial.id, TrialStatus.ERRORED, T0, only_from=(TrialStatus.RUNNING,))
    assert stores.trials.finish(trial.id, TrialStatus.ERRORED, T0, only_from=(TrialStatus.COMPLETED,),
                                error_type="Boom", error_message="late failure")
    stored = stores.trials.get(trial.id)
    assert (stored.status, stored.error_type, stored.error_message) == (TrialStatus.ERRORED, "Boom", "late failure")


# -- inference jobs ----------------------------------------------------------------------------


def test_inference_job_round_trip_and_listings(stores):
    owner = uid()
    later = an_inference_job(owner, created_at=T0 + timedelta(seconds=2))
    earlier = an_inference_job(owner, created_at=T0 + timedelta(seconds=1), status=InferenceJobStatus.RUNNING)
    stopped = an_inference_job(owner, created_at=T0, status=InferenceJobStatus.STOPPED)
    other_app = an_inference_job(owner, app="other", created_at=T0 + timedelta(seconds=3))
    for job in (later, earlier, stopped, other_app):
        stores.inference_jobs.add(job)
    assert stores.inference_jobs.get(earlier.id) == earlier
    assert stores.inference_jobs.get(uid()) is None
    assert [j.id for j in stores.inference_jobs.list_of_app(owner, "app")] == [stopped.id, earlier.id, later.id]
    assert [j.id for j in stores.inference_jobs.list_live_of_app(owner, "app")] == [earlier.id, later.id]
    assert [j.id for j in stores.inference_jobs.list_by_user(owner)] == [stopped.id, earlier.id, later.id,
                                                                          other_app.id]
    assert {j.id for j in (later, stopped)} <= {j.id for j in stores.inference_jobs.list_all()}


def test_inference_job_status_changes_only_from_the_given_statuses(stores):
    job = an_inference_job(uid())
    stores.inference_jobs.add(job)
    live = (InferenceJobStatus.STARTED, InferenceJobStatus.RUNNING)
    assert stores.inference_jobs.set_status(job.id, InferenceJobStatus.RUNNING, (InferenceJobStatus.STARTED,))
    assert not stores.inference_jobs.set_status(job.id, InferenceJobStatus.RUNNING, (InferenceJobStatus.STARTED,))
    at = T0 + timedelta(hours=1)
    assert stores.inference_jobs.set_status(job.id, InferenceJobStatus.ERRORED, live, at=at, error="endpoint failed")
    stored = stores.inference_jobs.get(job.id)
    assert (stored.status, stored.stopped_at, stored.error) == (InferenceJobStatus.ERRORED, at, "endpoint failed")
    assert not stores.inference_jobs.set_status(job.id, InferenceJobStatus.STOPPED, live, at=at)
    assert not stores.inference_jobs.set_status(uid(), InferenceJobStatus.STOPPED, live)


def test_inference_job_restarts_are_recorded_and_replaced(stores):
    job = an_inference_job(uid())
    stores.inference_jobs.add(job)
    assert (stores.inference_jobs.get(job.id).restarts, stores.inference_jobs.get(job.id).last_restart) == (None, None)
    last = {"reason": "the inference server exited with code -9: ...", "at": "2026-12-01T10:00:05+00:00"}
    stores.inference_jobs.set_restarts(job.id, 2, last)
    stored = stores.inference_jobs.get(job.id)
    assert (stored.restarts, stored.last_restart, stored.status) == (2, last, job.status)
    stores.inference_jobs.set_restarts(job.id, 0, None)  # an endpoint deployed afresh
    assert (stores.inference_jobs.get(job.id).restarts, stores.inference_jobs.get(job.id).last_restart) == (0, None)
    missing = uid()
    stores.inference_jobs.set_restarts(missing, 1, last)  # no such job: nothing is created
    assert stores.inference_jobs.get(missing) is None


# -- applications ------------------------------------------------------------------------------


def test_application_round_trip_duplicate_and_listing(stores):
    owner = uid()
    second = Application(owner, "b", T0 + timedelta(seconds=1), InputType.FLOATS, [0.5, "x"], 20_000, 3)
    first = Application(owner, "a", T0, None, None)
    for app in (second, first):
        stores.apps.add(app)
    assert stores.apps.get(owner, "b") == second
    assert stores.apps.get(owner, "a") == first
    assert stores.apps.get(owner, "c") is None
    with pytest.raises(Conflict):
        stores.apps.add(replace(first, slo_micros=5))
    assert [a.name for a in stores.apps.list_of_user(owner)] == ["a", "b"]
    stores.apps.save(replace(first, slo_micros=7, default_output={"label": "none"}))
    assert (stores.apps.get(owner, "a").slo_micros, stores.apps.get(owner, "a").default_output) == (
        7, {"label": "none"})
    stores.apps.delete(owner, "a")
    assert stores.apps.get(owner, "a") is None


def test_an_application_switches_version_only_from_the_expected_one(stores):
    owner = uid()
    stores.apps.add(Application(owner, "app", T0))
    assert stores.apps.switch_version(owner, "app", 3, expected=None)
    stored = stores.apps.get(owner, "app")
    assert (stored.version, stored.previous_version) == (3, -1)
    assert not stores.apps.switch_version(owner, "app", 4, expected=2)
    assert not stores.apps.switch_version(owner, "app", 4, expected=None)
    assert stores.apps.get(owner, "app").version == 3
    assert stores.apps.switch_version(owner, "app", None, expected=3)
    stored = stores.apps.get(owner, "app")
    assert (stored.version, stored.previous_version) == (None, 3)
    assert not stores.apps.switch_version(owner, "missing", 1, expected=None)


# -- app metrics and serving results -----------------------------------------------------------


def test_app_metrics_sum_a_window(stores):
    app = f"{uid()}#app"
    now = datetime.now(UTC).replace(second=30)  # the real store skips rows whose retention has passed
    stores.app_metrics.record(app, now - timedelta(minutes=10), 5.0, 1, error=False, default=False)
    stores.app_metrics.record(app, now, 5.0, 3, error=True, default=False, batch_size=8)
    stores.app_metrics.record(app, now, 900.0, 2, error=False, default=True)
    stores.app_metrics.record(f"{uid()}#other", now, 5.0, 1, error=False, default=False)
    window = stores.app_metrics.window(app, now - timedelta(minutes=1))
    assert {k: window[k] for k in ("requests", "queries", "errors", "defaults", "batches", "batch_size_sum")} == {
        "requests": 2, "queries": 5, "errors": 1, "defaults": 1, "batches": 1, "batch_size_sum": 8}
    assert sum(window["histogram"]) == 2
    assert stores.app_metrics.window(app, now - timedelta(hours=1))["requests"] == 3


def _result(key: str, uri: str, created_at: datetime = T0, ttl: int = 60, **changes: Any) -> ServingResult:
    values: dict[str, Any] = dict(queue_key=key, uri=uri, status="ok", created_at=created_at,
                                  expires_at=int(created_at.timestamp()) + ttl, value="[1]")
    values.update(changes)
    return ServingResult(**values)


def test_serving_results_round_trip_listing_and_expiry(stores):
    key = f"{uid()}#q"
    results = [_result(key, "b"), _result(key, "a", ttl=10),
               _result(key, "c", status="error", value=None, error="bad", default=True)]
    stores.serving_results.put_many(results)
    stores.serving_results.put_many([_result(f"{uid()}#q", "a")])
    assert stores.serving_results.get(key, "c") == results[2]
    assert [r.uri for r in stores.serving_results.list(key)] == ["a", "b", "c"]
    stores.now[0] = T0.timestamp() + 10  # "a" has expired
    assert stores.serving_results.get(key, "a") is None
    assert [r.uri for r in stores.serving_results.list(key)] == ["b", "c"]


def test_a_serving_result_is_taken_once_and_only_if_unchanged(stores):
    key = f"{uid()}#q"
    old = _result(key, "u")
    stores.serving_results.put_many([old])
    assert stores.serving_results.take(old)
    assert not stores.serving_results.take(old)
    assert stores.serving_results.get(key, "u") is None
    stores.serving_results.put_many([old])
    newer = _result(key, "u", created_at=T0 + timedelta(seconds=1), value="[2]")
    stores.serving_results.put_many([newer])
    assert not stores.serving_results.take(old)  # replaced meanwhile: the newer one stays
    assert stores.serving_results.get(key, "u").value == "[2]"


# -- an app's serving record (its live inference jobs, on the app's row) -----------------------

needs_serving_record = pytest.mark.skipif(
    not hasattr(ports, "ServingState"), reason="the app serving record (ApplicationStore.serving_state) has not landed")



@needs_serving_record
def test_an_apps_serving_record_lives_beside_its_registration(stores):
    owner = uid()
    empty = stores.apps.serving_state(owner, "app")
    assert (empty.app, empty.live_job_ids, empty.tracked) == (None, frozenset(), False)
    stores.apps.add_live_jobs(owner, "app", ["j1", "j2"])  # jobs may come before a registration
    state = stores.apps.serving_state(owner, "app")
    assert (state.app, state.live_job_ids, state.tracked) == (None, frozenset({"j1", "j2"}), True)
    assert stores.apps.get(owner, "app") is None and stores.apps.list_of_user(owner) == []
    app = Application(owner, "app", T0, InputType.FLOATS, "none", 30_000)
    stores.apps.add(app)
    state = stores.apps.serving_state(owner, "app")
    assert (state.app, state.live_job_ids) == (app, frozenset({"j1", "j2"}))
    with pytest.raises(Conflict):
        stores.apps.add(app)
    stores.apps.remove_live_job(owner, "app", "j1")
    stores.apps.remove_live_job(owner, "app", "j-unknown")
    stores.apps.add_live_jobs(owner, "app", ["j3"])
    assert stores.apps.serving_state(owner, "app").live_job_ids == frozenset({"j2", "j3"})


@needs_serving_record
def test_unregistering_keeps_the_live_jobs_and_a_row_without_any_goes(stores):
    owner = uid()
    stores.apps.add(Application(owner, "served", T0))
    stores.apps.add_live_jobs(owner, "served", ["j1"])
    stores.apps.delete(owner, "served")
    state = stores.apps.serving_state(owner, "served")
    assert (state.app, state.live_job_ids, state.tracked) == (None, frozenset({"j1"}), True)
    stores.apps.add(Application(owner, "served", T0 + timedelta(seconds=1)))  # registered again
    assert stores.apps.serving_state(owner, "served").live_job_ids == frozenset({"j1"})

    stores.apps.add(Application(owner, "idle", T0))
    stores.apps.add_live_jobs(owner, "idle", [])
    stores.apps.delete(owner, "idle")
    state = stores.apps.serving_state(owner, "idle")
    assert (state.app, state.live_job_ids, state.tracked) == (None, frozenset(), False)
    stores.apps.remove_live_job(owner, "missing", "j1")  # no row: nothing to forget
    stores.apps.delete(owner, "missing")


@needs_serving_record
def test_saving_an_application_keeps_its_version_and_needs_a_registration(stores):
    owner = uid()
    app = Application(owner, "app", T0, slo_micros=10)
    stores.apps.add(app)
    assert stores.apps.switch_version(owner, "app", 2, expected=None)
    stores.apps.save(replace(app, slo_micros=20, version=None, previous_version=None))
    stored = stores.apps.get(owner, "app")
    assert (stored.slo_micros, stored.version, stored.previous_version) == (20, 2, -1)
    with pytest.raises(Conflict):
        stores.apps.save(Application(owner, "never-registered", T0))
    assert stores.apps.get(owner, "never-registered") is None
    stores.apps.add_live_jobs(owner, "serving-only", ["j1"])
    assert not stores.apps.switch_version(owner, "serving-only", 1, expected=None)


@needs_serving_record
def test_a_minute_of_buffered_counts_is_added_at_once(stores):
    app = f"{uid()}#app"
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    minute = int(now.timestamp() // 60)
    stores.app_metrics.add_minute(app, minute, {"requests": 3, "queries": 7, "errors": 1, "defaults": 0}, {2: 2, 9: 1})
    stores.app_metrics.record(app, now + timedelta(seconds=20), 5.0, 1, error=False, default=True, batch_size=4)
    window = stores.app_metrics.window(app, now)
    assert {k: window[k] for k in ("requests", "queries", "errors", "defaults", "batches", "batch_size_sum")} == {
        "requests": 4, "queries": 8, "errors": 1, "defaults": 1, "batches": 1, "batch_size_sum": 4}
    assert (window["histogram"][2], window["histogram"][9], sum(window["histogram"])) == (2, 1, 4)


# -- projects and stress-test jobs (seed 002) ----------------------------------------------------


@dataclass
class StressStores:
    backend: str
    projects: Any
    jobs: Any


@pytest.fixture(params=["dynamodb", "memory"])
def stress_stores(request) -> StressStores:
    if request.param == "memory":
        return StressStores("memory", fakes.FakeProjectStore(), fakes.FakeStressTestJobStore())
    settings = request.getfixturevalue("moto_tables")
    from chalicelib.store import models, stress

    models.bind(settings.resource_name, settings.region)
    return StressStores("dynamodb", stress.ProjectRepository(), stress.StressTestJobRepository())


def a_project(owner_id: str, name: str = "p", created_at: datetime = T0) -> "Project":
    from chalicelib.entities import Project

    return Project(id=uid(), owner_id=owner_id, name=name, description="d", created_at=created_at)


def a_stress_job(owner_id: str, created_at: datetime = T0, **changes: Any) -> "StressTestJob":
    from chalicelib.entities import StressTestJob

    job = StressTestJob(id=uid(), owner_id=owner_id, project_id="p1", name="run", created_at=created_at,
                        expires_at=(created_at + timedelta(days=2)).replace(microsecond=0), test_run_id=uid(),
                        config={"data_info": {"label_col": "y", "ref_path": "k/ref.csv", "eval_path": "k/eval.csv"},
                                "tests_config": {"numeric_drift": {"thresholds": [0.1, None, 0.6]}}},
                        custom_image={"name": "img", "pull_secret": None}, logs_key="stress/x/logs.txt")
    return replace(job, **changes)


def test_projects_round_trip_by_owner_and_name(stress_stores):
    owner, other = uid(), uid()
    first, second = a_project(owner, "a", T0), a_project(owner, "b", T0 + timedelta(seconds=1))
    for project in (second, first, a_project(other, "a")):
        stress_stores.projects.add(project)
    assert stress_stores.projects.get(first.id) == first
    assert stress_stores.projects.get("missing") is None
    assert stress_stores.projects.get_by_name(owner, "b") == second
    assert stress_stores.projects.get_by_name(owner, "c") is None
    assert [p.id for p in stress_stores.projects.list_by_owner(owner)] == [first.id, second.id]
    assert {first.id, second.id} <= {p.id for p in stress_stores.projects.list_all()}


def test_a_project_name_is_unique_per_owner(stress_stores):
    owner = uid()
    stress_stores.projects.add(a_project(owner, "same"))
    with pytest.raises(Conflict):
        stress_stores.projects.add(a_project(owner, "same"))
    assert len(stress_stores.projects.list_by_owner(owner)) == 1


def test_stress_jobs_round_trip_and_expire_on_read(stress_stores):
    from chalicelib.entities import StressTestStatus

    owner = uid()
    old, new = a_stress_job(owner, T0), a_stress_job(owner, T0 + timedelta(hours=1))
    stress_stores.jobs.add(old)
    stress_stores.jobs.add(new)
    assert stress_stores.jobs.get(old.id, T0) == old
    assert [j.id for j in stress_stores.jobs.list_by_owner(owner, T0)] == [new.id, old.id]
    later = T0 + timedelta(days=2, minutes=1)
    assert stress_stores.jobs.get(old.id, later) is None and stress_stores.jobs.get(new.id, later) == new
    assert [j.id for j in stress_stores.jobs.list_by_owner(owner, later)] == [new.id]
    assert old.id not in {j.id for j in stress_stores.jobs.list_all(later)}
    assert stress_stores.jobs.get(old.id, T0).status is StressTestStatus.PENDING


def test_stress_job_status_changes_only_from_the_given_statuses(stress_stores):
    from chalicelib.entities import StressTestStatus as S

    job = a_stress_job(uid())
    stress_stores.jobs.add(job)
    assert stress_stores.jobs.set_status(job.id, S.RUNNING, only_from=(S.PENDING,), started_at=T0, progress="go")
    assert not stress_stores.jobs.set_status(job.id, S.RUNNING, only_from=(S.PENDING,))
    done = T0 + timedelta(minutes=3)
    assert stress_stores.jobs.set_status(job.id, S.SUCCEEDED, only_from=(S.RUNNING,), finished_at=done,
                                         summary={"num_test_cases": 3, "status_counts": {"pass": 3}})
    stress_stores.jobs.update(job.id, execution_arn="arn:x")
    stored = stress_stores.jobs.get(job.id, T0)
    assert (stored.status, stored.started_at, stored.finished_at, stored.progress, stored.execution_arn) == (
        S.SUCCEEDED, T0, done, "go", "arn:x")
    assert stored.summary == {"num_test_cases": 3, "status_counts": {"pass": 3}}
    assert stored.running_time_secs(T0 + timedelta(days=1)) == 180.0


def test_budget_numbers_keep_their_types(stores):
    """A count stays an int and hours a float (DynamoDB hands numbers back as Decimal)."""
    owner = uid()
    job = a_train_job(owner, [])  # budget MODEL_TRIAL_COUNT 5, TIME_HOURS 0.5, GPU_COUNT 0
    stores.train_jobs.add(job)
    budget = stores.train_jobs.get(job.id).budget
    assert budget == {"MODEL_TRIAL_COUNT": 5, "TIME_HOURS": 0.5, "GPU_COUNT": 0}
    assert {k: type(v) for k, v in budget.items()} == {"MODEL_TRIAL_COUNT": int, "TIME_HOURS": float,
                                                        "GPU_COUNT": int}
