"""The AWS dataset check dispatcher (issue 13, finding 3): the check runs as an AWS Batch job in
the worker image, on the CPU queue under the CPU worker job definition (as trials and stress
tests do), not in the API Lambda.

The job gets its message in ``KILELE_DATASET_CHECK`` (containers/worker/kilele_worker/settings.py;
tests/contract pins the two names together) and writes a verdict to S3, which the platform
records (:meth:`DatasetCheckJob.settle`). A job that ends FAILED without one reaches
:func:`lost_check` through the Batch job-state-change rule that already serves trials
(``app.batch_job_failed``), and the dataset is INVALID with Batch's reason.
Its local twin, a thread of the local stack, is ``local.py`` beside this file.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Optional

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import Unavailable

#: The worker reads the check's message from this variable.
CHECK_ENV = "KILELE_DATASET_CHECK"
JOB_NAME_PREFIX = "kilele-dataset-check-"
#: Batch stops a check running longer than this (a 2 GiB file is read and checked in minutes).
JOB_TIMEOUT_SECONDS = 3600
# The check is I/O and one core; the job definition's default (2 vCPUs, 8 GiB) is more than it needs,
# and asking less lets checks share capacity with trials.
CHECK_VCPUS = 1
CHECK_MEMORY_MB = 2048


class BatchDatasetCheckDispatcher:
    """Submits one Batch job per PENDING dataset. ``batch``: makes the Batch client (on first
    use: most API requests never check a dataset); ``message_of(dataset_id)``: the job's message
    (:meth:`DatasetCheckJob.job_message` for the data bucket)."""

    def __init__(self, job_queue: str, job_definition: str, batch: Callable[[], Any],
                 message_of: Callable[[str], dict[str, Any]]):
        self.job_queue, self.job_definition = job_queue, job_definition
        self._batch = batch
        self._message_of = message_of

    def dispatch(self, dataset_id: str) -> None:
        """Submit the check of ``dataset_id``; :class:`Unavailable` if Batch refused or could not be reached."""
        if not self.job_queue or not self.job_definition:
            raise Unavailable("no AWS Batch job queue and job definition are configured for dataset checks")
        message = self._message_of(dataset_id)
        try:
            self._batch().submit_job(
                jobName=f"{JOB_NAME_PREFIX}{dataset_id}"[:128],
                jobQueue=self.job_queue,
                jobDefinition=self.job_definition,
                containerOverrides={
                    "environment": [{"name": CHECK_ENV, "value": json.dumps(message, separators=(",", ":"))}],
                    "resourceRequirements": [{"type": "VCPU", "value": str(CHECK_VCPUS)},
                                             {"type": "MEMORY", "value": str(CHECK_MEMORY_MB)}],
                },
                timeout={"attemptDurationSeconds": JOB_TIMEOUT_SECONDS},
                tags={"kilele:dataset-check": dataset_id},
            )
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            raise Unavailable(f"AWS Batch refused the dataset check job ({code})") from e
        except BotoCoreError as e:
            raise Unavailable("AWS Batch could not be reached to start the dataset check job") from e


def ended_check(job_detail: dict[str, Any]) -> Optional[tuple[str, bool]]:
    """``(dataset_id, succeeded)`` for a dataset check's Batch job that ended (SUCCEEDED or
    FAILED: the detail of a "Batch Job State Change" event), None for any other job or state."""
    if job_detail.get("status") not in ("SUCCEEDED", "FAILED"):
        return None
    environment = {e.get("name"): e.get("value") for e in (job_detail.get("container") or {}).get("environment") or []}
    if CHECK_ENV not in environment:
        return None
    try:
        return str(json.loads(environment[CHECK_ENV])["dataset_id"]), job_detail["status"] == "SUCCEEDED"
    except (ValueError, KeyError, TypeError):
        return None


def failure_reason(job_detail: dict[str, Any]) -> str:
    """Why Batch says a job FAILED (its status reason and its container's)."""
    reason = str(job_detail.get("statusReason") or "the Batch job failed")
    container_reason = (job_detail.get("container") or {}).get("reason")
    if container_reason:
        reason += f" ({container_reason})"
    return reason


def lost_check(job_detail: dict[str, Any]) -> Optional[tuple[str, str]]:
    """``(dataset_id, reason)`` for a dataset check's Batch job that ended FAILED (the detail of
    a "Batch Job State Change" event), None for any other job."""
    ended = ended_check(job_detail)
    if ended is None or ended[1]:
        return None
    return ended[0], failure_reason(job_detail)


__all__ = ["BatchDatasetCheckDispatcher", "ended_check", "failure_reason", "lost_check", "CHECK_ENV", "JOB_NAME_PREFIX"]
