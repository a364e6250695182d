"""The platform's side of the worker contract, as pure functions.

Out: the trial message (the ``trial`` of the ``{"task_token", "trial"}`` body the train-worker
state machine sends with ``sqs:sendMessage.waitForTaskToken``), built from entities and a
:class:`TrialMessageConfig`. Two kinds: "trial" trains and scores the model, "describe" only
reports its knob config. The worker (containers/worker, ``kilele_worker.message``) parses it;
tests/contract/test_trial_message.py checks that what these functions build parses there.

Back: what the worker reports. On success the task output carries the score, timings, keys and
the actual ``started_at``; on failure it writes ``error.json`` at the message's ``error_key``
(beside the log) before SendTaskFailure: :func:`read_error_report` reads it.

Every S3 key the worker reads or writes is in the message; the worker derives none.
"""
from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional

from chalicelib.entities import BudgetOption, Dataset, Model, TrainJob, Trial

ERROR_REPORT_NAME = "error.json"
CLAIM_NAME = "claim.json"
RUN_TOKEN_NAME = "run-token"
#: Every run token's key: beside the log of a trial, a model check or a stress test (infra grants
#: the state machines PutObject and the dispatch functions GetObject on these, nothing more).
RUN_TOKEN_KEY_PATTERNS = (f"trials/*/{RUN_TOKEN_NAME}", f"describe/*/{RUN_TOKEN_NAME}", f"stress/*/{RUN_TOKEN_NAME}")
ERROR_MESSAGE_MAX_CHARS = 4000
# Step Functions keeps a state (and SQS a message) to 256 KiB; a trial's message carries the
# job's train_args, beside its own keys and the task token. train_args get half of it.
WORKFLOW_STATE_LIMIT_BYTES = 256 * 1024
TRAIN_ARGS_MAX_BYTES = WORKFLOW_STATE_LIMIT_BYTES // 2


@dataclass(frozen=True)
class TrialMessageConfig:
    bucket: str
    trial_timeout_seconds: int
    memory_limit_mb: int
    heartbeat_seconds: int


def trial_keys(trial_id: str) -> dict[str, str]:
    """Where a trial's objects go (all under ``trials/<id>/``). Not its ONNX graph's key: a
    trial records that only once the worker reports it exported one (``has_onnx``)."""
    return {
        "params_key": f"trials/{trial_id}/params.npz",
        "logs_key": f"trials/{trial_id}/logs.txt",
    }


def onnx_key(trial_id: str) -> str:
    """Where the worker puts a trial's ONNX graph if the model exports one."""
    return f"trials/{trial_id}/model.onnx"


def describe_logs_key(model_id: str, describe_id: str) -> str:
    """A description's log, in a folder of its own (its error report and claim go beside it)."""
    return f"describe/{model_id}/{describe_id}/logs.txt"


def beside_log(logs_key: str) -> dict[str, str]:
    """The error report's, the claim's and the run token's keys: beside the log. The state
    machine writes the run task's token at ``run_token_key`` once the worker said it started."""
    folder = posixpath.dirname(logs_key)
    return {
        "error_key": posixpath.join(folder, ERROR_REPORT_NAME),
        "claim_key": posixpath.join(folder, CLAIM_NAME),
        "run_token_key": posixpath.join(folder, RUN_TOKEN_NAME),
    }


def run_token(body: bytes) -> str:
    """The run task's token from the object the state machine wrote at ``run_token_key``.

    The ``aws-sdk:s3:putObject`` integration writes a string ``Body`` as JSON text: AWS stores the
    token JSON-quoted (LocalStack's AWS-validated snapshot of that integration: the object's ETag is
    the MD5 of ``"text data"`` with its quotes), and so does LocalStack; moto 5.2 stores it as it is.
    A task token never starts with a quote, so both read the same (docs/localstack.md, difference 2).
    The worker reads it with the same rule (``kilele_worker.start.run_token``); "" if empty."""
    text = body.decode().strip()
    if not text.startswith('"'):
        return text
    return json.loads(text).strip()  # a JSON string (it starts with a quote); ValueError if malformed


#: The failure name of a run whose job never started within its queue timeout.
QUEUE_TIMEOUT_ERROR = "QueueTimeout"


def queue_timeout(state: dict[str, Any], failure: dict[str, Any]) -> Optional[str]:
    """Why a run failed if its job never started: the queue task (whose result is ``started``)
    timed out. None for any other failure (a run that started and went silent among them)."""
    if failure.get("Error") != "States.Timeout" or "started" in state:
        return None
    seconds = (state.get("proposal") or state).get("queue_timeout_seconds")
    return (f"the job did not start within {seconds} s of being queued (no capacity in its job queue); "
            "raise KILELE_TRIAL_QUEUE_TIMEOUT_SECONDS or the compute environment's size")


def _common(job: TrainJob, model: Model, train: Dataset, val: Dataset, config: TrialMessageConfig) -> dict[str, Any]:
    return {
        "train_job_id": job.id,
        "model_id": model.id,
        "model_name": model.name,
        "model_class": model.model_class,
        "task": job.task.value,
        "dependencies": model.dependencies,
        "gpu_count": 1 if job.budget_value(BudgetOption.GPU_COUNT) > 0 else 0,
        "timeout_seconds": config.trial_timeout_seconds,
        "memory_limit_mb": config.memory_limit_mb,
        "heartbeat_seconds": config.heartbeat_seconds,
        "bucket": config.bucket,
        "model_key": model.object_key,
        "train_dataset_key": train.object_key,
        "val_dataset_key": val.object_key,
    }


def trial_message(job: TrainJob, model: Model, train: Dataset, val: Dataset, trial: Trial,
                  config: TrialMessageConfig) -> dict[str, Any]:
    """The message of one trial of ``model`` in ``job``."""
    logs_key = trial.logs_key or trial_keys(trial.id)["logs_key"]
    return {
        **_common(job, model, train, val, config),
        "kind": "trial",
        "id": trial.id,
        "knobs": trial.knobs,
        "train_args": job.train_args,
        "params_key": trial.params_key,
        "logs_key": logs_key,
        "onnx_key": trial.onnx_key or onnx_key(trial.id),
        **beside_log(logs_key),
    }


def describe_message(job: TrainJob, model: Model, train: Dataset, val: Dataset, describe_id: str,
                     config: TrialMessageConfig) -> dict[str, Any]:
    """The message that asks the worker for ``model``'s knob config (no trial record)."""
    logs_key = describe_logs_key(model.id, describe_id)
    return {
        **_common(job, model, train, val, config),
        "kind": "describe",
        "id": describe_id,
        "knobs": {},
        "train_args": {},
        "logs_key": logs_key,
        **beside_log(logs_key),
    }


def workflow_size(value: Any) -> int:
    """Bytes of ``value`` as the workflow carries it: JSON with non-ASCII escaped (as boto3 and
    the Lambda runtime serialize it; ``é`` takes 6 bytes there, 2 in UTF-8)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=True))


def read_error_report(raw: bytes) -> dict[str, Any]:
    """``error_type``, ``message`` and ``started_at`` of a worker's ``error.json`` (each None when
    missing or unusable; an unreadable report is an empty one)."""
    try:
        data = json.loads(raw.decode("utf-8", "replace"))
    except ValueError:
        data = None
    if not isinstance(data, dict):
        data = {}

    def text(name: str, limit: int) -> Optional[str]:
        value = data.get(name)
        return value[:limit] if isinstance(value, str) and value else None

    return {
        "error_type": text("error_type", 200),
        "message": text("message", ERROR_MESSAGE_MAX_CHARS),
        "started_at": parse_time(data.get("started_at")),
    }


def parse_time(value: Any) -> Optional[datetime]:
    """An ISO-8601 time with a zone (as the worker reports ``started_at``), else None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


__all__ = [
    "TrialMessageConfig",
    "trial_keys",
    "describe_logs_key",
    "beside_log",
    "trial_message",
    "describe_message",
    "workflow_size",
    "TRAIN_ARGS_MAX_BYTES",
    "read_error_report",
    "parse_time",
]
