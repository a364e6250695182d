"""The workflows tests' scripted trial runner: answers trial messages the way the worker would
(imported by conftest.py and the test modules; a module of its own, since conftest modules of
different test folders clash by name)."""
from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable, Optional

from kilele_worker.start import run_token  # the worker's own reading of the run token object


class ScriptedTrials:
    """Answers trial messages like the worker would, from a script: ``outcome(trial) ->
    ("ok", score) | ("fail", error_name) | ("hang", None)``. Like the worker, a failure writes
    its ``error.json`` (at the message's ``error_key``) before SendTaskFailure."""

    KNOB_CONFIG = {"x": {"type": "float", "value_min": 0.0, "value_max": 1.0, "is_exp": False},
                   "depth": {"type": "integer", "value_min": 1, "value_max": 8, "is_exp": False}}
    STARTED_AT = "2026-12-01T10:00:00.000Z"  # the worker's actual start, reported back (a fixed value to check)

    def __init__(self, queue_url: str, aws: Any, seconds_per_trial: float = 0.05):
        self.queue_url = queue_url
        self.seconds_per_trial = seconds_per_trial
        self.outcome: Callable[[dict], tuple[str, Any]] = lambda trial: ("ok", trial["knobs"]["x"])
        # Stress tests: ("ok", number of test cases) | ("fail", message) | ("hang", None)
        self.stress_outcome: Callable[[dict], tuple[str, Any]] = lambda message: ("ok", 3)
        # A stress test's whole worker (message, task token) -> None: it runs and answers itself.
        self.stress_worker: Optional[Callable[[dict, str], None]] = None
        # Model checks (describe): ("ok", None) answers KNOB_CONFIG; ("fail", log text) writes
        # the log and error.json as the worker does when the model cannot be loaded
        self.describe_outcome: Callable[[dict], tuple[str, Any]] = lambda message: ("ok", None)
        # How long a run's job waits for capacity before it starts (None: it never starts).
        self.queue_wait: Callable[[dict], Any] = lambda message: 0.0
        self.seen: list[dict] = []
        self.started: list[dict] = []
        self.bodies: list[dict] = []  # every message as received ({"task_token", "trial"})
        self._sqs = aws.client("sqs")
        self._sfn = aws.client("stepfunctions")
        self._s3 = aws.client("s3")
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

    def _start(self, trial: dict, queue_token: str) -> Any:
        """Like the worker (kilele_worker.start): after the queue wait, answer the queue task, then
        read the run task's token the state machine writes beside the log. None: never started."""
        wait = self.queue_wait(trial)
        if wait is None:
            return None
        time.sleep(wait)
        self._sfn.send_task_success(taskToken=queue_token, output=json.dumps({"started_at": self.STARTED_AT}))
        self.started.append(trial)
        deadline = time.monotonic() + 10
        while True:
            try:
                return run_token(self._s3.get_object(Bucket=trial["bucket"], Key=trial["run_token_key"])["Body"].read())
            except self._s3.exceptions.NoSuchKey:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _answer(self, body: dict) -> None:
        trial = body["trial"]
        self.seen.append(trial)
        self.bodies.append(body)
        token = self._start(trial, body["task_token"])
        if token is None:
            return
        if trial["kind"] == "stress_test":
            self._answer_stress_test(trial, token)
            return
        if trial["kind"] == "describe":
            kind, log = self.describe_outcome(trial)
            if kind == "fail":
                self._s3.put_object(Bucket=trial["bucket"], Key=trial["logs_key"], Body=log.encode())
                report = {"trial_id": trial["id"], "error_type": "ModelLoadError", "message": log.strip().splitlines()[-1]}
                self._s3.put_object(Bucket=trial["bucket"], Key=trial["error_key"], Body=json.dumps(report).encode())
                self._sfn.send_task_failure(taskToken=token, error="ModelLoadError", cause="scripted failure")
                return
            self._sfn.send_task_success(taskToken=token, output=json.dumps({"knob_config": self.KNOB_CONFIG}))
            return
        kind, value = self.outcome(trial)
        started_at = self.STARTED_AT
        time.sleep(self.seconds_per_trial)
        if kind == "ok":
            self._sfn.send_task_success(taskToken=token, output=json.dumps({
                "trial_id": trial["id"], "status": "COMPLETED", "score": value, "model_seconds": 0.01,
                "worker_seconds": self.seconds_per_trial, "started_at": started_at, "params_key": trial["params_key"],
                "logs_key": trial["logs_key"], "onnx_key": None,
            }))
        elif kind == "fail":
            report = {"trial_id": trial["id"], "error_type": value, "message": f"scripted {value}",
                      "started_at": started_at}
            self._s3.put_object(Bucket=trial["bucket"], Key=trial["error_key"], Body=json.dumps(report).encode())
            self._sfn.send_task_failure(taskToken=token, error=value, cause="scripted failure")
        # "hang": never answer; the state's heartbeat timeout catches it

    def _answer_stress_test(self, message: dict, token: str) -> None:
        """Like the worker: results (JSON for the API) under ``results_prefix``, then the summary;
        or ``error.json`` then SendTaskFailure; or silence. ``stress_worker`` set: it answers."""
        if self.stress_worker is not None:
            # The start was reported above: the worker gets the run task's token, and a message
            # without run_token_key, so it does not report a start again.
            self.stress_worker({k: v for k, v in message.items() if k != "run_token_key"}, token)
            return
        kind, value = self.stress_outcome(message)
        time.sleep(self.seconds_per_trial)
        bucket, prefix = message["bucket"], message["results_prefix"]
        self._s3.put_object(Bucket=bucket, Key=message["logs_key"], Body=b"engine log\n")
        if kind == "ok":
            tables = {"test_cases.json": {"columns": ["test_run_id", "status"],
                                          "records": [{"test_run_id": message["test_run_id"], "status": "PASS"}] * value},
                      "test_run.json": {"columns": ["test_run_id"], "records": [{"test_run_id": message["test_run_id"]}]}}
            for name, table in tables.items():
                self._s3.put_object(Bucket=bucket, Key=prefix + name, Body=json.dumps(table).encode())
            self._sfn.send_task_success(taskToken=token, output=json.dumps({
                "job_id": message["id"], "test_run_id": message["test_run_id"], "num_test_cases": value}))
        elif kind == "fail":
            report = {"trial_id": message["id"], "kind": "stress_test", "error_type": "TrialError", "message": value}
            self._s3.put_object(Bucket=bucket, Key=message["error_key"], Body=json.dumps(report).encode())
            self._sfn.send_task_failure(taskToken=token, error="TrialError", cause="scripted failure")
