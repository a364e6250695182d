"""Issue 13, finding 1, the worker's part: with ``run_token_key`` in its message, the worker
answers the queue task when it starts (after its claim), reads the run task's token that the
state machine writes beside the log, and heartbeats and answers with that one. A queue task that
no longer waits (its bound passed, the job was stopped) means the run does not start at all."""
from __future__ import annotations

import io
import json
from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError
from worker_harness import BUCKET, DECISION_TREE, TREE_KNOBS

from kilele_worker import errors
from kilele_worker.errors import TokenGone
from kilele_worker.start import RunTokenMissing, report_start


def two_step_definition(queue_url: str) -> dict:
    """The run's two waits as the train-worker machine has them (QueueTrial, then RunTrial)."""
    return {
        "StartAt": "QueueTrial",
        "States": {
            "QueueTrial": {
                "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {"QueueUrl": queue_url,
                               "MessageBody": {"task_token.$": "$$.Task.Token", "trial.$": "$.trial"}},
                "TimeoutSeconds": 60, "ResultPath": "$.started", "Next": "RunTrial",
            },
            "RunTrial": {
                "Type": "Task", "Resource": "arn:aws:states:::aws-sdk:s3:putObject.waitForTaskToken",
                "Parameters": {"Bucket.$": "$.trial.bucket", "Key.$": "$.trial.run_token_key", "Body.$": "$$.Task.Token"},
                "HeartbeatSeconds": 60, "TimeoutSeconds": 120, "ResultPath": "$.result", "End": True,
            },
        },
    }


def _two_step(platform) -> None:
    platform.state_machine_arn = platform.sfn.create_state_machine(
        name="kilele-trial-two-step", definition=json.dumps(two_step_definition(platform.queue_url)),
        roleArn="arn:aws:iam::123456789012:role/kilele-sfn",
    )["stateMachineArn"]


def test_the_worker_reports_its_start_then_answers_the_run_task(platform, run_worker):
    _two_step(platform)
    trial = platform.start_trial(DECISION_TREE, "SkDecisionTree", knobs=TREE_KNOBS, run_token_key="tokens/t1/run-token")
    assert trial.message["trial"]["run_token_key"] == "tokens/t1/run-token"

    assert run_worker(trial.message) == errors.EXIT_REPORTED
    described = platform.wait_execution(trial.execution_arn, timeout=10)
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["started"]["started_at"].startswith("20")  # the queue task's answer: when the run started
    assert output["result"]["score"] > 0.8  # the run task's answer
    assert "start reported" in platform.log_text(trial)


class _Sfn:
    def __init__(self, code: str = ""):
        self.code, self.answered = code, []

    def send_task_success(self, taskToken: str, output: str) -> None:
        if self.code:
            raise ClientError({"Error": {"Code": self.code, "Message": "x"}}, "SendTaskSuccess")
        self.answered.append((taskToken, json.loads(output)))


class _S3:
    def __init__(self, objects: dict):
        self.objects, self.reads = objects, 0

    def get_object(self, Bucket: str, Key: str) -> dict:
        self.reads += 1
        if Key not in self.objects:
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "x"}}, "GetObject")
        return {"Body": io.BytesIO(self.objects[Key])}


SPEC = SimpleNamespace(bucket=BUCKET, run_token_key="trials/t/run-token")


def test_a_queue_task_that_no_longer_waits_means_the_run_does_not_start():
    # moto accepts answers to a stopped execution's token; AWS answers TaskTimedOut.
    aws = SimpleNamespace(sfn=_Sfn("TaskTimedOut"), s3=_S3({}))
    with pytest.raises(TokenGone, match="queue task no longer waits"):
        report_start(aws, "queue-token", SPEC, "2026-12-01T00:00:00Z")
    assert aws.s3.reads == 0  # nothing read, nothing run


def test_the_run_token_is_waited_for_and_a_missing_one_is_reported():
    aws = SimpleNamespace(sfn=_Sfn(), s3=_S3({SPEC.run_token_key: b"run-token\n"}))
    assert report_start(aws, "queue-token", SPEC, "2026-12-01T00:00:00Z") == "run-token"
    assert aws.sfn.answered == [("queue-token", {"started_at": "2026-12-01T00:00:00Z"})]
    # As AWS (and LocalStack) store it: the integration writes the string Body as JSON text.
    aws = SimpleNamespace(sfn=_Sfn(), s3=_S3({SPEC.run_token_key: b'"run-token"'}))
    assert report_start(aws, "queue-token", SPEC, "2026-12-01T00:00:00Z") == "run-token"
    aws = SimpleNamespace(sfn=_Sfn(), s3=_S3({}))
    with pytest.raises(RunTokenMissing, match="no run token"):
        report_start(aws, "queue-token", SPEC, "2026-12-01T00:00:00Z", wait_seconds=0.3)
    assert aws.s3.reads >= 2
