"""In-memory fakes of every port in chalicelib/ports.py, for the services' unit tests.

Import them as ``from unit.services.fakes import ...`` (``tests/`` is on ``sys.path`` under
pytest, as for ``settings_support``); use that one name everywhere, so there is one copy of
these classes per test session.

What the fakes promise (tests/contract/test_repositories.py runs the same behaviours against
these fakes and the pynamodb repositories under moto):

- the store semantics the services rely on: conditional writes (``Conflict`` on a duplicate
  email, model name, API key or application; ``set_status`` only from ``only_from``;
  ``switch_version`` only from ``expected``; ``delete_unused`` refuses a used model;
  ``claim_fingerprint`` once; counters with limits; trial ``finish`` only from ``only_from``),
  the same ordering (``list`` by ``created_at`` where the real index sorts), and copies in and
  out, so a service cannot change stored state except through the port;
- every port method counts its calls: ``fake.calls["get"]``; ``fake.reset_calls()``;
- any port method can be made to fail: ``fake.failures["start"] = RuntimeError("down")``
  raises on every call until the entry is removed (``fake.fail_once("start", error)`` once).

:func:`services` builds every service through ``chalicelib.wiring.build`` with all parts
faked (``aws`` included: a stand-in that refuses every use), so nothing reaches AWS.
"""
from __future__ import annotations

import copy
import functools
import itertools
import json
from collections import Counter
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta, timezone
from typing import IO, Any, Callable, Iterable, Optional

from chalicelib import ports, ports_datasets
from chalicelib.entities import (
    AccessRight,
    ApiKey,
    Application,
    Dataset,
    DatasetStatus,
    InferenceJob,
    InferenceJobStatus,
    Model,
    Project,
    ServingResult,
    Session,
    StressTestJob,
    StressTestStatus,
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
from chalicelib.services.gpus import GpuSupport
from chalicelib.services.schedule_targets import ScheduleTargets
from chalicelib.latency import LATENCY_BUCKETS, latency_bucket
from chalicelib.ports import EndpointState

UTC = timezone.utc
#: The fake clock's default start.
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

# -- call counting and failure injection -------------------------------------------------------


def _port_methods(protocol: type) -> set[str]:
    return {name for name, value in vars(protocol).items() if callable(value) and not name.startswith("_")}


def _counting(function: Callable[..., Any], name: str) -> Callable[..., Any]:
    @functools.wraps(function)
    def method(self: "Fake", *args: Any, **kwargs: Any) -> Any:
        self.calls[name] += 1
        failure = self.failures.get(name)
        if failure is not None:
            if name in self._fail_once:
                self._fail_once.discard(name)
                del self.failures[name]
            raise failure
        return function(self, *args, **kwargs)

    return method


def implements(*protocols: type) -> Callable[[type], type]:
    """Check that the class has every method of ``protocols`` and make each count its calls."""

    def wrap(cls: type) -> type:
        names: set[str] = set()
        for protocol in protocols:
            names |= _port_methods(protocol)
        missing = sorted(n for n in names if not callable(getattr(cls, n, None)))
        if missing:
            raise TypeError(f"{cls.__name__} lacks {', '.join(missing)} of {[p.__name__ for p in protocols]}")
        for name in names:
            setattr(cls, name, _counting(getattr(cls, name), name))
        cls.port_methods = frozenset(names)  # type: ignore[attr-defined]
        return cls

    return wrap


class Fake:
    """Base of the fakes: ``calls`` (a Counter of port-method calls) and ``failures``."""

    port_methods: frozenset = frozenset()

    def __init__(self) -> None:
        self.calls: Counter = Counter()
        self.failures: dict[str, BaseException] = {}
        self._fail_once: set[str] = set()

    def reset_calls(self) -> None:
        self.calls.clear()

    def fail_once(self, method: str, error: BaseException) -> None:
        self.failures[method] = error
        self._fail_once.add(method)

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


def _copy(value: Any) -> Any:
    return copy.deepcopy(value)


# -- the clock ---------------------------------------------------------------------------------


class FakeClock:
    """A settable clock (``chalicelib.services.Clock``): ``clock()`` is the current time;
    ``tick`` (default none) is added after every reading."""

    def __init__(self, start: datetime = T0, tick: timedelta = timedelta(0)):
        self.now = start
        self.tick = tick
        self.readings = 0

    def __call__(self) -> datetime:
        self.readings += 1
        now = self.now
        self.now = now + self.tick
        return now

    def advance(self, delta: Optional[timedelta] = None, **kwargs: float) -> datetime:
        self.now += delta if delta is not None else timedelta(**kwargs)
        return self.now

    def set(self, when: datetime) -> None:
        self.now = when

    def timestamp(self) -> float:
        return self.now.timestamp()


# -- blobs, URLs, passwords --------------------------------------------------------------------


@implements(ports.BlobStore)
class FakeBlobStore(Fake):
    """A dict of bytes by key; presigned URLs are fake strings naming the key."""

    def __init__(self) -> None:
        super().__init__()
        self.objects: dict[str, bytes] = {}
        self.content_types: dict[str, str] = {}

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.objects[key] = bytes(data)
        self.content_types[key] = content_type

    def put_file(self, key: str, fileobj: IO[bytes]) -> None:
        self.objects[key] = fileobj.read()

    def get_bytes(self, key: str) -> bytes:
        if key not in self.objects:
            raise NotFound(f"object {key!r} does not exist")
        return self.objects[key]

    def download_to(self, key: str, fileobj: IO[bytes]) -> None:
        if key not in self.objects:
            raise NotFound(f"nothing was uploaded for {key!r}")
        fileobj.write(self.objects[key])

    def size(self, key: str) -> int:
        if key not in self.objects:
            raise NotFound(f"nothing was uploaded for {key!r}")
        return len(self.objects[key])

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)  # S3 deletes are idempotent
        self.content_types.pop(key, None)

    def copy(self, source_key: str, key: str) -> None:
        self.put_bytes(key, self.get_bytes(source_key), self.content_types.get(source_key, "application/octet-stream"))

    def presigned_get(self, key: str, expires_seconds: int) -> str:
        return f"https://blobs.fake/{key}?expires={expires_seconds}"

    def presigned_post(self, key: str, max_bytes: int, expires_seconds: int) -> dict[str, Any]:
        return {"url": "https://blobs.fake/upload",
                "fields": {"key": key, "max_bytes": str(max_bytes), "expires": str(expires_seconds)}}

    def keys(self, prefix: str = "") -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))

    def list_keys(self, prefix: str) -> list[str]:  # ports_loop.KeyLister
        return self.keys(prefix)


@implements(ports.UrlFetcher)
class FakeUrlFetcher(Fake):
    """Serves ``pages[url]`` (bytes, or an exception to raise); unknown URLs raise Unprocessable."""

    def __init__(self, pages: Optional[dict[str, Any]] = None) -> None:
        super().__init__()
        self.pages: dict[str, Any] = dict(pages or {})
        self.fetched: list[str] = []

    def fetch(self, url: str, out: IO[bytes], max_bytes: int) -> int:
        from chalicelib.errors import PayloadTooLarge, Unprocessable

        self.fetched.append(url)
        page = self.pages.get(url)
        if page is None:
            raise Unprocessable(f"could not download {url}: not found")
        if isinstance(page, BaseException):
            raise page
        if len(page) > max_bytes:
            raise PayloadTooLarge(f"{url} is larger than the limit of {max_bytes} bytes")
        out.write(page)
        return len(page)


@implements(ports.PasswordHasher)
class FakePasswordHasher(Fake):
    """``"hash:" + password``: fast, and readable in assertions."""

    def hash(self, password: str) -> str:
        return "hash:" + password

    def verify(self, password_hash: str, password: str) -> bool:
        return password_hash == "hash:" + password


# -- workflows and trial dispatch --------------------------------------------------------------


@implements(ports.WorkflowRunner)
class FakeWorkflowRunner(Fake):
    """Records executions: ``started`` (name -> payload, in start order), ``stopped`` (arn, cause)."""

    def __init__(self) -> None:
        super().__init__()
        self.started: dict[str, dict[str, Any]] = {}
        self.stopped: list[tuple[Optional[str], str]] = []

    @staticmethod
    def arn(name: str) -> str:
        return f"arn:aws:states:us-east-1:000000000000:execution:fake:{name}"

    def start(self, name: str, payload: dict[str, Any]) -> str:
        if name in self.started and self.started[name] != payload:
            raise Conflict(f"execution {name!r} already exists with another input")
        self.started.setdefault(name, _copy(payload))
        return self.arn(name)

    def stop(self, execution_arn: Optional[str], cause: str) -> None:
        self.stopped.append((execution_arn, cause))

    @property
    def starts(self) -> list[tuple[str, dict[str, Any]]]:
        return list(self.started.items())


@implements(ports.TaskTokens)
class FakeTaskTokens(Fake):
    """Records answers; a token answers once (``waiting`` may restrict which tokens are live)."""

    def __init__(self, waiting: Optional[Iterable[str]] = None) -> None:
        super().__init__()
        self.waiting: Optional[set[str]] = set(waiting) if waiting is not None else None
        self.succeeded: dict[str, Any] = {}
        self.failed: dict[str, tuple[str, str]] = {}

    def _live(self, token: str) -> bool:
        if token in self.succeeded or token in self.failed:
            return False
        return self.waiting is None or token in self.waiting

    def fail(self, token: str, error: str, cause: str) -> bool:
        if not self._live(token):
            return False
        self.failed[token] = (error, cause)
        return True

    def fail_run(self, message: dict[str, Any], error: str, cause: str) -> bool:
        """The queue task's token only: the fake keeps no run tokens (the adapter's contract test does)."""
        return self.fail(message["task_token"], error, cause)

    def succeed(self, token: str, output: Any) -> bool:
        if not self._live(token):
            return False
        self.succeeded[token] = _copy(output)
        return True


@implements(ports.TrialDispatcher)
class FakeTrialDispatcher(Fake):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[dict[str, Any]] = []

    def dispatch(self, message: dict[str, Any]) -> str:
        self.messages.append(_copy(message))
        return f"run-{len(self.messages)}"


@implements(ports_datasets.DatasetCheckDispatcher)
class FakeDatasetCheckDispatcher(Fake):
    """Records the datasets whose check job was dispatched; a test runs each job itself
    (``h.services.datasets.check_job.run(dataset_id)``) when it wants."""

    def __init__(self) -> None:
        super().__init__()
        self.queued: list[str] = []

    def dispatch(self, dataset_id: str) -> None:
        self.queued.append(dataset_id)


# -- endpoints, metrics, the request queue -----------------------------------------------------


@implements(ports.EndpointRunner)
class FakeEndpointRunner(Fake):
    """Endpoints in memory. ``answer(queries)`` makes the predictions of an invocation
    (``{"queries": [...]}`` in, ``{"predictions": [...], "batch_size": n}`` out); ``failure``
    makes ``invoke`` raise; ``deploy_failure`` makes ``deploy`` raise; ``states[name]`` overrides
    an endpoint's state, ``state_override`` every endpoint's (default: InService once deployed,
    Deleted otherwise)."""

    def __init__(self) -> None:
        super().__init__()
        self.deployed: dict[str, str] = {}
        self.gpu: dict[str, bool] = {}
        self.images: dict[str, Optional[str]] = {}  # the managed image each endpoint serves in
        self.deleted: list[str] = []
        self.invocations: list[tuple[str, list]] = []
        self.answer: Callable[[list], list] = lambda queries: [{"0": 0.25, "1": 0.75} for _ in queries]
        self.failure: Optional[BaseException] = None
        self.deploy_failure: Optional[BaseException] = None
        self.states: dict[str, EndpointState] = {}
        self.state_override: Optional[EndpointState] = None

    def deploy(self, name: str, bundle_key: str, gpu: bool = False, image: Optional[str] = None) -> None:
        if self.deploy_failure is not None:
            raise self.deploy_failure
        self.deployed[name] = bundle_key
        self.gpu[name] = gpu
        self.images[name] = image

    def state(self, name: str) -> EndpointState:
        if self.state_override is not None:
            return self.state_override
        if name in self.states:
            return self.states[name]
        return EndpointState("InService" if name in self.deployed else "Deleted")

    def invoke(self, name: str, body: bytes, timeout_seconds: float) -> bytes:
        queries = json.loads(body)["queries"]
        self.invocations.append((name, queries))
        if self.failure is not None:
            raise self.failure
        if name not in self.deployed:
            raise ports.EndpointUnavailable(f"endpoint {name!r} does not exist")
        return json.dumps({"predictions": self.answer(queries), "batch_size": len(queries)}).encode()

    def names(self, prefix: str) -> list[str]:
        return sorted(n for n in self.deployed if n.startswith(prefix))

    def delete(self, name: str) -> None:
        self.deployed.pop(name, None)
        self.deleted.append(name)


@implements(ports.MetricsSink)
class FakeMetricsSink(Fake):
    def __init__(self) -> None:
        super().__init__()
        self.emitted: list[dict[str, Any]] = []

    def emit(self, app: str, latency_ms: float, queries: int, error: bool, default: bool) -> None:
        self.emitted.append({"app": app, "latency_ms": latency_ms, "queries": queries, "error": error,
                             "default": default})


@implements(ports.RequestQueue)
class FakeRequestQueue(Fake):
    """``bodies`` sent so far; ``waiting`` adds to the backlog; ``reject[index] = reason``
    refuses the body at that index of the next sends; ``unreachable`` makes every call raise."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[str] = []
        self.waiting = 0
        self.reject: dict[int, str] = {}
        self.unreachable = False

    def backlog(self) -> int:
        if self.unreachable:
            raise ports.QueueUnreachable("the fake queue is unreachable")
        return self.waiting + len(self.bodies)

    def send(self, bodies: list[str]) -> dict[int, str]:
        if self.unreachable:
            raise ports.QueueUnreachable("the fake queue is unreachable")
        refused = {i: reason for i, reason in self.reject.items() if i < len(bodies)}
        self.bodies.extend(b for i, b in enumerate(bodies) if i not in refused)
        return refused

    def take(self) -> list[str]:
        """The sent bodies (as a consumer would receive them); the queue is empty afterwards."""
        bodies, self.bodies = self.bodies, []
        return bodies


# -- repositories ------------------------------------------------------------------------------


def _by_created(items: Iterable[Any]) -> list[Any]:
    """Oldest first (stable: equal times keep their insertion order)."""
    return sorted(items, key=lambda item: item.created_at)


@implements(ports.UserStore)
class FakeUserStore(Fake):
    def __init__(self) -> None:
        super().__init__()
        self.items: dict[str, User] = {}

    def add(self, user: User) -> None:
        if user.email in self.items:
            raise Conflict(f"a user with email {user.email!r} already exists")
        self.items[user.email] = _copy(user)

    def get(self, email: str) -> Optional[User]:
        return _copy(self.items.get(email))

    def list(self) -> list[User]:
        return _copy(_by_created(self.items.values()))

    def mark_banned(self, email: str, at: datetime) -> User:
        user = self.items.get(email)
        if user is None or user.banned_at is not None:
            raise Conflict(f"user {email!r} is already banned")
        user.banned_at = at
        return _copy(user)

    def link_iam_principal(self, email: str, principal: str) -> User:
        user = self.items.get(email)
        if user is None:
            raise NotFound(f"no user with email {email!r}")
        owner = self.get_by_iam_principal(principal)
        if owner is not None and owner.email != email:
            raise Conflict(f"{principal} is already linked to another user")
        user.iam_principals = tuple(sorted({*user.iam_principals, principal}))
        return _copy(user)

    def unlink_iam_principal(self, email: str, principal: str) -> User:
        user = self.items.get(email)
        if user is None or principal not in user.iam_principals:
            raise NotFound(f"{principal} is not linked to user {email!r}")
        user.iam_principals = tuple(p for p in user.iam_principals if p != principal)
        return _copy(user)

    def get_by_iam_principal(self, principal: str) -> Optional[User]:
        return _copy(next((u for u in self.items.values() if principal in u.iam_principals), None))


@implements(ports.SessionStore)
class FakeSessionStore(Fake):
    """Keeps the expiry as whole epoch seconds, like the table's TTL attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[str, Session] = {}

    def add(self, session: Session) -> None:
        stored = _copy(session)
        stored.expires_at = datetime.fromtimestamp(int(session.expires_at.timestamp()), tz=UTC)
        self.items[session.token_hash] = stored

    def get_live(self, token_hash: str, now: datetime) -> Optional[Session]:
        session = self.items.get(token_hash)
        if session is None or session.expires_at.timestamp() <= now.timestamp():
            return None
        return _copy(session)

    def delete(self, token_hash: str) -> None:
        self.items.pop(token_hash, None)


@implements(ports.ApiKeyStore)
class FakeApiKeyStore(Fake):
    def __init__(self) -> None:
        super().__init__()
        self.items: dict[str, ApiKey] = {}

    def add(self, key: ApiKey) -> None:
        if key.key_id in self.items:
            raise Conflict(f"API key {key.key_id!r} already exists")
        self.items[key.key_id] = _copy(key)

    def get(self, key_id: str) -> Optional[ApiKey]:
        return _copy(self.items.get(key_id))

    def list_by_owner(self, owner_email: str) -> list[ApiKey]:
        return _copy(_by_created(k for k in self.items.values() if k.owner_email == owner_email))

    def delete(self, key_id: str, owner_email: str) -> None:
        key = self.items.get(key_id)
        if key is None or key.owner_email != owner_email:
            raise NotFound(f"no API key {key_id!r}")
        del self.items[key_id]


@implements(ports.DatasetStore)
class FakeDatasetStore(Fake):
    def __init__(self) -> None:
        super().__init__()
        self.items: dict[str, Dataset] = {}

    def save(self, dataset: Dataset) -> None:
        self.items[dataset.id] = _copy(dataset)

    def get(self, dataset_id: str) -> Optional[Dataset]:
        return _copy(self.items.get(dataset_id))

    def list(self, owner_id: Optional[str] = None, task: Optional[Task] = None) -> list[Dataset]:
        """READY datasets, of one owner (or everyone's), optionally of one task, oldest first."""
        return _copy(_by_created(
            d for d in self.items.values()
            if d.status is DatasetStatus.READY and (not owner_id or d.owner_id == owner_id)
            and (not task or d.task is task)
        ))

    def delete(self, dataset_id: str) -> None:
        self.items.pop(dataset_id, None)


@implements(ports.ModelStore)
class FakeModelStore(Fake):
    """Model names are unique per owner; ``train_job_count`` is raised by the train-job store's
    ``add`` (as the real transaction does)."""

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[str, Model] = {}

    def _name_taken(self, owner_id: str, name: str) -> bool:
        return any(m.owner_id == owner_id and m.name == name for m in self.items.values())

    def add(self, model: Model) -> None:
        if model.id in self.items or self._name_taken(model.owner_id, model.name):
            raise Conflict(f"you already have a model named {model.name!r}")
        self.items[model.id] = _copy(model)

    def get(self, model_id: str) -> Optional[Model]:
        return _copy(self.items.get(model_id))

    def list_all(self) -> list[Model]:
        return _copy(list(self.items.values()))

    def list_own_and_public(self, owner_id: str) -> list[Model]:
        return _copy([m for m in self.items.values()
                      if m.owner_id == owner_id or m.access_right is AccessRight.PUBLIC])

    def delete_unused(self, model: Model) -> None:
        stored = self.items.get(model.id)
        if stored is None or stored.train_job_count != 0:
            raise Conflict(f"model {model.name!r} is used by a train job and cannot be deleted")
        del self.items[model.id]

    def set_knob_config(self, model_id: str, knob_config: dict) -> None:
        if model_id not in self.items:
            raise NotFound(f"no model {model_id!r}")
        self.items[model_id].knob_config = _copy(knob_config)

    def _use(self, model_ids: Iterable[str]) -> None:
        """Count a new train job as a user of each model; Conflict (and no change) if one is gone."""
        model_ids = list(model_ids)
        if any(m not in self.items for m in model_ids):
            raise Conflict("a model of this train job was deleted meanwhile; try again")
        for model_id in model_ids:
            self.items[model_id].train_job_count += 1


@implements(ports.CounterStore)
class FakeCounterStore(Fake):
    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, int] = {}

    def increment(self, key: str, limit: Optional[int] = None) -> Optional[int]:
        # As the real condition: a counter that does not exist yet always takes its first step.
        if limit is not None and key in self.values and not self.values[key] < limit:
            return None
        self.values[key] = self.values.get(key, 0) + 1
        return self.values[key]

    def get(self, key: str) -> int:
        return self.values.get(key, 0)


@implements(ports.TrainJobStore)
class FakeTrainJobStore(Fake):
    def __init__(self, models: Optional[FakeModelStore] = None) -> None:
        super().__init__()
        self.items: dict[str, TrainJob] = {}
        self._models = models

    def add(self, job: TrainJob) -> None:
        if job.id in self.items:
            raise Conflict(f"train job {job.id!r} already exists")
        if self._models is not None:
            self._models._use(job.model_ids)
        self.items[job.id] = _copy(job)

    def get(self, job_id: str) -> Optional[TrainJob]:
        return _copy(self.items.get(job_id))

    def list_by_user(self, user_id: str) -> list[TrainJob]:
        return _copy(_by_created(j for j in self.items.values() if j.user_id == user_id))

    def list_of_app(self, user_id: str, app: str) -> list[TrainJob]:
        jobs = [j for j in self.items.values() if j.user_id == user_id and j.app == app]
        return _copy(sorted(jobs, key=lambda j: j.app_version))

    def list_all(self) -> list[TrainJob]:
        return _copy(list(self.items.values()))

    def set_status(self, job_id: str, status: TrainJobStatus, only_from: tuple[TrainJobStatus, ...],
                   at: Optional[datetime] = None, error: Optional[str] = None) -> bool:
        job = self.items.get(job_id)
        if job is None or job.status not in only_from:
            return False
        job.status = status
        if status.is_final and at:
            job.stopped_at = at
        if error:
            job.error = error[:2000]
        return True

    def put_worker(self, job_id: str, worker: Worker) -> None:
        self.items[job_id].workers[worker.key] = _copy(worker)

    def update_worker(self, job_id: str, key: str, **fields_: Any) -> None:
        job = self.items.get(job_id)
        if job is None:
            raise NotFound(f"no train job {job_id!r}")
        worker = job.workers.get(key)
        if worker is None:  # DynamoDB refuses a document path below a missing map entry
            raise KeyError(f"train job {job_id!r} has no worker {key!r}")
        known = {f.name for f in fields(Worker)}
        for name, value in fields_.items():
            if name not in known:
                raise AttributeError(f"a worker has no field {name!r}")
            if name == "status" and not isinstance(value, WorkerStatus):
                value = WorkerStatus(value)
            if isinstance(value, str) and name in ("started_at", "stopped_at"):
                value = datetime.fromisoformat(value)
            setattr(worker, name, _copy(value))


_TRIAL_FIELDS = {f.name for f in fields(Trial)}
_TRIAL_TIMES = {"created_at", "started_at", "stopped_at"}


@implements(ports.TrialStore)
class FakeTrialStore(Fake):
    def __init__(self) -> None:
        super().__init__()
        self.items: dict[str, Trial] = {}
        self.fingerprints: dict[tuple[str, str, str], str] = {}

    def claim_fingerprint(self, job_id: str, model_id: str, fingerprint: str, trial_id: str) -> bool:
        key = (job_id, model_id, fingerprint)
        if key in self.fingerprints:
            return False
        self.fingerprints[key] = trial_id
        return True

    def add(self, trial: Trial) -> None:
        if trial.id in self.items:
            raise Conflict(f"trial {trial.id!r} already exists")
        self.items[trial.id] = _copy(trial)

    def get(self, trial_id: str) -> Optional[Trial]:
        return _copy(self.items.get(trial_id))

    def list_of_job(self, job_id: str) -> list[Trial]:
        return _copy(_by_created(t for t in self.items.values() if t.train_job_id == job_id))

    def finish(self, trial_id: str, status: TrialStatus, at: datetime,
               only_from: tuple[TrialStatus, ...] = (TrialStatus.PENDING, TrialStatus.RUNNING),
               **fields_: Any) -> bool:
        """Fields are stored values, as the real store takes them (times as ISO text; None: unset)."""
        unknown = set(fields_) - _TRIAL_FIELDS
        if unknown:
            raise AttributeError(f"a trial has no field {', '.join(sorted(unknown))}")
        trial = self.items.get(trial_id)
        if trial is None or trial.status not in only_from:
            return False
        trial.status = status
        trial.stopped_at = at
        for name, value in fields_.items():
            if value is None:
                continue
            if name in _TRIAL_TIMES and isinstance(value, str):
                value = datetime.fromisoformat(value)
            setattr(trial, name, _copy(value))
        return True


@implements(ports.InferenceJobStore)
class FakeInferenceJobStore(Fake):
    LIVE = (InferenceJobStatus.STARTED, InferenceJobStatus.RUNNING)

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[str, InferenceJob] = {}

    def add(self, job: InferenceJob) -> None:
        if job.id in self.items:
            raise Conflict(f"inference job {job.id!r} already exists")
        self.items[job.id] = _copy(job)

    def get(self, job_id: str) -> Optional[InferenceJob]:
        return _copy(self.items.get(job_id))

    def list_by_user(self, user_id: str) -> list[InferenceJob]:
        return _copy(_by_created(j for j in self.items.values() if j.user_id == user_id))

    def _of_app(self, user_id: str, app: str) -> list[InferenceJob]:
        return _copy(_by_created(j for j in self.items.values() if j.user_id == user_id and j.app == app))

    def list_of_app(self, user_id: str, app: str) -> list[InferenceJob]:
        return self._of_app(user_id, app)

    def list_live_of_app(self, user_id: str, app: str) -> list[InferenceJob]:
        return [j for j in self._of_app(user_id, app) if j.status in self.LIVE]

    def list_all(self) -> list[InferenceJob]:
        return _copy(list(self.items.values()))

    def set_status(self, job_id: str, status: InferenceJobStatus, only_from: tuple[InferenceJobStatus, ...],
                   at: Optional[datetime] = None, error: Optional[str] = None) -> bool:
        job = self.items.get(job_id)
        if job is None or job.status not in only_from:
            return False
        job.status = status
        if at:  # as the real store: ``at`` is the stop time whatever the status
            job.stopped_at = at
        if error:
            job.error = error[:2000]
        return True

    def set_restarts(self, job_id: str, restarts: int, last_restart: Optional[dict[str, Any]]) -> None:
        job = self.items.get(job_id)
        if job is not None:
            job.restarts, job.last_restart = restarts, _copy(last_restart)


@implements(ports.ApplicationStore)
class FakeApplicationStore(Fake):
    """Registered applications (``items``) and each app's serving record (``serving``: the ids
    of its live inference jobs), one row per (user, app) as in the real table: an app's serving
    record outlives its registration, a row with neither goes."""

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], Application] = {}
        self.serving: dict[tuple[str, str], set[str]] = {}  # present: the record is tracked

    @staticmethod
    def _stored(app: Application) -> Application:
        # The table keeps the default output as JSON text.
        return replace(_copy(app), default_output=json.loads(json.dumps(app.default_output)))

    def add(self, app: Application) -> None:
        if (app.user_id, app.name) in self.items:
            raise Conflict(f"application {app.name!r} is already registered")
        self.items[(app.user_id, app.name)] = self._stored(app)

    def get(self, user_id: str, name: str) -> Optional[Application]:
        return _copy(self.items.get((user_id, name)))

    def list_of_user(self, user_id: str) -> list[Application]:
        return _copy(_by_created(a for (u, _), a in self.items.items() if u == user_id))

    def save(self, app: Application) -> None:
        """The app's settings; its version pointer changes only through ``switch_version``."""
        stored = self.items.get((app.user_id, app.name))
        if stored is None:
            raise Conflict(f"application {app.name!r} was unregistered meanwhile")
        self.items[(app.user_id, app.name)] = replace(self._stored(app), version=stored.version,
                                                      previous_version=stored.previous_version)

    def switch_version(self, user_id: str, name: str, version: Optional[int], expected: Optional[int]) -> bool:
        app = self.items.get((user_id, name))
        if app is None or app.version != expected:
            return False
        app.version = version
        app.previous_version = expected if expected is not None else -1
        return True

    def delete(self, user_id: str, name: str) -> None:
        key = (user_id, name)
        self.items.pop(key, None)
        if not self.serving.get(key):  # a row without live jobs goes entirely
            self.serving.pop(key, None)

    def serving_state(self, user_id: str, name: str) -> Any:
        key = (user_id, name)
        return ports.ServingState(_copy(self.items.get(key)), frozenset(self.serving.get(key, ())),
                                  key in self.serving)

    def add_live_jobs(self, user_id: str, name: str, job_ids: Iterable[str]) -> None:
        self.serving.setdefault((user_id, name), set()).update(job_ids)

    def remove_live_job(self, user_id: str, name: str, job_id: str) -> None:
        if (user_id, name) in self.serving:
            self.serving[(user_id, name)].discard(job_id)


@implements(ports.AppMetricsStore)
class FakeAppMetricsStore(Fake):
    """Per-minute counters, as the real table keeps them (no expiry); ``records`` lists the
    ``record`` calls (``add_minute`` writes, buffered by the caller, only add to ``minutes``)."""

    COUNTERS = ("requests", "queries", "errors", "defaults", "batches", "batch_size_sum")

    def __init__(self) -> None:
        super().__init__()
        self.records: list[dict[str, Any]] = []
        self.minutes: dict[tuple[str, int], Counter] = {}

    def record(self, user_app: str, at: datetime, latency_ms: float, queries: int, error: bool, default: bool,
               batch_size: Optional[int] = None) -> None:
        self.records.append({"user_app": user_app, "at": at, "latency_ms": latency_ms, "queries": queries,
                             "error": error, "default": default, "batch_size": batch_size})
        counters = {"requests": 1, "queries": queries, "errors": int(error), "defaults": int(default)}
        if batch_size:
            counters.update(batches=1, batch_size_sum=int(batch_size))
        self._add(user_app, int(at.timestamp() // 60), counters, {latency_bucket(latency_ms): 1})

    def add_minute(self, user_app: str, minute: int, counters: dict[str, int], histogram: dict[int, int]) -> None:
        self._add(user_app, minute, counters, histogram)

    def _add(self, user_app: str, minute: int, counters: dict[str, int], histogram: dict[int, int]) -> None:
        row = self.minutes.setdefault((user_app, int(minute)), Counter())
        row.update({name: int(n) for name, n in counters.items() if n})
        row.update({f"lat_{int(bucket)}": int(n) for bucket, n in histogram.items() if n})

    def window(self, user_app: str, since: datetime) -> dict[str, Any]:
        first = int(since.timestamp() // 60)
        totals: dict[str, Any] = {k: 0 for k in self.COUNTERS}
        histogram = [0] * LATENCY_BUCKETS
        first_minute = None
        for (app, minute), counts in self.minutes.items():
            if app != user_app or minute < first:
                continue
            first_minute = minute if first_minute is None else min(first_minute, minute)
            for key in self.COUNTERS:
                totals[key] += counts.get(key, 0)
            for name, value in counts.items():
                if name.startswith("lat_"):
                    histogram[int(name[4:])] += value
        return {**totals, "histogram": histogram, "first_minute": first_minute}


@implements(ports.ServingResultStore)
class FakeServingResultStore(Fake):
    """Results by (queue key, uri); readers never see expired ones (``now()`` in epoch seconds)."""

    def __init__(self, now: Optional[Callable[[], float]] = None) -> None:
        super().__init__()
        import time

        self._now = now or time.time
        self.items: dict[tuple[str, str], ServingResult] = {}

    def put_many(self, results: Iterable[ServingResult]) -> None:
        for result in results:
            self.items[(result.queue_key, result.uri)] = _copy(result)

    def _live(self, result: Optional[ServingResult]) -> Optional[ServingResult]:
        return None if result is None or result.expires_at <= self._now() else _copy(result)

    def get(self, key: str, uri: str) -> Optional[ServingResult]:
        return self._live(self.items.get((key, uri)))

    def list(self, key: str) -> list[ServingResult]:
        found = [self._live(r) for (k, _), r in sorted(self.items.items()) if k == key]
        return [r for r in found if r is not None]

    def take(self, result: ServingResult) -> bool:
        stored = self.items.get((result.queue_key, result.uri))
        if stored is None or stored.created_at != result.created_at:
            return False
        del self.items[(result.queue_key, result.uri)]
        return True


# -- the advisor -------------------------------------------------------------------------------


class FakeAdvisor:
    """Stands in for ``chalicelib.advisor.propose``: proposes ``{"x": n}`` with n the smallest
    number not yet in the history (so concurrent slots may propose the same one), or what
    ``script`` (a list of knob dicts, used in order) says; ``exhausted`` makes it answer None;
    ``hook()``, if set, runs first on every call (to change the world while a proposal is made)."""

    def __init__(self, script: Optional[list[dict[str, Any]]] = None) -> None:
        self.calls: Counter = Counter()
        self.script = list(script) if script is not None else None
        self.exhausted = False
        self.seen: list[dict[str, Any]] = []  # the arguments of each call
        self.hook: Optional[Callable[[], None]] = None

    def __call__(self, knob_config: Any, history: list[Any], seed: int, strategy: str = "tpe",
                 trials_left: Optional[int] = None, prior: Any = ()) -> Any:
        from chalicelib.advisor import Proposal

        self.calls["propose"] += 1
        if self.hook is not None:
            self.hook()
        self.seen.append({"knob_config": _copy(knob_config), "history": list(history), "seed": seed,
                          "strategy": strategy, "trials_left": trials_left, "prior": list(prior)})
        if self.exhausted:
            return None
        if self.script is not None:
            if not self.script:
                return None
            knobs = self.script.pop(0)
        else:
            tried = {getattr(h, "knobs", {}).get("x") for h in history}
            knobs = {"x": next(n for n in itertools.count() if n not in tried)}
        return Proposal(knobs=dict(knobs), screening=False, fingerprint=json.dumps(knobs, sort_keys=True))


@implements(ports.ProjectStore)
class FakeProjectStore(Fake):
    """Project names are unique per owner."""

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[str, Project] = {}

    def add(self, project: Project) -> None:
        if project.id in self.items or self._named(project.owner_id, project.name):
            raise Conflict(f"you already have a project named {project.name!r}")
        self.items[project.id] = _copy(project)

    def _named(self, owner_id: str, name: str) -> Optional[Project]:
        return next((p for p in self.items.values() if p.owner_id == owner_id and p.name == name), None)

    def get(self, project_id: str) -> Optional[Project]:
        return _copy(self.items.get(project_id))

    def get_by_name(self, owner_id: str, name: str) -> Optional[Project]:
        return _copy(self._named(owner_id, name))

    def list_by_owner(self, owner_id: str) -> list[Project]:
        return _copy(_by_created(p for p in self.items.values() if p.owner_id == owner_id))

    def list_all(self) -> list[Project]:
        return _copy(_by_created(self.items.values()))


@implements(ports.StressTestJobStore)
class FakeStressTestJobStore(Fake):
    """Expired jobs stay stored (as in moto) and are filtered on read."""

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[str, StressTestJob] = {}

    def add(self, job: StressTestJob) -> None:
        if job.id in self.items:
            raise Conflict(f"a stress test {job.id!r} exists")
        self.items[job.id] = replace(_copy(job), expires_at=job.expires_at.replace(microsecond=0))  # whole seconds

    def get(self, job_id: str, now: datetime) -> Optional[StressTestJob]:
        job = self.items.get(job_id)
        return _copy(job) if job is not None and job.expires_at > now else None

    def _live(self, now: datetime, owner_id: Optional[str] = None) -> list[StressTestJob]:
        jobs = [j for j in self.items.values() if j.expires_at > now and (owner_id is None or j.owner_id == owner_id)]
        return _copy(sorted(jobs, key=lambda j: j.created_at, reverse=True))

    def list_by_owner(self, owner_id: str, now: datetime) -> list[StressTestJob]:
        return self._live(now, owner_id)

    def list_all(self, now: datetime) -> list[StressTestJob]:
        return self._live(now)

    def set_status(self, job_id: str, status: StressTestStatus, only_from: tuple[StressTestStatus, ...],
                   **fields: Any) -> bool:
        job = self.items.get(job_id)
        if job is None or job.status not in only_from:
            return False
        job.status = status
        self._set(job, fields)
        return True

    def update(self, job_id: str, **fields: Any) -> None:
        job = self.items.get(job_id)
        if job is None:
            raise NotFound(f"no stress test {job_id!r}")
        self._set(job, fields)

    @staticmethod
    def _set(job: StressTestJob, fields: dict[str, Any]) -> None:
        for name, value in fields.items():
            if value is not None:
                setattr(job, name, _copy(value))


# -- logins: password policy, failed-login counters, audit log ---------------------------------


@implements(ports.PasswordPolicy)
class FakePasswordPolicy(Fake):
    """Accepts every password except those in ``refused`` (password -> reason); remembers the
    user inputs it was given."""

    def __init__(self, refused: Optional[dict[str, str]] = None) -> None:
        super().__init__()
        self.refused = dict(refused or {})
        self.user_inputs: list[list[str]] = []

    def check(self, password: str, user_inputs: Iterable[str] = ()) -> Optional[ports.PasswordRefusal]:
        self.user_inputs.append(list(user_inputs))
        reason = self.refused.get(password)
        return ports.PasswordRefusal(reason, ("Try a longer one.",)) if reason else None


@implements(ports.LoginAttemptStore)
class FakeLoginAttemptStore(Fake):
    """``items``: key -> (failures, last failure, expiry in epoch seconds), expired ones kept
    (like a table whose TTL deletion lags) and filtered on read."""

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[str, tuple[int, datetime, float]] = {}

    def _live(self, key: str, now: datetime) -> Optional[tuple[int, datetime, float]]:
        item = self.items.get(key)
        return item if item is not None and item[2] > now.timestamp() else None

    def get_many(self, keys: list[str], now: datetime) -> dict[str, ports.LoginFailures]:
        return {key: ports.LoginFailures(item[0], item[1]) for key in keys if (item := self._live(key, now))}

    def add_failure(self, key: str, at: datetime, forget_after_seconds: int) -> ports.LoginFailures:
        live = self._live(key, at)
        count = live[0] + 1 if live else 1
        self.items[key] = (count, at, at.timestamp() + forget_after_seconds)
        return ports.LoginFailures(count, at)

    def clear(self, key: str) -> None:
        self.items.pop(key, None)


@implements(ports.AuditLog)
class FakeAuditLog(Fake):
    """Events in a list; pages newest first; the page token is the last event's id."""

    def __init__(self, retention: timedelta = timedelta(days=90)) -> None:
        super().__init__()
        self.events: list[Any] = []
        self.retention = retention

    def add(self, event: Any) -> None:
        self.events.append(_copy(event))

    def page(self, now: datetime, limit: int, page_token: Optional[str] = None) -> tuple[list[Any], Optional[str]]:
        from chalicelib.errors import InvalidInput

        live = sorted((e for e in self.events if e.at + self.retention > now), key=lambda e: (e.at, e.id), reverse=True)
        ids = [e.id for e in live]
        if page_token is not None and page_token not in ids:
            raise InvalidInput("page_token is not one this API gave; start again without it")
        start = ids.index(page_token) + 1 if page_token is not None else 0
        page = live[start:start + limit]
        more = start + limit < len(live)
        return _copy(page), (page[-1].id if more and page else None)

    def of_type(self, event_type: Any) -> list[Any]:
        return [e for e in self.events if e.event == event_type]


class NoAws:
    """The ``aws`` part when every port is faked: any use is a test failure."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a faked build touched AWS (aws.{name})")


# -- everything at once ------------------------------------------------------------------------


@dataclass
class Fakes:
    """One fake per part of ``chalicelib.wiring.build``, linked as the real ones are (the
    train-job store counts model users in the model store)."""

    clock: FakeClock = field(default_factory=FakeClock)
    blobs: FakeBlobStore = field(default_factory=FakeBlobStore)
    hasher: FakePasswordHasher = field(default_factory=FakePasswordHasher)
    url_fetcher: FakeUrlFetcher = field(default_factory=FakeUrlFetcher)
    workflows: FakeWorkflowRunner = field(default_factory=FakeWorkflowRunner)
    tokens: FakeTaskTokens = field(default_factory=FakeTaskTokens)
    endpoints: FakeEndpointRunner = field(default_factory=FakeEndpointRunner)
    trial_dispatcher: FakeTrialDispatcher = field(default_factory=FakeTrialDispatcher)
    dataset_check_dispatcher: FakeDatasetCheckDispatcher = field(default_factory=FakeDatasetCheckDispatcher)
    metrics_sink: FakeMetricsSink = field(default_factory=FakeMetricsSink)
    request_queue: FakeRequestQueue = field(default_factory=FakeRequestQueue)
    advisor: FakeAdvisor = field(default_factory=FakeAdvisor)
    users: FakeUserStore = field(default_factory=FakeUserStore)
    sessions: FakeSessionStore = field(default_factory=FakeSessionStore)
    api_keys: FakeApiKeyStore = field(default_factory=FakeApiKeyStore)
    datasets: FakeDatasetStore = field(default_factory=FakeDatasetStore)
    models: FakeModelStore = field(default_factory=FakeModelStore)
    train_jobs: Optional[FakeTrainJobStore] = None
    trials: FakeTrialStore = field(default_factory=FakeTrialStore)
    counters: FakeCounterStore = field(default_factory=FakeCounterStore)
    inference_jobs: FakeInferenceJobStore = field(default_factory=FakeInferenceJobStore)
    apps: FakeApplicationStore = field(default_factory=FakeApplicationStore)
    app_metrics: FakeAppMetricsStore = field(default_factory=FakeAppMetricsStore)
    serving_results: Optional[FakeServingResultStore] = None
    projects: FakeProjectStore = field(default_factory=FakeProjectStore)
    stress_test_jobs: FakeStressTestJobStore = field(default_factory=FakeStressTestJobStore)
    stress_workflows: FakeWorkflowRunner = field(default_factory=FakeWorkflowRunner)
    password_policy: FakePasswordPolicy = field(default_factory=FakePasswordPolicy)
    login_attempts: FakeLoginAttemptStore = field(default_factory=FakeLoginAttemptStore)
    audit_events: FakeAuditLog = field(default_factory=FakeAuditLog)
    # Managed images (fakes_images.py, imported when a harness is made: it builds on this module).
    managed_image_records: Any = field(default_factory=lambda: _images_fake("FakeManagedImageStore"))
    image_builder: Any = field(default_factory=lambda: _images_fake("FakeImageBuilder"))
    image_workflows: FakeWorkflowRunner = field(default_factory=FakeWorkflowRunner)
    platform_image_builder: Any = field(default_factory=lambda: _images_fake("FakePlatformImageBuilder"))
    # Job state changes (fakes_events.py): the events the record stores published.
    event_publisher: Any = field(default_factory=lambda: _events_fake("FakeEventPublisher"))
    scheduler: Any = field(default_factory=lambda: _events_fake("FakeScheduler"))
    schedule_targets: ScheduleTargets = field(default_factory=ScheduleTargets)  # the real registry: pure
    # CT instances (fakes_continuous.py).
    ct_instances: Any = field(default_factory=lambda: _continuous_fake("FakeCTInstanceStore"))
    ct_metrics_sink: Any = field(default_factory=lambda: _continuous_fake("FakeCTMetricsSink"))
    aws: Any = field(default_factory=NoAws)
    # GPUs for trials and endpoints (the machine running the tests is never asked); a test of
    # a platform without them passes ``gpus=GpuSupport(False, False, ...)``.
    gpus: GpuSupport = field(default_factory=GpuSupport)

    def __post_init__(self) -> None:
        if self.train_jobs is None:
            self.train_jobs = FakeTrainJobStore(self.models)
        if self.serving_results is None:
            clock = self.clock
            self.serving_results = FakeServingResultStore(now=getattr(clock, "timestamp", None)
                                                          or (lambda: clock().timestamp()))

    def parts(self) -> dict[str, Any]:
        """The ``wiring.build`` overrides: every part."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def stores(self) -> dict[str, Fake]:
        return {name: part for name, part in self.parts().items() if isinstance(part, Fake)}

    def reset_calls(self) -> None:
        for part in self.stores().values():
            part.reset_calls()


def _images_fake(name: str) -> Any:
    from unit.services import fakes_images

    return getattr(fakes_images, name)()


def _continuous_fake(name: str) -> Any:
    from unit.services import fakes_continuous

    return getattr(fakes_continuous, name)()


def _events_fake(name: str) -> Any:
    from unit.services import fakes_events

    return getattr(fakes_events, name)()


@dataclass
class Harness:
    """What :func:`services` returns: the built services, the fakes behind them, the settings."""

    services: Any  # chalicelib.wiring.Services
    fakes: Fakes
    settings: Any

    # -- seeding (straight into the fakes, as if earlier requests had stored them) ------------

    def user(self, user_type: UserType = UserType.MODEL_DEVELOPER, email: Optional[str] = None,
             password: str = "secret1", banned: bool = False) -> User:
        email = email or f"{user_type.value.lower()}-{len(self.fakes.users.items) + 1}@example.com"
        user = User(id=f"user-{len(self.fakes.users.items) + 1}", email=email, user_type=user_type,
                    password_hash=self.fakes.hasher.hash(password), created_at=self.fakes.clock.now,
                    banned_at=self.fakes.clock.now if banned else None)
        self.fakes.users.items[email] = _copy(user)
        return user

    def dataset(self, owner: User, task: Task = Task.TABULAR_CLASSIFICATION, name: str = "data",
                status: DatasetStatus = DatasetStatus.READY, content: bytes = b"x1,x2,target\n1,2,a\n") -> Dataset:
        number = len(self.fakes.datasets.items) + 1
        dataset = Dataset(id=f"dataset-{number}", owner_id=owner.id, name=name, task=task, status=status,
                          object_key=f"datasets/dataset-{number}/data", created_at=self.fakes.clock.now,
                          size_bytes=len(content), target_column="target")
        self.fakes.datasets.items[dataset.id] = _copy(dataset)
        self.fakes.blobs.objects[dataset.object_key] = content
        return dataset

    def model(self, owner: User, task: Task = Task.TABULAR_CLASSIFICATION, name: Optional[str] = None,
              knob_config: Optional[dict[str, Any]] = None, access_right: AccessRight = AccessRight.PRIVATE,
              source: bytes = b"from kilele.model import BaseModel\n\nclass M(BaseModel):\n    pass\n") -> Model:
        number = len(self.fakes.models.items) + 1
        model = Model(id=f"model-{number}", owner_id=owner.id, name=name or f"model{number}", task=task,
                      model_class="M", object_key=f"models/model-{number}/model.py",
                      created_at=self.fakes.clock.now + timedelta(microseconds=number),
                      access_right=access_right, knob_config=knob_config)
        self.fakes.models.items[model.id] = _copy(model)
        self.fakes.blobs.objects[model.object_key] = source
        return model


def services(settings: Any = None, **overrides: Any) -> Harness:
    """Every service, built by ``chalicelib.wiring.build`` with every part faked; ``overrides``
    replace fakes by part name (``services(endpoints=MyEndpoints())``), ``settings`` defaults to
    ``settings_support.make_settings()``."""
    from settings_support import make_settings

    from chalicelib import wiring

    fake_names = {f.name for f in fields(Fakes)}
    fakes = Fakes(**{k: v for k, v in overrides.items() if k in fake_names})
    extra = {k: v for k, v in overrides.items() if k not in fake_names}
    settings = settings if settings is not None else make_settings()
    built = wiring.build(settings, **fakes.parts(), **extra)
    return Harness(services=built, fakes=fakes, settings=settings)


__all__ = [
    "T0", "UTC", "Fake", "FakeClock", "FakeBlobStore", "FakeUrlFetcher", "FakePasswordHasher", "FakeWorkflowRunner",
    "FakeTaskTokens", "FakeTrialDispatcher", "FakeEndpointRunner", "FakeMetricsSink", "FakeRequestQueue",
    "FakeUserStore", "FakeSessionStore", "FakeApiKeyStore", "FakeDatasetStore", "FakeModelStore",
    "FakeCounterStore", "FakeTrainJobStore", "FakeTrialStore", "FakeInferenceJobStore", "FakeApplicationStore",
    "FakeAppMetricsStore", "FakeServingResultStore", "FakeProjectStore", "FakeStressTestJobStore", "FakeAdvisor",
    "FakePasswordPolicy", "FakeLoginAttemptStore", "FakeAuditLog", "NoAws", "Fakes", "Harness", "services",
    "implements",
]
