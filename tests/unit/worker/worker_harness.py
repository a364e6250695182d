"""Test harness for the worker: moto resources for a trial (bucket, queue, a state machine with a
real task token) and helpers to read what the worker left behind (S3 objects, the execution).
The worker has no DynamoDB: nothing here creates a table."""
from __future__ import annotations

import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[3]
WORKER_SRC = ROOT / "containers" / "worker"
if str(WORKER_SRC) not in sys.path:  # the worker works from the source tree, installed or not
    sys.path.insert(0, str(WORKER_SRC))

import boto3  # noqa: E402

EXAMPLES = ROOT / "examples"
BUCKET = "kilele-test"
DECISION_TREE = (EXAMPLES / "models" / "sk_decision_tree.py").read_text()
TREE_KNOBS = {"max_depth": 4, "min_samples_leaf": 1, "criterion": "gini", "ccp_alpha": 0.0001}


def state_machine_definition(queue_url: str) -> dict:
    """The trial step as the train-job workflow has it: a task-token SQS message, TrialError caught."""
    return {
        "StartAt": "RunTrial",
        "States": {
            "RunTrial": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {"QueueUrl": queue_url,
                               "MessageBody": {"task_token.$": "$$.Task.Token", "trial.$": "$.trial"}},
                "HeartbeatSeconds": 60,
                "ResultPath": "$.result",
                "Catch": [{"ErrorEquals": ["TrialError"], "ResultPath": "$.error", "Next": "TrialFailed"}],
                "Next": "TrialDone",
            },
            "TrialFailed": {"Type": "Pass", "Result": "caught", "ResultPath": "$.path", "End": True},
            "TrialDone": {"Type": "Pass", "Result": "done", "ResultPath": "$.path", "End": True},
        },
    }


@dataclass
class Trial:
    id: str
    message: dict
    execution_arn: str
    fields: dict = field(default_factory=dict)


class Platform:
    def __init__(self, endpoint_url: Optional[str] = None) -> None:
        self.s3 = boto3.client("s3", endpoint_url=endpoint_url)
        self.sqs = boto3.client("sqs", endpoint_url=endpoint_url)
        self.sfn = boto3.client("stepfunctions", endpoint_url=endpoint_url)
        self.s3.create_bucket(Bucket=BUCKET)
        self.queue_url = self.sqs.create_queue(QueueName="kilele-trials")["QueueUrl"]
        self.state_machine_arn = self.sfn.create_state_machine(
            name="kilele-trial", definition=json.dumps(state_machine_definition(self.queue_url)),
            roleArn="arn:aws:iam::123456789012:role/kilele-sfn",
        )["stateMachineArn"]
        self.s3.upload_file(str(EXAMPLES / "datasets" / "iris_train.csv"), BUCKET, "datasets/iris_train.csv")
        self.s3.upload_file(str(EXAMPLES / "datasets" / "iris_val.csv"), BUCKET, "datasets/iris_val.csv")

    def start_trial(self, model_source: str, model_class: str, **overrides: Any) -> Trial:
        """Upload the model, start an execution and take its SQS message (with a real task token)."""
        trial_id = "t-" + uuid.uuid4().hex[:10]
        job_id = "j-" + uuid.uuid4().hex[:10]
        model_key = f"models/{trial_id}/model.py"
        self.s3.put_object(Bucket=BUCKET, Key=model_key, Body=model_source.encode())
        fields = {
            "id": trial_id, "train_job_id": job_id, "model_id": "m-1", "model_name": "test-model",
            "model_class": model_class, "task": "TABULAR_CLASSIFICATION",
            "knobs": {}, "train_args": {}, "dependencies": {},
            "gpu_count": 0, "timeout_seconds": 30, "memory_limit_mb": 4096, "heartbeat_seconds": 10,
            "bucket": BUCKET, "model_key": model_key,
            "train_dataset_key": "datasets/iris_train.csv", "val_dataset_key": "datasets/iris_val.csv",
            "params_key": f"trials/{trial_id}/params.npz", "logs_key": f"trials/{trial_id}/logs.txt",
            "onnx_key": f"trials/{trial_id}/model.onnx",
            "error_key": f"trials/{trial_id}/error.json", "claim_key": f"trials/{trial_id}/claim.json",
        }
        fields.update(overrides)
        execution_arn = self.sfn.start_execution(
            stateMachineArn=self.state_machine_arn, name=trial_id, input=json.dumps({"trial": fields}),
        )["executionArn"]
        message = self.receive_message()
        assert message["trial"]["id"] == trial_id
        return Trial(trial_id, message, execution_arn, fields)

    def receive_message(self, timeout: float = 5.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.sqs.receive_message(QueueUrl=self.queue_url, WaitTimeSeconds=1).get("Messages", []):
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])
                return json.loads(m["Body"])
        raise AssertionError("no trial message on the queue")

    def wait_execution(self, arn: str, timeout: float = 5.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            described = self.sfn.describe_execution(executionArn=arn)
            if described["status"] != "RUNNING" or time.monotonic() > deadline:
                return described
            time.sleep(0.05)

    def log_text(self, trial: Trial) -> str:
        return self.s3.get_object(Bucket=BUCKET, Key=trial.fields["logs_key"])["Body"].read().decode()

    def error_report(self, trial: Trial) -> dict:
        """The worker's error.json (what the trial loop records as error_type / error_message)."""
        return json.loads(self.s3.get_object(Bucket=BUCKET, Key=trial.fields["error_key"])["Body"].read())

    def claim(self, trial: Trial) -> dict:
        return json.loads(self.s3.get_object(Bucket=BUCKET, Key=trial.fields["claim_key"])["Body"].read())

    def object_exists(self, key: Optional[str]) -> bool:
        if not key:
            return False
        return self.s3.list_objects_v2(Bucket=BUCKET, Prefix=key).get("KeyCount", 0) > 0
