"""The trial-message contract between the platform and the worker.

The platform builds each message with chalicelib.services.trial_messages from entities; the
train-worker state machine wraps it as the SQS body (read here from the ASL itself); the worker
(kilele_worker.message) must parse that body into the TrialSpec the entities describe. The Batch
dispatcher hands the body over in an environment variable the worker's settings must read. Back
the other way: the worker's error.json and success output must read on the platform's side.
"""
from __future__ import annotations

import importlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from chalicelib.entities import AccessRight, Dataset, DatasetStatus, Model, Task, TrainJob, Trial
from chalicelib.services import trial_messages
from chalicelib.services.trial_messages import TrialMessageConfig
from kilele_worker.errors import TrialFailure
from kilele_worker.message import TrialSpec, parse_message
from kilele_worker.reporting import error_report
from kilele_worker.settings import MESSAGE_ENV as WORKER_MESSAGE_ENV
from kilele_worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
ASL = json.loads((ROOT / "chalicelib" / "workflows" / "train_worker.asl.json").read_text())
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)
TOKEN = "AQB8AAAAKgAAAAMAAAAAAAAAAeL0token=="
CONFIG = TrialMessageConfig(bucket="kilele-dev-data", trial_timeout_seconds=600, memory_limit_mb=2048,
                            heartbeat_seconds=7)

JOB = TrainJob(id="job-1", user_id="u-1", app="iris", app_version=3, task=Task.TABULAR_CLASSIFICATION,
               train_dataset_id="ds-train", val_dataset_id="ds-val",
               budget={"MODEL_TRIAL_COUNT": 5, "GPU_COUNT": 1}, model_ids=["m-1"], created_at=NOW,
               train_args={"epochs": 3})
MODEL = Model(id="m-1", owner_id="u-2", name="tree", task=Task.TABULAR_CLASSIFICATION, model_class="SkDecisionTree",
              object_key="models/m-1/model.py", created_at=NOW, access_right=AccessRight.PUBLIC,
              dependencies={"scikit-learn": "1.9.1"}, knob_config={"max_depth": {"type": "integer"}})
TRAIN = Dataset(id="ds-train", owner_id="u-1", name="train", task=Task.TABULAR_CLASSIFICATION,
                status=DatasetStatus.READY, object_key="datasets/ds-train/data", created_at=NOW)
VAL = Dataset(id="ds-val", owner_id="u-1", name="val", task=Task.TABULAR_CLASSIFICATION,
              status=DatasetStatus.READY, object_key="datasets/ds-val/data", created_at=NOW)
TRIAL = Trial(id="t-1", train_job_id="job-1", model_id="m-1", model_name="tree", worker_key="m-1-0", number=2,
              knobs={"max_depth": 4, "criterion": "gini"}, fingerprint="f", created_at=NOW,
              **trial_messages.trial_keys("t-1"))


def _resolve(path: str, state: dict[str, Any], token: str) -> Any:
    if path == "$$.Task.Token":
        return token
    assert path.startswith("$."), f"a path this test does not know: {path}"
    value: Any = state
    for part in path[2:].split("."):
        value = value[part]
    return value


def queue_body(kind_action: str, state: dict[str, Any], token: str = TOKEN) -> str:
    """What the state machine sends for ``state`` (the Propose step's output): the Choice picks
    the task state by ``$.proposal.action``, whose MessageBody template is filled in here."""
    choice = ASL["States"]["NextStep"]
    assert state["proposal"]["action"] == kind_action
    target = next(c["Next"] for c in choice["Choices"]
                  if c["Variable"] == "$.proposal.action" and c["StringEquals"] == kind_action)
    task = ASL["States"][target]
    assert task["Resource"] == "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
    template = task["Parameters"]["MessageBody"]
    body = {}
    for key, value in template.items():
        if key.endswith(".$"):
            body[key[:-2]] = _resolve(value, state, token)
        else:
            body[key] = value
    return json.dumps(body)  # SQS carries it as text


def _expected_common() -> dict[str, Any]:
    return dict(
        train_job_id=JOB.id, model_id=MODEL.id, model_name=MODEL.name, model_class=MODEL.model_class,
        task=JOB.task.value, dependencies=MODEL.dependencies, gpu_count=1,
        timeout_seconds=float(CONFIG.trial_timeout_seconds), memory_limit_mb=CONFIG.memory_limit_mb,
        heartbeat_seconds=float(CONFIG.heartbeat_seconds), bucket=CONFIG.bucket, model_key=MODEL.object_key,
        train_dataset_key=TRAIN.object_key, val_dataset_key=VAL.object_key,
    )


def test_a_trial_message_parses_into_its_trial_spec():
    message = trial_messages.trial_message(JOB, MODEL, TRAIN, VAL, TRIAL, CONFIG)
    parsed = parse_message(queue_body("run", {"proposal": {"action": "run", "trial": message}}))
    assert parsed.task_token == TOKEN
    assert parsed.trial == TrialSpec(
        **_expected_common(), kind="trial", id=TRIAL.id, knobs=TRIAL.knobs, train_args=JOB.train_args,
        params_key=TRIAL.params_key, logs_key=TRIAL.logs_key, onnx_key="trials/t-1/model.onnx",
        error_key="trials/t-1/error.json", claim_key="trials/t-1/claim.json", run_token_key="trials/t-1/run-token",
    )
    assert not parsed.trial.is_describe


def test_a_describe_message_parses_into_its_trial_spec():
    message = trial_messages.describe_message(JOB, MODEL, TRAIN, VAL, "describe-9", CONFIG)
    parsed = parse_message(queue_body("describe", {"proposal": {"action": "describe", "trial": message}}))
    folder = f"describe/{MODEL.id}/describe-9"
    assert parsed.trial == TrialSpec(
        **_expected_common(), kind="describe", id="describe-9", knobs={}, train_args={},
        params_key="-", logs_key=f"{folder}/logs.txt", onnx_key=None,
        error_key=f"{folder}/error.json", claim_key=f"{folder}/claim.json", run_token_key=f"{folder}/run-token",
    )
    assert parsed.trial.is_describe


@pytest.mark.parametrize("kind", ["trial", "describe"])
def test_the_message_names_no_tables_and_keeps_reports_beside_the_log(kind):
    if kind == "trial":
        message = trial_messages.trial_message(JOB, MODEL, TRAIN, VAL, TRIAL, CONFIG)
    else:
        message = trial_messages.describe_message(JOB, MODEL, TRAIN, VAL, "describe-9", CONFIG)
    assert not {"trials_table", "jobs_table"} & set(message)  # the worker has no DynamoDB
    folder = message["logs_key"].rsplit("/", 1)[0]
    assert message["error_key"] == f"{folder}/error.json" and message["claim_key"] == f"{folder}/claim.json"
    assert message["run_token_key"] == f"{folder}/run-token"  # where the started worker finds its run token


def _batch_message_env() -> str:
    """MESSAGE_ENV of the platform's Batch dispatcher (its module moves with the adapters' layout)."""
    for name in ("chalicelib.adapters.trial_dispatch.aws", "chalicelib.adapters.trial_dispatch.batch",
                 "chalicelib.adapters.trial_dispatch"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "MESSAGE_ENV"):
            return module.MESSAGE_ENV
    raise AssertionError("no MESSAGE_ENV in chalicelib.adapters.trial_dispatch")


def test_the_batch_dispatcher_and_the_worker_agree_on_the_message_variable():
    platform_env = _batch_message_env()
    assert platform_env == WORKER_MESSAGE_ENV
    body = queue_body("run", {"proposal": {"action": "run", "trial": trial_messages.trial_message(
        JOB, MODEL, TRAIN, VAL, TRIAL, CONFIG)}})
    settings = WorkerSettings.from_environ({platform_env: body})
    assert parse_message(settings.message_json).trial.id == TRIAL.id


def test_the_workers_reports_read_on_the_platform():
    spec = parse_message(queue_body("run", {"proposal": {"action": "run", "trial": trial_messages.trial_message(
        JOB, MODEL, TRAIN, VAL, TRIAL, CONFIG)}})).trial
    report = error_report(spec, TrialFailure("TrialTimeout", "the model ran longer than timeout_seconds=600"),
                          "2026-12-01T10:00:01.250Z", 601.5)
    read = trial_messages.read_error_report(json.dumps(report).encode())
    assert read == {"error_type": "TrialTimeout", "message": "the model ran longer than timeout_seconds=600",
                    "started_at": datetime(2026, 12, 1, 10, 0, 1, 250000, tzinfo=timezone.utc)}
    assert trial_messages.read_error_report(b"not json") == {"error_type": None, "message": None, "started_at": None}
    # The worker's success output carries its start in the same form.
    assert trial_messages.parse_time("2026-12-01T10:00:01.250Z") == read["started_at"]


# -- stress tests (seed 002) ---------------------------------------------------------------------


def _stress_job(model: bool = True) -> Any:
    from datetime import timedelta

    from chalicelib.entities import StressTestJob

    now = datetime(2026, 12, 1, tzinfo=timezone.utc)
    config = {"run_name": "r", "data_info": {"label_col": "y", "ref_path": "stress-inputs/u/1/ref.csv",
                                             "eval_path": "datasets/d1/data"},
              "model_info": {"path": "stress-inputs/u/1/model.py"} if model else {},
              "tests_config": {"numeric_drift": {"thresholds": [0.1, None, 0.6]}}, "random_seed": 7}
    return StressTestJob(id="job-1", owner_id="u", project_id="p", name="r", config=config, created_at=now,
                         expires_at=now + timedelta(days=2), test_run_id="tr-1", ram_request_megabytes=3000)


@pytest.mark.parametrize("model", [True, False])
def test_the_stress_test_message_parses_in_the_worker(model):
    from chalicelib.services.stress_messages import StressMessageConfig, stress_test_message
    from kilele_worker.message import StressTestSpec

    job = _stress_job(model)
    built = stress_test_message(job, "stress-inputs/u/1/ref.csv", "datasets/d1/data",
                                "stress-inputs/u/1/model.py" if model else None,
                                StressMessageConfig(bucket="b", timeout_seconds=600, heartbeat_seconds=5))
    # Through JSON, as Step Functions and SQS carry it.
    parsed = parse_message(json.dumps({"task_token": "tok", "trial": built}))
    spec = parsed.trial
    assert isinstance(spec, StressTestSpec) and spec.kind == "stress_test" and parsed.task_token == "tok"
    assert (spec.id, spec.bucket, spec.test_run_id, spec.project_id) == ("job-1", "b", "tr-1", "p")
    assert (spec.ref_key, spec.eval_key) == ("stress-inputs/u/1/ref.csv", "datasets/d1/data")
    assert spec.model_key == ("stress-inputs/u/1/model.py" if model else None)
    assert spec.config["data_info"]["ref_path"] == "ref.csv" and spec.config["data_info"]["eval_path"] == "eval"
    assert spec.config["model_info"] == ({"path": "model.py"} if model else {})
    assert spec.config["tests_config"] == {"numeric_drift": {"thresholds": [0.1, None, 0.6]}}
    assert (spec.memory_limit_mb, spec.timeout_seconds, spec.heartbeat_seconds) == (6000, 600.0, 5.0)
    assert spec.cpu_limit_millicores == 2 * job.cpu_request_millicores
    assert spec.results_prefix == "stress/job-1/" and spec.logs_key == "stress/job-1/logs.txt"
    assert (spec.error_key, spec.claim_key) == ("stress/job-1/error.json", "stress/job-1/claim.json")
    # The job's config (object keys) is not changed by building the message.
    assert job.config["data_info"]["ref_path"] == "stress-inputs/u/1/ref.csv"


def test_the_worker_error_report_of_a_stress_test_is_read_by_the_platform():
    from chalicelib.services.stress_messages import StressMessageConfig, stress_test_message

    built = stress_test_message(_stress_job(), "a/ref.csv", "a/eval.csv", "a/model.py",
                                StressMessageConfig(bucket="b", timeout_seconds=60, heartbeat_seconds=5))
    spec = parse_message({"task_token": "t", "trial": built}).trial
    report = error_report(spec, TrialFailure("TrialError", "ModelError: model.py: boom"), "2026-12-01T00:00:00Z", 1.0)
    read = trial_messages.read_error_report(json.dumps(report).encode())
    assert (read["error_type"], read["message"]) == ("TrialError", "ModelError: model.py: boom")


def test_the_stress_test_message_of_a_trial_parses_in_the_worker():
    from chalicelib.services.stress_messages import StressMessageConfig, stress_test_message
    from kilele_worker.message import MessageError, StressTestSpec

    job = _stress_job(model=False)
    job.config["model_info"] = {"app": "loans", "app_version": 2, "trial_id": "t-9"}
    trial_model = {"trial_id": "t-9", "train_job_id": "tj-1", "model_id": "m-1", "model_name": "tree",
                   "model_class": "SkDecisionTree", "model_key": "models/m-1/sk_decision_tree.py",
                   "params_key": "trials/t-9/params.npz", "knobs": {"max_depth": 4},
                   "dependencies": {"scikit-learn": "1.5.0"}, "task": "TABULAR_CLASSIFICATION"}
    built = stress_test_message(job, "stress-inputs/u/1/ref.csv", "datasets/d1/data", None,
                                StressMessageConfig(bucket="b", timeout_seconds=600, heartbeat_seconds=5),
                                trial_model=trial_model)
    spec = parse_message(json.dumps({"task_token": "tok", "trial": built})).trial
    assert isinstance(spec, StressTestSpec) and spec.is_trial_model
    assert (spec.model_key, spec.model_class, spec.params_key) == (
        "models/m-1/sk_decision_tree.py", "SkDecisionTree", "trials/t-9/params.npz")
    assert spec.knobs == {"max_depth": 4} and spec.dependencies == {"scikit-learn": "1.5.0"}
    assert (spec.trial_id, spec.train_job_id, spec.task) == ("t-9", "tj-1", "TABULAR_CLASSIFICATION")
    assert spec.config["model_info"] == {"trial_id": "t-9"}  # the engine's config: one model source
    # A trial model without its class, or with a model file path too, is refused.
    for change in ({"model_class": None}, {"config": {**built["config"], "model_info": {"path": "model.py"}}}):
        with pytest.raises(MessageError):
            parse_message(json.dumps({"task_token": "tok", "trial": {**built, **change}}))


# What the run-task states (aws-sdk:s3:putObject with "Body.$": "$$.Task.Token") leave at
# run_token_key: AWS and LocalStack write the string Body as JSON text (quoted), moto as it is.
RUN_TOKEN_OBJECTS = {"aws": json.dumps(TOKEN).encode(), "moto": TOKEN.encode(), "moto, newline": f"{TOKEN}\n".encode()}


@pytest.mark.parametrize("form", sorted(RUN_TOKEN_OBJECTS))
def test_the_run_token_object_reads_as_the_token_on_both_sides(form):
    from kilele_worker.start import run_token as worker_run_token

    body = RUN_TOKEN_OBJECTS[form]
    assert trial_messages.run_token(body) == worker_run_token(body) == TOKEN


def test_a_malformed_run_token_object_is_refused_on_both_sides():
    from kilele_worker.start import run_token as worker_run_token

    for read in (trial_messages.run_token, worker_run_token):
        assert read(b"") == ""  # not written yet
        with pytest.raises(ValueError):
            read(b'"unterminated')
