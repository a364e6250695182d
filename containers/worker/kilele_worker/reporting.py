"""Reporting: everything the worker writes back to the platform, and in which order.

- The **claim** (``claim_key``, e.g. ``trials/<id>/claim.json``): a conditional put
  (``IfNoneMatch="*"``) before anything else. SQS delivers at least once; the worker that creates
  the claim owns the run, a second one sees ``PreconditionFailed`` and leaves: it neither runs the
  model nor answers the token (nor touches the log).
- The **log** (``logs_key``): uploaded before every answer.
- On failure, the **error report** (``error_key``, ``error.json`` beside the log):
  ``{"error_type", "message", "started_at", "worker_seconds", ...}``, written BEFORE
  ``SendTaskFailure``: the trial loop's record step reads it (moto passes the failure's ``cause``
  on as null, and a cause is at most 256 characters on AWS anyway).
- The **answer** with the task token: ``SendTaskSuccess`` (the output carries the score, timings,
  keys and the actual ``started_at``) or ``SendTaskFailure(error=<name>, cause=<message>)``.

The worker never writes the trial record itself: the trial loop is its only writer.
"""
from __future__ import annotations

import json
import os
import socket
from typing import Any, Optional

from kilele_worker import errors
from kilele_worker.aws import AwsClients, describe, error_code, precondition_failed, token_gone
from kilele_worker.errors import TrialFailure
from kilele_worker.message import TrialSpec
from kilele_worker.trial_log import TrialLog, utc_now_iso

CAUSE_MAX_CHARS = 256
ERROR_MESSAGE_MAX_CHARS = 4000


def error_report(trial: TrialSpec, failure: TrialFailure, started_at: Optional[str],
                 worker_seconds: Optional[float]) -> dict[str, Any]:
    """The content of ``error.json``."""
    return {
        "trial_id": trial.id,
        "kind": trial.kind,
        "error_type": failure.error,
        "message": failure.message[:ERROR_MESSAGE_MAX_CHARS] or failure.error,
        "started_at": started_at,
        "worker_seconds": worker_seconds,
        "logs_key": trial.logs_key,
    }


class Reporter:
    """Writes one run's claim, log, error report and answer."""

    def __init__(self, aws: AwsClients, token: str, trial: TrialSpec, log: TrialLog):
        self.aws, self.token, self.trial, self.log = aws, token, trial, log
        self._uploaded_version = -1

    def claim(self, started_at: str) -> bool:
        """Create the run's claim; False if another worker has it. Other errors raise."""
        body = {"trial_id": self.trial.id, "claimed_at": started_at, "host": socket.gethostname(), "pid": os.getpid()}
        try:
            self.aws.s3.put_object(Bucket=self.trial.bucket, Key=self.trial.claim_key, IfNoneMatch="*",
                                   Body=json.dumps(body).encode(), ContentType="application/json")
        except Exception as e:  # noqa: BLE001
            if precondition_failed(e):
                return False
            raise
        return True

    def upload_log(self) -> None:
        version = self.log.version
        try:
            self.aws.s3.put_object(Bucket=self.trial.bucket, Key=self.trial.logs_key,
                                   Body=self.log.text().encode("utf-8", "replace"),
                                   ContentType="text/plain; charset=utf-8")
            self._uploaded_version = version
        except Exception as e:  # noqa: BLE001 - still report the outcome
            stdout(f"could not upload the trial log to s3://{self.trial.bucket}/{self.trial.logs_key}: {describe(e)}")

    def upload_log_if_changed(self) -> None:
        """The log so far, while the run goes on (``GET .../logs`` shows it), if it grew since the
        last upload."""
        if self.log.version != self._uploaded_version:
            self.upload_log()

    def succeed(self, output: dict[str, Any]) -> int:
        self.upload_log()
        try:
            self.aws.sfn.send_task_success(taskToken=self.token, output=json.dumps(output))
        except Exception as e:  # noqa: BLE001
            return answer_failed("SendTaskSuccess", e)
        return errors.EXIT_REPORTED

    def fail(self, failure: TrialFailure, started_at: Optional[str], worker_seconds: Optional[float]) -> int:
        """The log, then ``error.json``, then ``SendTaskFailure``."""
        self.upload_log()
        report = error_report(self.trial, failure, started_at, worker_seconds)
        try:
            self.aws.s3.put_object(Bucket=self.trial.bucket, Key=self.trial.error_key,
                                   Body=json.dumps(report).encode(), ContentType="application/json")
        except Exception as e:  # noqa: BLE001 - the answer matters more; the record falls back to the error name
            stdout(f"could not write the error report to s3://{self.trial.bucket}/{self.trial.error_key}: {describe(e)}")
        return send_failure(self.aws, self.token, failure)


def send_failure(aws: AwsClients, token: str, failure: TrialFailure) -> int:
    try:
        aws.sfn.send_task_failure(taskToken=token, error=failure.error, cause=failure.message[:CAUSE_MAX_CHARS])
    except Exception as e:  # noqa: BLE001
        return answer_failed("SendTaskFailure", e)
    return errors.EXIT_REPORTED


def answer_failed(call: str, error: BaseException) -> int:
    if token_gone(error):
        stdout(f"{call}: the execution no longer waits for this trial ({error_code(error)})")
        return errors.EXIT_TOKEN_GONE
    stdout(f"{call} failed: {describe(error)}")
    return errors.EXIT_NOT_REPORTED


def stdout(text: str) -> None:
    """A line for the worker's own output (CloudWatch), when the trial log cannot take it."""
    print(f"{utc_now_iso()} [worker] {text}", flush=True)


__all__ = ["Reporter", "error_report", "send_failure", "CAUSE_MAX_CHARS"]
