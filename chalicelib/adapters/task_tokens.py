"""Answering Step Functions task tokens on behalf of a run that cannot (it died, or it is the
local Lambda shim). The one place that knows which errors mean "nobody waits for it any more"."""
from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError


#: The token was answered already, timed out, or its execution ended: nothing is waiting.
TOKEN_GONE_CODES = frozenset({"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"})
CAUSE_MAX_CHARS = 256


class SfnTaskTokens:
    """:class:`chalicelib.ports.TaskTokens` over the Step Functions API."""

    def __init__(self, sfn: Any):
        self._sfn = sfn

    def fail(self, token: str, error: str, cause: str) -> bool:
        """SendTaskFailure; False (and nothing raised) if nobody waits for the token any more."""
        try:
            self._sfn.send_task_failure(taskToken=token, error=error, cause=cause[:CAUSE_MAX_CHARS])
            return True
        except ClientError as e:
            if e.response["Error"]["Code"] in TOKEN_GONE_CODES:
                return False
            raise

    def succeed(self, token: str, output: Any) -> bool:
        """SendTaskSuccess with ``output`` as JSON; False if nobody waits for the token any more."""
        try:
            self._sfn.send_task_success(taskToken=token, output=json.dumps(output))
            return True
        except ClientError as e:
            if e.response["Error"]["Code"] in TOKEN_GONE_CODES:
                return False
            raise
