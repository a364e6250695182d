"""The train-worker state machine executed by moto (server mode, in a thread), with the real
Lambda shim calling the real handlers, and a scripted trial runner in place of the worker."""
from __future__ import annotations

import json
import os
import threading
import time
from typing import Any, Callable

import boto3
import pytest
import requests

WORKFLOW_ENV = {
    "KILELE_WORKER_SLOTS_PER_MODEL": "2",
    "KILELE_TRIAL_HEARTBEAT_TIMEOUT_SECONDS": "3",
    "KILELE_MAX_CONSECUTIVE_TRIAL_ERRORS": "3",
}


@pytest.fixture(scope="package")
def moto_server():
    from moto.server import ThreadedMotoServer

    from chalicelib.local.moto_server import MOTO_CONFIG
    from chalicelib.local.ports import free_port

    port = free_port()
    saved = {k: os.environ.get(k) for k in ("MOTO_PORT", "AWS_ENDPOINT_URL")}
    os.environ["MOTO_PORT"] = str(port)  # the interpreter calls SQS at localhost:$MOTO_PORT
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    requests.post(f"{url}/moto-api/config", json=MOTO_CONFIG, timeout=10).raise_for_status()
    os.environ["AWS_ENDPOINT_URL"] = url
    yield url
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


class ScriptedTrials:
    """Answers trial messages like the worker would, from a script: ``outcome(trial) ->
    ("ok", score) | ("fail", error_name) | ("hang", None)``."""

    KNOB_CONFIG = {"x": {"type": "float", "value_min": 0.0, "value_max": 1.0, "is_exp": False},
                   "depth": {"type": "integer", "value_min": 1, "value_max": 8, "is_exp": False}}

    def __init__(self, queue_url: str, seconds_per_trial: float = 0.05):
        self.queue_url = queue_url
        self.seconds_per_trial = seconds_per_trial
        self.outcome: Callable[[dict], tuple[str, Any]] = lambda trial: ("ok", trial["knobs"]["x"])
        self.seen: list[dict] = []
        self._sqs = boto3.client("sqs")
        self._sfn = boto3.client("stepfunctions")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                messages = self._sqs.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
                ).get("Messages", [])
            except Exception:
                continue
            for message in messages:
                self._sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
                threading.Thread(target=self._answer, args=(json.loads(message["Body"]),), daemon=True).start()

    def _answer(self, body: dict) -> None:
        trial, token = body["trial"], body["task_token"]
        self.seen.append(trial)
        if trial["kind"] == "describe":
            self._sfn.send_task_success(taskToken=token, output=json.dumps({"knob_config": self.KNOB_CONFIG}))
            return
        kind, value = self.outcome(trial)
        time.sleep(self.seconds_per_trial)
        if kind == "ok":
            self._sfn.send_task_success(taskToken=token, output=json.dumps({
                "trial_id": trial["id"], "status": "COMPLETED", "score": value, "model_seconds": 0.01,
                "worker_seconds": self.seconds_per_trial, "params_key": trial["params_key"],
                "logs_key": trial["logs_key"], "onnx_key": None,
            }))
        elif kind == "fail":
            self._sfn.send_task_failure(taskToken=token, error=value, cause="scripted failure")
        # "hang": never answer; the state's heartbeat timeout catches it


@pytest.fixture
def platform(moto_server, monkeypatch):
    """Fresh resources under a new stage per test, the Lambda shim and a scripted trial runner."""
    from chalicelib import wiring
    from chalicelib.local.lambda_shim import LambdaShim
    from chalicelib.local.provision import provision
    from chalicelib.settings import get_settings
    from chalicelib.store import models as store_models

    for key, value in WORKFLOW_ENV.items():
        monkeypatch.setenv(key, value)

    def rebuild(**env: str) -> Any:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        wiring.services.cache_clear()
        return wiring.services()

    get_settings.cache_clear()
    store_models.reset_connections()  # earlier tests may have cached connections to another endpoint
    provisioned = provision(get_settings())
    monkeypatch.setenv("KILELE_TRAIN_WORKER_STATE_MACHINE_ARN", provisioned.state_machine_arns["train-worker"])
    monkeypatch.setenv("KILELE_TRIALS_QUEUE_URL", provisioned.queue_urls["trials"])
    services = rebuild()
    shim = LambdaShim(provisioned.queue_urls["lambda-shim"])
    shim.start()
    runner = ScriptedTrials(provisioned.queue_urls["trials"])
    runner.start()
    yield Platform(services, runner, rebuild)
    runner.stop()
    shim.stop()
    get_settings.cache_clear()
    wiring.services.cache_clear()


class Platform:
    def __init__(self, services: Any, runner: ScriptedTrials, rebuild: Callable[..., Any]):
        self.services = services
        self.runner = runner
        self._rebuild = rebuild

    def rebuild(self, **env: str) -> None:
        self.services = self._rebuild(**env)

    def setup_user_with_data(self) -> tuple[Any, str, str, str]:
        """A model developer with a model and a train + validation dataset."""
        from chalicelib.entities import Task, UserType

        users = self.services.users
        admin = users.ensure_superadmin("root@wf", "secret1")
        email = f"dev{time.monotonic_ns()}@wf"
        users.create_user(admin, email, "secret1", UserType.MODEL_DEVELOPER)
        dev = self.services.auth._users.get(email)
        csv = b"a,b,target\n1,2,x\n3,4,y\n5,6,x\n"
        train = self.services.datasets.create_from_bytes(dev, "train", Task.TABULAR_CLASSIFICATION, csv)
        val = self.services.datasets.create_from_bytes(dev, "val", Task.TABULAR_CLASSIFICATION, csv)
        source = b"from kilele.model import BaseModel\n\nclass M(BaseModel):\n    pass\n"
        model = self.services.models.create(dev, "m", Task.TABULAR_CLASSIFICATION, "M", source)
        return dev, model["id"], train["id"], val["id"]

    def start_job(self, budget: dict, app: str = "app") -> tuple[Any, dict]:
        from chalicelib.entities import Task

        dev, model_id, train_id, val_id = self.setup_user_with_data()
        created = self.services.train_jobs.create_train_job(
            dev, app, Task.TABULAR_CLASSIFICATION, train_id, val_id, budget, model_ids=[model_id]
        )
        return dev, created

    def wait_for_job(self, dev: Any, app: str, statuses: tuple[str, ...] = ("STOPPED", "ERRORED"),
                     timeout: float = 60, workers_done: bool = True) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.services.train_jobs.get_train_job(dev, app)
            done = not workers_done or all(w["status"] != "RUNNING" for w in job["workers"])
            if job["status"] in statuses and done:
                return job
            time.sleep(0.2)
        raise AssertionError(f"the job did not reach {statuses} in {timeout} s: {job}")

    def executions(self) -> list[dict]:
        sfn = boto3.client("stepfunctions")
        arn = os.environ["KILELE_TRAIN_WORKER_STATE_MACHINE_ARN"]
        return sfn.list_executions(stateMachineArn=arn)["executions"]

    def wait_executions_done(self, timeout: float = 30) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            executions = self.executions()
            if executions and all(e["status"] != "RUNNING" for e in executions):
                return executions
            time.sleep(0.2)
        raise AssertionError(f"executions still running: {self.executions()}")

