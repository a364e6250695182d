"""Answering Step Functions task tokens on behalf of a run that cannot (it died, or it is the
local Lambda shim). The one place that knows which errors mean "nobody waits for it any more"."""
from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.services.trial_messages import run_token


#: The token was answered already, timed out, or its execution ended: nothing is waiting.
TOKEN_GONE_CODES = frozenset({"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"})
CAUSE_MAX_CHARS = 256
MISSING_OBJECT_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


class SfnTaskTokens:
    """:class:`chalicelib.ports.TaskTokens` over the Step Functions API."""

    def __init__(self, sfn: Any, s3: Any = None):
        """``s3``: reads a started run's token (:meth:`fail_run`); without it only queue tasks fail."""
        self._sfn = sfn
        self._s3 = s3

    def fail(self, token: str, error: str, cause: str) -> bool:
        """SendTaskFailure; False (and nothing raised) if nobody waits for the token any more."""
        try:
            self._sfn.send_task_failure(taskToken=token, error=error, cause=cause[:CAUSE_MAX_CHARS])
            return True
        except ClientError as e:
            if e.response["Error"]["Code"] in TOKEN_GONE_CODES:
                return False
            raise

    def fail_run(self, message: dict[str, Any], error: str, cause: str) -> bool:
        """Fail the run task if the run started (its token, written by the state machine, is at
        the trial's ``run_token_key``), else its queue task."""
        token = self._run_token(message)
        if token:
            return self.fail(token, error, cause)
        if self.fail(message["task_token"], error, cause):
            return True
        token = self._run_token(message)  # it started between the two reads
        return bool(token) and self.fail(token, error, cause)

    def _run_token(self, message: dict[str, Any]) -> str:
        trial = message.get("trial") or {}
        if self._s3 is None or not trial.get("run_token_key"):
            return ""
        try:
            body = self._s3.get_object(Bucket=trial["bucket"], Key=trial["run_token_key"])["Body"].read()
        except ClientError as e:
            if e.response["Error"]["Code"] in MISSING_OBJECT_CODES:
                return ""  # the run has not started
            raise
        return run_token(body)

    def succeed(self, token: str, output: Any) -> bool:
        """SendTaskSuccess with ``output`` as JSON; False if nobody waits for the token any more."""
        try:
            self._sfn.send_task_success(taskToken=token, output=json.dumps(output))
            return True
        except ClientError as e:
            if e.response["Error"]["Code"] in TOKEN_GONE_CODES:
                return False
            raise
