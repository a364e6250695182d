"""The one definition of Kilele's stateful AWS resources.

Both the CDK app (infra/) and the embedded local stack (chalicelib/local/provision.py) build
their tables, buckets and queues from these specs, so the two can never drift apart. Names
here are logical; the deployed name is ``f"{prefix}-{name}"`` (see ``Settings.resource_name``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

AttrType = Literal["S", "N", "B"]


@dataclass(frozen=True)
class Key:
    name: str
    type: AttrType = "S"


@dataclass(frozen=True)
class Index:
    """A global secondary index projecting all attributes."""

    name: str
    hash_key: Key
    range_key: Optional[Key] = None


@dataclass(frozen=True)
class TableSpec:
    name: str
    hash_key: Key
    range_key: Optional[Key] = None
    indexes: tuple[Index, ...] = ()
    ttl_attribute: Optional[str] = None

    def attribute_definitions(self) -> dict[str, AttrType]:
        """Every key attribute of the table and its indexes, by name."""
        attrs: dict[str, AttrType] = {}
        for key in (self.hash_key, self.range_key):
            if key:
                attrs[key.name] = key.type
        for index in self.indexes:
            for key in (index.hash_key, index.range_key):
                if key:
                    attrs[key.name] = key.type
        return attrs


@dataclass(frozen=True)
class BucketSpec:
    name: str


@dataclass(frozen=True)
class QueueSpec:
    name: str
    visibility_timeout_seconds: int = 60
    local_only: bool = False  # exists only in the local stack (e.g. the Lambda shim's queue)


@dataclass(frozen=True)
class StateMachineSpec:
    """A Step Functions state machine from ``chalicelib/workflows/<template>.asl.json``."""

    name: str
    template: str


@dataclass(frozen=True)
class Resources:
    tables: tuple[TableSpec, ...] = field(default_factory=tuple)
    buckets: tuple[BucketSpec, ...] = field(default_factory=tuple)
    queues: tuple[QueueSpec, ...] = field(default_factory=tuple)
    state_machines: tuple[StateMachineSpec, ...] = field(default_factory=tuple)

    def table(self, name: str) -> TableSpec:
        return next(t for t in self.tables if t.name == name)


USERS = TableSpec("users", hash_key=Key("email"), indexes=(Index("by_id", Key("id")),))
SESSIONS = TableSpec("sessions", hash_key=Key("token_hash"), ttl_attribute="expires_at")
API_KEYS = TableSpec(
    "api-keys",
    hash_key=Key("key_id"),
    indexes=(Index("by_owner", Key("owner_email"), Key("created_at")),),
)
DATASETS = TableSpec(
    "datasets",
    hash_key=Key("id"),
    indexes=(Index("by_owner", Key("owner_id"), Key("created_at")),),
)
MODELS = TableSpec(
    "models",
    hash_key=Key("id"),
    indexes=(
        Index("by_owner", Key("owner_id"), Key("created_at")),
        Index("by_access", Key("access_right"), Key("created_at")),
    ),
)
# Uniqueness guards written in the same transaction as the item they protect
# (e.g. a model's name per owner), since DynamoDB has no unique secondary keys.
UNIQUES = TableSpec("uniques", hash_key=Key("key"))

TRAIN_JOBS = TableSpec(
    "train-jobs",
    hash_key=Key("id"),
    indexes=(
        Index("by_user", Key("user_id"), Key("created_at")),
        # user_app is "<user id>#<app>": one user's versions of one app, newest last.
        Index("by_app", Key("user_app"), Key("app_version", "N")),
    ),
)
TRIALS = TableSpec(
    "trials",
    hash_key=Key("id"),
    indexes=(Index("by_job", Key("train_job_id"), Key("created_at")),),
)
# Atomic counters (DynamoDB ADD), e.g. the next app version of a user's app.
COUNTERS = TableSpec("counters", hash_key=Key("key"))

INFERENCE_JOBS = TableSpec(
    "inference-jobs",
    hash_key=Key("id"),
    indexes=(
        Index("by_user", Key("user_id"), Key("created_at")),
        Index("by_app", Key("user_app"), Key("created_at")),
    ),
)
# Serving settings per user and app (Clipper's applications).
APPS = TableSpec("apps", hash_key=Key("user_app"))
# Per app and minute: request/error/default counters and a latency histogram (top-level
# numbers, so DynamoDB's atomic ADD works); expires after a retention period.
APP_METRICS = TableSpec(
    "app-metrics", hash_key=Key("user_app"), range_key=Key("minute", "N"), ttl_attribute="expires_at"
)
# Queue API (Cluster Serving's output queue): one result per "<user id>#<queue>" and uri.
SERVING_RESULTS = TableSpec(
    "serving-results", hash_key=Key("queue_key"), range_key=Key("uri"), ttl_attribute="expires_at"
)

# Stress tests (seed 002): projects per owner; jobs listed for two days (TTL, filtered on read).
PROJECTS = TableSpec(
    "projects",
    hash_key=Key("id"),
    indexes=(Index("by_owner", Key("owner_id"), Key("created_at")),),
)
STRESS_TESTS = TableSpec(
    "stress-tests",
    hash_key=Key("id"),
    indexes=(Index("by_owner", Key("owner_id"), Key("created_at")),),
    ttl_attribute="expires_at",
)
# Managed images (issue 11): keyed by their unique name; by_name lists them all in name order
# (one constant partition: a few thousand images at most), for stable pages.
MANAGED_IMAGES = TableSpec(
    "managed-images",
    hash_key=Key("name"),
    indexes=(Index("by_name", Key("listing"), Key("name")),),
)
# Managed-image builds on AWS (issue 11): one record per content key, claimed by a conditional
# write, so concurrent requests for one requirement set start one CodeBuild build; a build's
# outcome from its EventBridge event is recorded there too.
IMAGE_BUILDS = TableSpec("image-builds", hash_key=Key("key"))
# Continuous-test instances (seed 002's CT instances, issue 12): by_project lists a project's.
CT_INSTANCES = TableSpec(
    "ct-instances",
    hash_key=Key("id"),
    indexes=(Index("by_project", Key("project_id"), Key("created_at")),),
)

# Logins: failed-login counters per account and per client address (progressive delays and
# lockouts, shared by every API Lambda), forgotten by TTL; readers filter expired items.
LOGIN_ATTEMPTS = TableSpec("login-attempts", hash_key=Key("key"), ttl_attribute="expires_at")
# The audit log (logins, API keys): one partition per month (sort key "<time>#<id>"), so paging
# newest first reads a few partitions at most; expires by TTL after the retention period.
AUDIT_EVENTS = TableSpec("audit-events", hash_key=Key("month"), range_key=Key("sort_key"), ttl_attribute="expires_at")

DATA_BUCKET = BucketSpec("data")

# Trials to run: Step Functions sends each with its task token; the local trial runner (or, on
# AWS, the dispatcher Lambda that submits a Batch/SageMaker job) consumes them.
TRIALS_QUEUE = QueueSpec("trials", visibility_timeout_seconds=120)
# Lambda task states rendered for the local stack become messages here (see workflows/render.py).
LAMBDA_SHIM_QUEUE = QueueSpec("lambda-shim", visibility_timeout_seconds=120, local_only=True)
# Queue API items to predict (Cluster Serving's input queue), answered by the serving consumer.
SERVING_REQUESTS_QUEUE = QueueSpec("serving-requests", visibility_timeout_seconds=60)

# One execution per train-job worker slot: propose -> run trial -> record, until the budget ends.
TRAIN_WORKER = StateMachineSpec("train-worker", template="train_worker")
# One execution per stress-test job: mark RUNNING -> run the engine in the worker image -> record.
STRESS_TEST = StateMachineSpec("stress-test", template="stress_test")
# One execution per managed image: poll its build until READY or FAILED and record it (issue 11).
MANAGED_IMAGE = StateMachineSpec("managed-image", template="managed_image")

RESOURCES = Resources(
    tables=(
        USERS, SESSIONS, API_KEYS, DATASETS, MODELS, UNIQUES, TRAIN_JOBS, TRIALS, COUNTERS,
        INFERENCE_JOBS, APPS, APP_METRICS, SERVING_RESULTS, PROJECTS, STRESS_TESTS, LOGIN_ATTEMPTS, AUDIT_EVENTS,
        MANAGED_IMAGES, IMAGE_BUILDS, CT_INSTANCES,
    ),
    buckets=(DATA_BUCKET,),
    queues=(TRIALS_QUEUE, LAMBDA_SHIM_QUEUE, SERVING_REQUESTS_QUEUE),
    state_machines=(TRAIN_WORKER, STRESS_TEST, MANAGED_IMAGE),
)

# Events (issue 12): the bus every job state change and monitor breach is published to, and the
# schedule group of continuous tests' schedules (EventBridge Scheduler); logical names as above.
EVENT_BUS = "events"
SCHEDULE_GROUP = "schedules"
