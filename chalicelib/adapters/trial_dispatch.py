"""Where a trial (or a model description) runs: the worker image on AWS Batch.

The trials queue's consumer calls :meth:`dispatch` with the message Step Functions sent
(``{"task_token", "trial"}``). The worker answers the task token itself; a Batch job that dies
without answering is caught by the state's heartbeat timeout, and sooner by the Batch
job-state-change rule (:meth:`BatchTrialDispatcher.fail_lost_job`).
The local stack's implementation is chalicelib/local/trial_runner.py.
"""
from __future__ import annotations

import json
from typing import Any, Optional, Protocol

import boto3
from botocore.exceptions import ClientError

MESSAGE_ENV = "KILELE_TRIAL_MESSAGE"


class TrialDispatcher(Protocol):
    def dispatch(self, message: dict[str, Any]) -> str:
        """Start running ``message``; returns an id of the run (job id, process id...)."""


class BatchTrialDispatcher:
    """Submits the worker image as an AWS Batch job (GPU trials to the GPU queue)."""

    def __init__(self, cpu_queue: str, gpu_queue: str, job_definition: str, gpu_job_definition: str,
                 client: Any = None, sfn_client: Any = None):
        self.cpu_queue, self.gpu_queue = cpu_queue, gpu_queue
        self.job_definition, self.gpu_job_definition = job_definition, gpu_job_definition
        self._batch = client or boto3.client("batch")
        self._sfn = sfn_client or boto3.client("stepfunctions")

    def dispatch(self, message: dict[str, Any]) -> str:
        trial = message["trial"]
        gpus = int(trial.get("gpu_count") or 0)
        # No command override: the image's entrypoint is already `kilele-worker run`.
        overrides: dict[str, Any] = {"environment": [{"name": MESSAGE_ENV, "value": json.dumps(message)}]}
        if gpus:
            overrides["resourceRequirements"] = [{"type": "GPU", "value": str(gpus)}]
        response = self._batch.submit_job(
            jobName=f"kilele-{trial['kind']}-{trial['id']}"[:128],
            jobQueue=self.gpu_queue if gpus else self.cpu_queue,
            jobDefinition=self.gpu_job_definition if gpus else self.job_definition,
            containerOverrides=overrides,
            timeout={"attemptDurationSeconds": int(trial["timeout_seconds"]) + 600},
            tags={"kilele:trial": trial["id"], "kilele:train-job": trial["train_job_id"]},
        )
        return response["jobId"]

    def fail_lost_job(self, job_detail: dict[str, Any]) -> Optional[str]:
        """For a Batch job that ended FAILED (e.g. killed, out of memory, host lost), fail its
        task token so the workflow records the trial at once. Returns the token's trial id."""
        if job_detail.get("status") != "FAILED":
            return None
        env = {e["name"]: e["value"] for e in job_detail.get("container", {}).get("environment", [])}
        if MESSAGE_ENV not in env:
            return None
        message = json.loads(env[MESSAGE_ENV])
        try:
            self._sfn.send_task_failure(
                taskToken=message["task_token"],
                error="WorkerLost",
                cause=str(job_detail.get("statusReason") or "the Batch job failed")[:256],
            )
        except ClientError as e:  # the worker had already answered, or the execution ended
            if e.response["Error"]["Code"] not in ("TaskTimedOut", "InvalidToken", "TaskDoesNotExist"):
                raise
        return message["trial"]["id"]
