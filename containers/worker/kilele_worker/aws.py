"""The worker's AWS clients and how it reads AWS errors.

The worker talks to two services only: S3 (inputs, outputs, its log, the trial's claim and
error report) and Step Functions (the task token). It has no DynamoDB client: the trial record is
the platform's (the trial loop writes it from what the worker reports with the token).
Credentials, region and endpoint come from boto3's own configuration (``AWS_ENDPOINT_URL``
locally).
"""
from __future__ import annotations

from typing import Any

#: A SendTask* error that means the execution no longer waits for this token: it timed out, was
#: stopped (stop_train_job stops the worker slots' executions), or the task was answered already.
TOKEN_GONE_CODES = frozenset({"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"})
#: The answer of a conditional put (``IfNoneMatch="*"``) when the object exists.
PRECONDITION_FAILED_CODES = frozenset({"PreconditionFailed", "412"})


class AwsClients:
    """The supervisor's boto3 clients (thread-safe; shared by the heartbeat thread)."""

    SERVICES = ("s3", "stepfunctions")

    def __init__(self, session: Any = None):
        import boto3
        from botocore.config import Config

        session = session or boto3.session.Session()
        config = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=10, read_timeout=60)
        self.s3 = session.client("s3", config=config)
        self.sfn = session.client("stepfunctions", config=config)


def error_code(error: BaseException) -> str:
    """The AWS error code of a botocore ClientError, else the exception's class name."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", "")) or type(error).__name__
    return type(error).__name__


def describe(error: BaseException) -> str:
    return f"{error_code(error)}: {error}"


def token_gone(error: BaseException) -> bool:
    return error_code(error) in TOKEN_GONE_CODES


def precondition_failed(error: BaseException) -> bool:
    return error_code(error) in PRECONDITION_FAILED_CODES


__all__ = ["AwsClients", "TOKEN_GONE_CODES", "error_code", "describe", "token_gone", "precondition_failed"]
