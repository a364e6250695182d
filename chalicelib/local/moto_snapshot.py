"""Snapshots of what moto holds (tables, objects, queues, state machines ...), written to and read
from the local stack's data directory.

moto keeps everything in memory, in one ``BackendDict`` per service (account -> region ->
backend). Its maintainers suggest pickling the backends; done here with three repairs, found
service by service:

- locks and conditions (an SQS queue's, an S3 object's) do not pickle: they come back new;
- S3 bodies are kept as files named by their SHA-256 (``blobs/``), written once, so a snapshot
  stays small and large objects are not copied every few seconds;
- a Step Functions execution (moto's interpreter) holds its worker thread: it is saved with its
  latest events, and one that was still running comes back ABORTED, "the local stack stopped"
  (moto cannot resume an interpreter mid-state; the stack then ends the job it belonged to).

File format (``state.snapshot``): a magic line, one JSON header line (``format``, the moto and
Python versions the pickle depends on, the payload's size and SHA-256), then the pickle. A
snapshot whose header does not match this code, or whose payload does not check out, is refused
whole with :class:`SnapshotRefused`; nothing is installed until everything has been read.
"""
from __future__ import annotations

import hashlib
import importlib
import io
import json
import os
import pickle
import sys
import threading
import time
import weakref
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

SNAPSHOT_FORMAT = 1
MAGIC = b"KILELE-MOTO-SNAPSHOT\n"
SNAPSHOT_FILE = "state.snapshot"
BLOBS_DIR = "blobs"
STOPPED_ERROR = "Kilele.LocalStackStopped"
STOPPED_CAUSE = "the local stack stopped while this execution was running"
HISTORY_EVENTS = 200  # kept per execution
RESET_HINT = "start with --reset to begin with an empty stack (this deletes the saved state)"

_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()), threading.Condition)
# Set while a payload is being unpickled: where the S3 bodies are (one load at a time).
_loading = threading.local()


class SnapshotRefused(Exception):
    """The data directory holds a snapshot this code cannot read; nothing was loaded."""


def compatibility() -> dict[str, Any]:
    """What a snapshot must have been written with to be read by this process."""
    import moto

    return {"format": SNAPSHOT_FORMAT, "moto": moto.__version__, "python": "%d.%d" % sys.version_info[:2]}


def snapshot_path(directory: Path) -> Path:
    return Path(directory) / SNAPSHOT_FILE


def read_header(directory: Path) -> Optional[dict[str, Any]]:
    """The header of the snapshot in ``directory`` (None: there is none), checked against this
    code's :func:`compatibility`; the payload is checked by :func:`load`."""
    path = snapshot_path(directory)
    try:
        with path.open("rb") as file:
            magic = file.readline()
            line = file.readline(64 * 1024)
    except FileNotFoundError:
        return None
    if magic != MAGIC:
        raise SnapshotRefused(f"{path} is not a Kilele snapshot (or is damaged); {RESET_HINT}")
    try:
        header = json.loads(line)
        wanted = compatibility()
        differences = [f"{key} {header[key]!r} (this code reads {value!r})" for key, value in wanted.items()
                       if header[key] != value]
    except (ValueError, KeyError, TypeError) as e:
        raise SnapshotRefused(f"{path} has an unreadable header ({e}); {RESET_HINT}") from None
    if differences:
        raise SnapshotRefused(f"{path} was written by another version: {', '.join(differences)}; {RESET_HINT}, "
                              "or run the version that wrote it")
    return header


def load(directory: Path) -> Optional[dict[str, Any]]:
    """The payload of the snapshot in ``directory`` (None: there is none). Raises
    :class:`SnapshotRefused` for a foreign version, a damaged file or a missing S3 body."""
    header = read_header(directory)
    if header is None:
        return None
    path = snapshot_path(directory)
    data = path.read_bytes()
    offset = data.index(b"\n", len(MAGIC)) + 1
    payload = data[offset:]
    if len(payload) != header.get("payload_bytes") or hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise SnapshotRefused(f"{path} is damaged (its payload does not match its checksum); {RESET_HINT}")
    _loading.blobs = Path(directory) / BLOBS_DIR
    try:
        return pickle.loads(payload)
    except SnapshotRefused:
        raise
    except Exception as e:  # noqa: BLE001 - whatever the pickle says, the snapshot is unusable as a whole
        raise SnapshotRefused(f"{path} could not be read ({type(e).__name__}: {e}); {RESET_HINT}") from None
    finally:
        _loading.blobs = None


def install(payload: dict[str, Any]) -> int:
    """Put the backends of a loaded payload in place of moto's; returns how many. Every target
    is looked up before the first one is replaced."""
    targets = []
    for (module, attribute), accounts in payload["backends"].items():
        try:
            backend_dict = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as e:
            raise SnapshotRefused(f"the snapshot holds {module}.{attribute}, which this moto lacks ({e}); "
                                  f"{RESET_HINT}") from None
        targets.append((backend_dict, accounts))
    installed = 0
    for backend_dict, accounts in targets:
        for account_id, regions in accounts.items():
            account = backend_dict[account_id]
            for region, backend in regions.items():
                dict.__setitem__(account, region, backend)
                installed += 1
    return installed


_locations: dict[int, tuple[str, str]] = {}  # BackendDicts live as long as the process: found once


def _locate(backend_dict: Any) -> tuple[str, str]:
    """(module, attribute) of a ``BackendDict`` instance, so that a load finds it again."""
    if id(backend_dict) in _locations:
        return _locations[id(backend_dict)]
    module_names = [backend_dict.backend.__module__]
    module_names += [name for name in list(sys.modules) if name.startswith("moto.") and name not in module_names]
    for name in module_names:
        module = sys.modules.get(name)
        for attribute, value in list(vars(module).items()) if module else ():
            if value is backend_dict:
                _locations[id(backend_dict)] = (name, attribute)
                return name, attribute
    raise LookupError(f"cannot find moto's {backend_dict.service_name} backends by name")


def collect() -> dict[str, Any]:
    """What moto holds now, as a picklable payload (the backends themselves, not copies)."""
    from moto.core.base_backend import BackendDict

    backends: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for backend_dict in list(BackendDict._instances):  # type: ignore[attr-defined]
        accounts = {account: dict(regions) for account, regions in list(backend_dict.items()) if regions}
        if accounts:
            backends.setdefault(_locate(backend_dict), {}).update(accounts)
    return {"backends": backends}


class _FrozenHistory:
    def __init__(self, events: list[Any]):
        self._events = events

    def get_event_history(self) -> list[Any]:
        return list(self._events)


class _FrozenEnvironment:
    def __init__(self, events: list[Any]):
        self.event_manager = _FrozenHistory(events)


class FrozenWorker:
    """Stands in for a restored execution's interpreter: its history, and nothing left to run."""

    def __init__(self, events: list[Any]):
        self.env = _FrozenEnvironment(events)

    def stop(self, stop_date: Any = None, error: Any = None, cause: Any = None) -> None:
        return None


def _history(worker: Any) -> list[Any]:
    # The latest events only: a worker execution runs up to 100 trials, and every snapshot
    # pickles every execution's history again.
    try:
        events = worker.env.event_manager.get_event_history() if worker is not None and worker.env else []
        return list(events[-HISTORY_EVENTS:])
    except Exception:  # noqa: BLE001 - an execution mid-step: its history is best effort
        return []


def _restore_execution(cls: type, state: dict[str, Any], events: list[Any]) -> Any:
    from moto.stepfunctions.parser.api import ExecutionStatus

    execution = cls.__new__(cls)
    execution.__dict__.update(state)
    execution.exec_worker = FrozenWorker(events)
    if execution.exec_status in (None, ExecutionStatus.RUNNING):
        execution.exec_status = ExecutionStatus.ABORTED
        execution.stop_date = execution.stop_date or datetime.now(timezone.utc)
        execution.error, execution.cause = STOPPED_ERROR, STOPPED_CAUSE
    return execution


def _restore_key(cls: type, state: dict[str, Any], blob: Optional[str]) -> Any:
    key = cls.__new__(cls)
    value = b""
    if blob is not None:
        path = _loading.blobs / blob
        try:
            value = path.read_bytes()
        except FileNotFoundError:
            raise SnapshotRefused(f"the snapshot's S3 body {path} is missing; {RESET_HINT}") from None
    key.__setstate__({**state, "value": value})
    return key


def _new(factory: Any) -> Any:
    return factory()


class _Pickler(pickle.Pickler):
    def __init__(self, file: Any, writer: "SnapshotWriter"):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._writer = writer
        self._key_type = getattr(sys.modules.get("moto.s3.models"), "FakeKey", None)
        module = sys.modules.get("moto.stepfunctions.parser.backend.execution")
        self._execution_type = getattr(module, "Execution", None)

    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        if kind in _LOCK_TYPES:
            return _new, (threading.Condition if kind is threading.Condition else
                          threading.RLock if kind is type(threading.RLock()) else threading.Lock,)
        if self._key_type is not None and isinstance(obj, self._key_type):
            state = {k: v for k, v in obj.__dict__.items() if k not in ("_value_buffer", "lock")}
            return _restore_key, (kind, state, self._writer.blob_of(obj))
        if self._execution_type is not None and isinstance(obj, self._execution_type):
            state = {k: v for k, v in obj.__dict__.items() if k not in ("exec_worker", "_cloud_watch_logging_session")}
            state["_cloud_watch_logging_session"] = None
            return _restore_execution, (kind, state, _history(obj.exec_worker))
        return NotImplemented


class SnapshotWriter:
    """Writes snapshots of moto into ``directory``: S3 bodies once each, then the state file
    atomically (temporary file, fsync, rename), then removes bodies no snapshot refers to."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.blobs = self.directory / BLOBS_DIR
        self.blobs.mkdir(parents=True, exist_ok=True)
        self._known: "weakref.WeakKeyDictionary[Any, tuple[Any, str]]" = weakref.WeakKeyDictionary()
        self._pending: dict[str, bytes] = {}
        self._referenced: set[str] = set()
        self._last_sha: Optional[str] = None

    def blob_of(self, key: Any) -> Optional[str]:
        """The file name of an S3 object's body (hashed once per object and version of it)."""
        stamp = (getattr(key, "contentsize", None), getattr(key, "last_modified", None), key.__dict__.get("_etag"))
        known = self._known.get(key)
        if known is None or known[0] != stamp:
            try:
                value = key.value
            except ValueError:  # the body was disposed of (the object is being deleted)
                return None
            name = hashlib.sha256(value).hexdigest()
            if not (self.blobs / name).exists():
                self._pending[name] = value
            known = (stamp, name)
            self._known[key] = known
        self._referenced.add(known[1])
        return known[1]

    def pickle(self, payload: dict[str, Any]) -> bytes:
        """The payload pickled (call it while moto is held still; files are written by :meth:`write`)."""
        self._pending, self._referenced = {}, set()
        buffer = io.BytesIO()
        _Pickler(buffer, self).dump(payload)
        return buffer.getvalue()

    def write(self, data: bytes) -> bool:
        """Write what :meth:`pickle` returned; False when it equals the last one written."""
        sha = hashlib.sha256(data).hexdigest()
        if sha == self._last_sha and not self._pending:
            return False
        for name, value in self._pending.items():
            _write_atomically(self.blobs / name, [value])
        header = {**compatibility(), "payload_bytes": len(data), "payload_sha256": sha,
                  "written_at": datetime.now(timezone.utc).isoformat(), "blobs": len(self._referenced)}
        _write_atomically(snapshot_path(self.directory), [MAGIC, json.dumps(header).encode() + b"\n", data])
        self._last_sha = sha
        for stale in set(os.listdir(self.blobs)) - self._referenced:
            if not stale.endswith(".tmp"):
                (self.blobs / stale).unlink(missing_ok=True)
        return True


def _write_atomically(path: Path, chunks: list[bytes]) -> None:
    temporary = path.with_name(f"{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    with temporary.open("wb") as file:
        for chunk in chunks:
            file.write(chunk)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
