"""pynamodb models: with :mod:`chalicelib.store.models_rime`, the only modules that define
DynamoDB items.

Table names come from chalicelib/resources.py and are bound to a stage (and an endpoint, for
the local stack) by :func:`bind`, which the composition root calls when it builds the services;
an unbound model refuses to talk to DynamoDB.
"""
from __future__ import annotations

from typing import Callable, Optional

from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.connection import Connection
from pynamodb.indexes import GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib import resources
from chalicelib.store.model_meta import index_meta as _index_meta, table_meta as _meta
# The stress-test and image records live beside these; imported here for ALL_MODELS.
from chalicelib.store.models_rime import ImageBuildItem, ManagedImageItem, ProjectItem, StressTestItem


class UserItem(Model):
    Meta = _meta(resources.USERS)

    class ById(GlobalSecondaryIndex):
        Meta = _index_meta("by_id")
        id = UnicodeAttribute(hash_key=True)

    email = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute()
    user_type = UnicodeAttribute()
    password_hash = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    banned_at = UTCDateTimeAttribute(null=True)
    iam_principals = UnicodeSetAttribute(null=True)  # DynamoDB drops an empty set
    by_id = ById()


class SessionItem(Model):
    Meta = _meta(resources.SESSIONS)

    token_hash = UnicodeAttribute(hash_key=True)
    user_email = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    # Epoch seconds: DynamoDB's TTL needs a number. Readers still check it, since TTL deletion
    # lags by up to days on AWS and never happens in moto.
    expires_at = NumberAttribute()


class ApiKeyItem(Model):
    Meta = _meta(resources.API_KEYS)

    class ByOwner(GlobalSecondaryIndex):
        Meta = _index_meta("by_owner")
        owner_email = UnicodeAttribute(hash_key=True)
        created_at = UnicodeAttribute(range_key=True)

    key_id = UnicodeAttribute(hash_key=True)
    owner_email = UnicodeAttribute()
    name = UnicodeAttribute()
    secret_hash = UnicodeAttribute()
    created_at = UnicodeAttribute()  # ISO-8601, sortable, used as the index range key
    by_owner = ByOwner()


class DatasetItem(Model):
    Meta = _meta(resources.DATASETS)

    class ByOwner(GlobalSecondaryIndex):
        Meta = _index_meta("by_owner")
        owner_id = UnicodeAttribute(hash_key=True)
        created_at = UnicodeAttribute(range_key=True)

    id = UnicodeAttribute(hash_key=True)
    owner_id = UnicodeAttribute()
    name = UnicodeAttribute()
    task = UnicodeAttribute()
    status = UnicodeAttribute()
    object_key = UnicodeAttribute()
    created_at = UnicodeAttribute()
    size_bytes = NumberAttribute(default=0)
    target_column = UnicodeAttribute(null=True)
    stats = MapAttribute(default=dict)
    error = UnicodeAttribute(null=True)
    check_started_at = UnicodeAttribute(null=True)
    by_owner = ByOwner()


class ModelItem(Model):
    Meta = _meta(resources.MODELS)

    class ByOwner(GlobalSecondaryIndex):
        Meta = _index_meta("by_owner")
        owner_id = UnicodeAttribute(hash_key=True)
        created_at = UnicodeAttribute(range_key=True)

    class ByAccess(GlobalSecondaryIndex):
        Meta = _index_meta("by_access")
        access_right = UnicodeAttribute(hash_key=True)
        created_at = UnicodeAttribute(range_key=True)

    id = UnicodeAttribute(hash_key=True)
    owner_id = UnicodeAttribute()
    name = UnicodeAttribute()
    task = UnicodeAttribute()
    model_class = UnicodeAttribute()
    object_key = UnicodeAttribute()
    created_at = UnicodeAttribute()
    access_right = UnicodeAttribute()
    dependencies = MapAttribute(default=dict)
    docker_image = UnicodeAttribute(null=True)
    image = UnicodeAttribute(null=True)  # the managed image its dependencies resolved to
    train_job_count = NumberAttribute(default=0)
    # The model's get_knob_config() as JSON, learnt from the worker the first time it is trained
    # (the API never imports model code).
    knob_config = MapAttribute(null=True)
    by_owner = ByOwner()
    by_access = ByAccess()


class UniqueItem(Model):
    """A claimed unique value (``kind#scope#value``), written in the transaction it guards."""

    Meta = _meta(resources.UNIQUES)

    key = UnicodeAttribute(hash_key=True)
    owner = UnicodeAttribute()


class TrainJobItem(Model):
    Meta = _meta(resources.TRAIN_JOBS)

    class ByUser(GlobalSecondaryIndex):
        Meta = _index_meta("by_user")
        user_id = UnicodeAttribute(hash_key=True)
        created_at = UnicodeAttribute(range_key=True)

    class ByApp(GlobalSecondaryIndex):
        Meta = _index_meta("by_app")
        user_app = UnicodeAttribute(hash_key=True)
        app_version = NumberAttribute(range_key=True)

    id = UnicodeAttribute(hash_key=True)
    user_id = UnicodeAttribute()
    user_app = UnicodeAttribute()
    app = UnicodeAttribute()
    app_version = NumberAttribute()
    task = UnicodeAttribute()
    train_dataset_id = UnicodeAttribute()
    val_dataset_id = UnicodeAttribute()
    budget = MapAttribute(default=dict)
    model_ids = ListAttribute(of=UnicodeAttribute, default=list)
    train_args = MapAttribute(default=dict)
    status = UnicodeAttribute()
    created_at = UnicodeAttribute()
    stopped_at = UnicodeAttribute(null=True)
    error = UnicodeAttribute(null=True)
    # worker key -> {model_id, model_name, slot, status, execution_arn, started_at, stopped_at, error}
    workers = MapAttribute(default=dict)
    by_user = ByUser()
    by_app = ByApp()


class TrialItem(Model):
    Meta = _meta(resources.TRIALS)

    class ByJob(GlobalSecondaryIndex):
        Meta = _index_meta("by_job")
        train_job_id = UnicodeAttribute(hash_key=True)
        created_at = UnicodeAttribute(range_key=True)

    id = UnicodeAttribute(hash_key=True)
    train_job_id = UnicodeAttribute()
    model_id = UnicodeAttribute()
    model_name = UnicodeAttribute()
    worker_key = UnicodeAttribute()
    number = NumberAttribute()
    knobs = MapAttribute(default=dict)
    fingerprint = UnicodeAttribute()
    created_at = UnicodeAttribute()
    status = UnicodeAttribute()
    screening = BooleanAttribute(default=False)
    model_check = BooleanAttribute(default=False)
    score = NumberAttribute(null=True)
    started_at = UnicodeAttribute(null=True)
    stopped_at = UnicodeAttribute(null=True)
    model_seconds = NumberAttribute(null=True)
    worker_seconds = NumberAttribute(null=True)
    params_key = UnicodeAttribute(null=True)
    logs_key = UnicodeAttribute(null=True)
    onnx_key = UnicodeAttribute(null=True)
    error_type = UnicodeAttribute(null=True)
    error_message = UnicodeAttribute(null=True)
    by_job = ByJob()


class CounterItem(Model):
    """An atomic counter (DynamoDB ADD on a top-level number)."""

    Meta = _meta(resources.COUNTERS)

    key = UnicodeAttribute(hash_key=True)
    value = NumberAttribute(default=0)


class InferenceJobItem(Model):
    Meta = _meta(resources.INFERENCE_JOBS)

    class ByUser(GlobalSecondaryIndex):
        Meta = _index_meta("by_user")
        user_id = UnicodeAttribute(hash_key=True)
        created_at = UnicodeAttribute(range_key=True)

    class ByApp(GlobalSecondaryIndex):
        Meta = _index_meta("by_app")
        user_app = UnicodeAttribute(hash_key=True)
        created_at = UnicodeAttribute(range_key=True)

    id = UnicodeAttribute(hash_key=True)
    user_id = UnicodeAttribute()
    user_app = UnicodeAttribute()
    app = UnicodeAttribute()
    app_version = NumberAttribute()
    train_job_id = UnicodeAttribute()
    task = UnicodeAttribute()
    endpoint_name = UnicodeAttribute()
    bundle_key = UnicodeAttribute()
    members = ListAttribute(default=list)
    created_at = UnicodeAttribute()
    status = UnicodeAttribute()
    budget = MapAttribute(default=dict)
    predictor_url = UnicodeAttribute(null=True)
    stopped_at = UnicodeAttribute(null=True)
    error = UnicodeAttribute(null=True)
    restarts = NumberAttribute(null=True)  # the endpoint's restarts (None: its runner cannot say)
    last_restart = MapAttribute(null=True)  # {"reason", "at"}
    by_user = ByUser()
    by_app = ByApp()


class AppItem(Model):
    Meta = _meta(resources.APPS)

    user_app = UnicodeAttribute(hash_key=True)
    user_id = UnicodeAttribute()
    name = UnicodeAttribute()
    created_at = UnicodeAttribute()
    input_type = UnicodeAttribute(null=True)
    # JSON text: a default output may be any JSON value (DynamoDB maps cannot hold a bare null)
    default_output = UnicodeAttribute(null=True)
    slo_micros = NumberAttribute()
    top_n = NumberAttribute(null=True)
    version = NumberAttribute(null=True)
    previous_version = NumberAttribute(null=True)
    capture_percent = NumberAttribute(null=True)  # traffic capture (absent: 0, off)
    # The app's serving record, kept on its row whether it is registered or not (an unregistered
    # app's row has only these and its key): the ids of its live inference jobs, and whether they
    # are recorded here at all (rows older than this record are not). created_at marks a
    # registered app.
    serving_jobs = UnicodeSetAttribute(null=True)
    serving_tracked = BooleanAttribute(null=True)


class ServingResultItem(Model):
    """A queue API result (Cluster Serving's output queue), per "<user id>#<queue>" and uri."""

    Meta = _meta(resources.SERVING_RESULTS)

    queue_key = UnicodeAttribute(hash_key=True)
    uri = UnicodeAttribute(range_key=True)
    status = UnicodeAttribute()  # "ok" | "error"
    value = UnicodeAttribute(null=True)  # the prediction as JSON text
    error = UnicodeAttribute(null=True)
    default = BooleanAttribute(default=False)
    created_at = UnicodeAttribute()
    expires_at = NumberAttribute()  # epoch seconds; readers filter expired items


class LoginAttemptItem(Model):
    Meta = _meta(resources.LOGIN_ATTEMPTS)

    key = UnicodeAttribute(hash_key=True)  # "account#<email>" or "client#<address>"
    failures = NumberAttribute()
    last_failure_at = NumberAttribute()  # epoch seconds (fractional)
    expires_at = NumberAttribute()  # epoch seconds (DynamoDB TTL); readers filter expired items


class AuditEventItem(Model):
    Meta = _meta(resources.AUDIT_EVENTS)

    month = UnicodeAttribute(hash_key=True)  # "YYYY-MM" (UTC)
    sort_key = UnicodeAttribute(range_key=True)  # "<UTC ISO time>#<id>": sorts by time
    id = UnicodeAttribute()
    at = UTCDateTimeAttribute()
    event = UnicodeAttribute()
    email = UnicodeAttribute()
    source_ip = UnicodeAttribute(null=True)
    details = MapAttribute(default=dict)
    expires_at = NumberAttribute()  # epoch seconds (DynamoDB TTL); readers filter expired items


class CTInstanceItem(Model):
    """A continuous-test instance; ``source``, ``monitors`` and ``breaches`` are JSON text
    (nested lists of maps whose numbers stay plain floats)."""
    Meta = _meta(resources.CT_INSTANCES)

    class ByProject(GlobalSecondaryIndex):
        Meta = _index_meta("by_project")
        project_id = UnicodeAttribute(hash_key=True)
        created_at = UnicodeAttribute(range_key=True)

    id = UnicodeAttribute(hash_key=True)
    project_id = UnicodeAttribute()
    owner_id = UnicodeAttribute()
    name = UnicodeAttribute()
    bin_size_seconds = NumberAttribute()
    ot_test_run_id = UnicodeAttribute()
    created_at = UnicodeAttribute()
    active = BooleanAttribute(default=False)
    timestamp_col = UnicodeAttribute(null=True)
    history_key = UnicodeAttribute(null=True)
    bins_key = UnicodeAttribute(null=True)
    running_job_id = UnicodeAttribute(null=True)
    last_job_id = UnicodeAttribute(null=True)
    error = UnicodeAttribute(null=True)
    source = UnicodeAttribute(default="{}")
    monitors = UnicodeAttribute(default="[]")
    breaches = UnicodeAttribute(default="[]")
    by_project = ByProject()


ALL_MODELS: tuple[type[Model], ...] = (
    UserItem, SessionItem, ApiKeyItem, DatasetItem, ModelItem, UniqueItem, TrainJobItem, TrialItem, CounterItem,
    InferenceJobItem, AppItem, ServingResultItem, ProjectItem, StressTestItem, LoginAttemptItem, AuditEventItem,
    ManagedImageItem, ImageBuildItem, CTInstanceItem,
)


def bind(resource_name: Callable[[str], str], region: str, endpoint_url: Optional[str] = None,
         access_key_id: Optional[str] = None, secret_access_key: Optional[str] = None) -> None:
    """Point every model at its table (``resource_name(logical name)``) in ``region``, through
    ``endpoint_url`` if given (moto, locally) and explicit credentials if given; forgets cached
    connections, so the next call uses the new binding."""
    for model in ALL_MODELS:
        meta = model.Meta
        binding = (resource_name(meta.logical_name), region, endpoint_url or None, access_key_id or None,  # type: ignore[attr-defined]
                   secret_access_key or None)
        if binding == (meta.table_name, meta.region, meta.host, meta.aws_access_key_id, meta.aws_secret_access_key):
            continue  # unchanged: keep the connection (a new one loads botocore's service model again)
        meta.table_name, meta.region, meta.host, meta.aws_access_key_id, meta.aws_secret_access_key = binding
        model._connection = None  # indexes query through their model's connection


def new_connection() -> Connection:
    """A connection (for transactions) bound like the models."""
    meta = ModelItem.Meta
    return Connection(region=meta.region, host=meta.host, aws_access_key_id=meta.aws_access_key_id,
                      aws_secret_access_key=meta.aws_secret_access_key)
