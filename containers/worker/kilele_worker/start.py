"""Saying that a run started, so the heartbeat timeout counts from there (issue 13, finding 1).

A run's message waits in the trials queue and then in AWS Batch's job queue (a GPU compute
environment starts at 0 instances; a busy CPU queue holds jobs for minutes). The state machines
therefore wait in two steps: the message's ``task_token`` is the *queue* task's, bounded by the
queue wait alone, with no heartbeat; once the worker has claimed the run it answers that token
(:func:`report_start`), and the next state writes the *run* task's token to the message's
``run_token_key`` (an S3 object beside the run's log) and waits on it with the heartbeat timeout.
The worker reads that token and sends its heartbeats and its answer with it.

A message without ``run_token_key`` is one task token for the whole run (the worker's own tests,
older messages): nothing is reported at start.
"""
from __future__ import annotations

import json
import time
from typing import Any

from kilele_worker.aws import AwsClients, describe, error_code, token_gone
from kilele_worker.errors import TokenGone

#: How long the worker waits for the run task's token after answering the queue task: Step
#: Functions writes it within a second of the answer; a minute covers S3 or Step Functions retries.
RUN_TOKEN_WAIT_SECONDS = 60.0
_MISSING_OBJECT_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


class RunTokenMissing(Exception):
    """The run task's token did not appear: the run cannot report (the state's heartbeat
    timeout records the trial as failed)."""


def run_token(body: bytes) -> str:
    """The run task's token from the object the state machine wrote (the platform reads it with
    the same rule: ``chalicelib.services.trial_messages.run_token``). AWS and LocalStack store the
    ``aws-sdk:s3:putObject`` integration's string ``Body`` as JSON text, with quotes; moto stores it
    bare. A task token never starts with a quote. "" if empty."""
    text = body.decode().strip()
    if not text.startswith('"'):
        return text
    return json.loads(text).strip()  # a JSON string (it starts with a quote); ValueError if malformed


def report_start(aws: AwsClients, start_token: str, trial: Any, started_at: str,
                 wait_seconds: float = RUN_TOKEN_WAIT_SECONDS) -> str:
    """Answer the queue task (the run started at ``started_at``) and return the run task's token.

    Raises :class:`TokenGone` when the queue task no longer waits (the queue wait's bound passed,
    or the job was stopped): the run must not start. Raises :class:`RunTokenMissing` when the run
    token is not written within ``wait_seconds``."""
    try:
        aws.sfn.send_task_success(taskToken=start_token, output=json.dumps({"started_at": started_at}))
    except Exception as e:  # noqa: BLE001 - a ClientError's code says which
        if token_gone(e):
            raise TokenGone(f"the queue task no longer waits ({error_code(e)}): the queue wait's bound passed "
                            "or the job was stopped") from e
        raise
    deadline = time.monotonic() + wait_seconds
    pause = 0.1
    while True:
        try:
            body = aws.s3.get_object(Bucket=trial.bucket, Key=trial.run_token_key)["Body"].read()
            token = run_token(body)
            if token:
                return token
        except Exception as e:  # noqa: BLE001
            if error_code(e) not in _MISSING_OBJECT_CODES:
                raise RunTokenMissing(f"could not read the run token: {describe(e)}") from e
        if time.monotonic() >= deadline:
            raise RunTokenMissing(f"no run token at s3://{trial.bucket}/{trial.run_token_key} after {wait_seconds:.0f} s")
        time.sleep(pause)
        pause = min(pause * 2, 1.0)


__all__ = ["report_start", "run_token", "RunTokenMissing", "RUN_TOKEN_WAIT_SECONDS"]
