"""Where a trial (or a model description) runs: the worker image on AWS Batch.

The trials queue's consumer calls :meth:`dispatch` with the message Step Functions sent
(``{"task_token", "trial"}``). The worker answers the task token itself; a Batch job that dies
without answering is caught by the state's heartbeat timeout, and sooner by the Batch
job-state-change rule (:meth:`BatchTrialDispatcher.fail_lost_job`).
Its local twin, a worker process per trial, is ``local.py`` beside this file.
"""
from __future__ import annotations

import json
from typing import Any, Optional

from chalicelib.adapters.trial_dispatch.batch_images import ImageJobDefinitions
from chalicelib.errors import Unavailable
from chalicelib.ports import TaskTokens

#: The worker reads its message from this variable (kilele_worker's settings; a contract test
#: in tests/contract pins the two names together).
MESSAGE_ENV = "KILELE_TRIAL_MESSAGE"

class BatchTrialDispatcher:
    """Submits the worker image as an AWS Batch job (GPU trials to the GPU queue)."""

    def __init__(self, cpu_queue: str, gpu_queue: str, job_definition: str, gpu_job_definition: str,
                 batch: Any, tokens: TaskTokens):
        self.cpu_queue, self.gpu_queue = cpu_queue, gpu_queue
        self.job_definition, self.gpu_job_definition = job_definition, gpu_job_definition
        self._batch = batch
        self._tokens = tokens
        # A trial naming an image (a managed image's ECR URI, a model's docker_image) runs under
        # a job definition of that image: Batch cannot override a container job's image.
        self._images = ImageJobDefinitions(batch)

    def dispatch(self, message: dict[str, Any]) -> str:
        trial = message["trial"]
        gpus = int(trial.get("gpu_count") or 0)
        definition = self.gpu_job_definition if gpus else self.job_definition
        image = (trial.get("image") or {}).get("ref")
        if image:
            try:
                definition = self._images.for_image(definition, image)
            except Unavailable as e:  # the trial fails with why (a failure leaves a trace)
                self._tokens.fail_run(message, "ImageUnavailable", e.message)
                return ""
        # No command override: the image's entrypoint is already `kilele-worker run`.
        overrides: dict[str, Any] = {"environment": [{"name": MESSAGE_ENV, "value": json.dumps(message)}]}
        if gpus:
            overrides["resourceRequirements"] = [{"type": "GPU", "value": str(gpus)}]
        elif trial.get("ram_request_megabytes"):
            # A stress test's resources (seed 002): the memory limit twice the request; whole vCPUs.
            overrides["resourceRequirements"] = [
                {"type": "MEMORY", "value": str(int(trial.get("memory_limit_mb") or trial["ram_request_megabytes"] * 2))},
                {"type": "VCPU", "value": str(max(1, -(-int(trial.get("cpu_request_millicores") or 1000) // 1000)))},
            ]
        tags = {"kilele:trial": trial["id"]}
        if trial.get("train_job_id"):
            tags["kilele:train-job"] = trial["train_job_id"]
        else:
            tags["kilele:kind"] = trial["kind"]
        response = self._batch.submit_job(
            jobName=f"kilele-{trial['kind']}-{trial['id']}"[:128],
            jobQueue=self.gpu_queue if gpus else self.cpu_queue,
            jobDefinition=definition,
            containerOverrides=overrides,
            timeout={"attemptDurationSeconds": int(trial["timeout_seconds"]) + 600},
            tags=tags,
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
        # False when the worker had already answered, or the execution ended: nothing to do.
        self._tokens.fail_run(message, "WorkerLost", str(job_detail.get("statusReason") or "the Batch job failed"))
        return message["trial"]["id"]
