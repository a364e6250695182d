"""The trial message: what Step Functions sends (``sqs:sendMessage.waitForTaskToken``) and the
consumer hands to the worker. Validated here, so a bad message fails clearly.

The platform builds it in chalicelib/services/trial_messages.py; tests/contract/test_trial_message.py
checks that what it builds parses here. Every S3 key the worker reads or writes is in the message.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional


class MessageError(ValueError):
    """The message is not a valid trial message (the text says which field and why)."""


_REQUIRED_STR = (
    "id", "train_job_id", "model_class", "bucket", "model_key", "train_dataset_key", "val_dataset_key",
    "params_key", "logs_key", "error_key", "claim_key",
)


KINDS = ("trial", "describe", "stress_test")


@dataclass(frozen=True)
class TrialSpec:
    """``kind`` "trial" trains and scores the model; "describe" only loads the class and
    reports its ``get_knob_config()`` (the platform never imports model code elsewhere)."""

    id: str
    train_job_id: str
    model_class: str
    bucket: str
    model_key: str
    train_dataset_key: str
    val_dataset_key: str
    params_key: str
    logs_key: str
    #: Where a failed run writes its error report (``error.json``), before SendTaskFailure.
    error_key: str
    #: The run's claim: the first worker to create it (a conditional put) owns the run.
    claim_key: str
    #: Where the run task's token appears once the worker reported the start (kilele_worker.start).
    run_token_key: Optional[str] = None
    model_id: Optional[str] = None
    model_name: Optional[str] = None
    task: Optional[str] = None
    onnx_key: Optional[str] = None
    knobs: dict[str, Any] = field(default_factory=dict)
    train_args: dict[str, Any] = field(default_factory=dict)
    dependencies: dict[str, Optional[str]] = field(default_factory=dict)
    gpu_count: int = 0
    timeout_seconds: float = 3600.0
    memory_limit_mb: Optional[int] = None
    heartbeat_seconds: float = 10.0
    kind: str = "trial"

    @property
    def is_describe(self) -> bool:
        return self.kind == "describe"

    @classmethod
    def from_dict(cls, data: Any) -> "TrialSpec":
        if not isinstance(data, dict):
            raise MessageError("'trial' must be an object")
        values: dict[str, Any] = {}
        kind = data.get("kind", "trial")
        if kind not in KINDS:
            raise MessageError(f"trial.kind must be one of {', '.join(KINDS)}, got {kind!r}")
        values["kind"] = kind
        for name in _REQUIRED_STR:
            value = data.get(name)
            if kind == "describe" and name == "params_key" and value is None:
                value = "-"  # a description stores no parameters
            if not isinstance(value, str) or not value:
                raise MessageError(f"trial.{name} must be a non-empty string")
            values[name] = value
        for name in ("model_id", "model_name", "task", "onnx_key", "run_token_key"):
            value = data.get(name)
            if value is not None and not isinstance(value, str):
                raise MessageError(f"trial.{name} must be a string or null")
            values[name] = value or None
        values.update(_objects(data, ("knobs", "train_args", "dependencies")))
        values["gpu_count"] = _number(data, "gpu_count", 0, integer=True, minimum=0)
        values["timeout_seconds"] = _number(data, "timeout_seconds", 3600.0, minimum=0.001)
        values["memory_limit_mb"] = _number(data, "memory_limit_mb", None, integer=True, minimum=1)
        values["heartbeat_seconds"] = _number(data, "heartbeat_seconds", 10.0, minimum=0.05)
        return cls(**values)


_STRESS_REQUIRED_STR = ("id", "bucket", "ref_key", "eval_key", "results_prefix", "logs_key", "error_key", "claim_key")


@dataclass(frozen=True)
class StressTestSpec:
    """``kind`` "stress_test": run the stress-test engine (kilele_stress) on ``ref_key`` and
    ``eval_key`` with the model file ``model_key`` (none: a predictions-only run) inside the
    sandboxed model process, and upload its results under ``results_prefix``. ``config`` is the
    test run config whose ``ref_path``/``eval_path``/``model_info.path`` are local file names.

    A Kilele trial as the model (``params_key`` set): ``model_key`` is the trial's model file,
    ``model_class`` its class, ``knobs`` and ``params_key`` its knobs and trained parameters,
    ``dependencies`` the model's; ``config.model_info`` is ``{"trial_id"}`` (no ``path``)."""

    id: str
    bucket: str
    ref_key: str
    eval_key: str
    results_prefix: str
    logs_key: str
    error_key: str
    claim_key: str
    config: dict[str, Any]
    run_token_key: Optional[str] = None
    model_key: Optional[str] = None
    project_id: Optional[str] = None
    test_run_id: Optional[str] = None
    timeout_seconds: float = 3600.0
    memory_limit_mb: Optional[int] = None
    cpu_limit_millicores: Optional[int] = None
    heartbeat_seconds: float = 10.0
    kind: str = "stress_test"
    # What the model process and the monitor read of any spec:
    gpu_count: int = 0
    is_describe: bool = False
    model_class: str = "-"
    model_name: Optional[str] = None
    model_id: Optional[str] = None
    train_job_id: str = "-"
    dependencies: dict[str, Optional[str]] = field(default_factory=dict)
    # A Kilele trial as the model under test:
    params_key: Optional[str] = None
    trial_id: Optional[str] = None
    task: Optional[str] = None
    knobs: dict[str, Any] = field(default_factory=dict)
    #: A continuous test: ``{"mode": "from_reference" | "incremental", "ct_instance_id",
    #: "history_key"}`` (the bins' earlier rows, a Parquet file, or null) and, for a scheduled
    #: firing's new data, ``source_prefixes``; empty otherwise.
    continuous: dict[str, Any] = field(default_factory=dict)

    @property
    def is_trial_model(self) -> bool:
        return self.params_key is not None

    @classmethod
    def from_dict(cls, data: dict) -> "StressTestSpec":
        values: dict[str, Any] = {}
        for name in _STRESS_REQUIRED_STR:
            value = data.get(name)
            if not isinstance(value, str) or not value:
                raise MessageError(f"trial.{name} must be a non-empty string")
            values[name] = value
        for name in ("model_key", "project_id", "test_run_id", "params_key", "trial_id", "task", "model_id",
                     "model_name", "run_token_key"):
            value = data.get(name)
            if value is not None and not isinstance(value, str):
                raise MessageError(f"trial.{name} must be a string or null")
            values[name] = value or None
        config = data.get("config")
        if not isinstance(config, dict) or not isinstance(config.get("data_info"), dict):
            raise MessageError("trial.config must be a test run config (an object with data_info)")
        for name in ("ref_path", "eval_path"):
            if not _local_name(config["data_info"].get(name)):
                raise MessageError(f"trial.config.data_info.{name} must be a plain file name")
        model_path = (config.get("model_info") or {}).get("path")
        if values["params_key"] is not None:  # a Kilele trial
            model_class = data.get("model_class")
            if values["model_key"] is None or not isinstance(model_class, str) or not model_class:
                raise MessageError("trial.model_key and trial.model_class must be non-empty strings "
                                   "when params_key (a trial's parameters) is set")
            if model_path is not None:
                raise MessageError("trial.config.model_info.path must be absent when the model is a trial")
            values["model_class"] = model_class
            if isinstance(data.get("train_job_id"), str) and data["train_job_id"]:
                values["train_job_id"] = data["train_job_id"]
            values.update(_objects(data, ("knobs", "dependencies")))
        elif (model_path is None) != (values["model_key"] is None) or (model_path is not None and not _local_name(model_path)):
            raise MessageError("trial.config.model_info.path must be a plain file name exactly when model_key is set")
        values["config"] = config
        values["continuous"] = _continuous(data.get("continuous"), config)
        values["timeout_seconds"] = _number(data, "timeout_seconds", 3600.0, minimum=0.001)
        values["memory_limit_mb"] = _number(data, "memory_limit_mb", None, integer=True, minimum=1)
        values["cpu_limit_millicores"] = _number(data, "cpu_limit_millicores", None, integer=True, minimum=1)
        values["heartbeat_seconds"] = _number(data, "heartbeat_seconds", 10.0, minimum=0.05)
        return cls(**values)


def _continuous(value: Any, config: dict) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or value.get("mode") not in ("from_reference", "incremental"):
        raise MessageError('trial.continuous must be null or an object with mode "from_reference" or "incremental"')
    if not isinstance(value.get("ct_instance_id"), str) or not value["ct_instance_id"]:
        raise MessageError("trial.continuous.ct_instance_id must be a non-empty string")
    history = value.get("history_key")
    if history is not None and (not isinstance(history, str) or not history):
        raise MessageError("trial.continuous.history_key must be a non-empty string or null")
    if not isinstance(config.get("continuous_info"), dict):
        raise MessageError("trial.config.continuous_info must be an object in a continuous test")
    out = {"mode": value["mode"], "ct_instance_id": value["ct_instance_id"], "history_key": history}
    # A scheduled firing's new data: eval_key is a sources manifest (kilele_worker.ct_sources) whose
    # files lie under these folders, which the run may read (its session policy names them).
    prefixes = value.get("source_prefixes")
    if prefixes is not None:
        if not isinstance(prefixes, list) or not 1 <= len(prefixes) <= 4 or not all(
                isinstance(p, str) and p.endswith("/") and p.count("/") >= 2 and ".." not in p.split("/")
                for p in prefixes):
            raise MessageError("trial.continuous.source_prefixes must be 1-4 folder keys (ending with '/')")
        out["source_prefixes"] = list(prefixes)
    return out


def _objects(data: dict, names: tuple[str, ...]) -> dict[str, dict]:
    """The message's object fields ``names`` (absent or null: ``{}``); ``dependencies`` maps
    names to version strings or null."""
    out = {}
    for name in names:
        value = data.get(name)
        value = {} if value is None else value
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise MessageError(f"trial.{name} must be an object")
        out[name] = value
    for name, version in out.get("dependencies", {}).items():
        if version is not None and not isinstance(version, str):
            raise MessageError(f"trial.dependencies[{name!r}] must be a version string or null")
    return out


def _local_name(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and "/" not in value and value not in (".", "..")


@dataclass(frozen=True)
class TrialMessage:
    task_token: str
    trial: Any  # TrialSpec, or StressTestSpec for kind "stress_test"


def _number(data: dict, name: str, default: Any, integer: bool = False, minimum: float = 0) -> Any:
    value = data.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and int(value) != value):
        raise MessageError(f"trial.{name} must be {'an integer' if integer else 'a number'}")
    if value < minimum:
        raise MessageError(f"trial.{name} must be at least {minimum}")
    return int(value) if integer else float(value)


def task_token_of(raw: Any) -> Optional[str]:
    """The task token of a possibly invalid message, so even a bad message can be failed."""
    if isinstance(raw, dict) and isinstance(raw.get("task_token"), str) and raw["task_token"]:
        return raw["task_token"]
    return None


def parse_message(raw: Any) -> TrialMessage:
    if isinstance(raw, (str, bytes)):
        try:
            raw = json.loads(raw)
        except ValueError as e:
            raise MessageError(f"the message is not JSON: {e}") from e
    if not isinstance(raw, dict):
        raise MessageError("the message must be a JSON object")
    token = task_token_of(raw)
    if token is None:
        raise MessageError("task_token must be a non-empty string")
    trial = raw.get("trial")
    if isinstance(trial, dict) and trial.get("kind") == "stress_test":
        return TrialMessage(token, StressTestSpec.from_dict(trial))
    return TrialMessage(token, TrialSpec.from_dict(trial))
