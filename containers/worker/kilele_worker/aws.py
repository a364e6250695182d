"""The worker's AWS clients and how it reads AWS errors.

The worker talks to two services only: S3 (inputs, outputs, its log, the trial's claim and
error report) and Step Functions (the task token). It has no DynamoDB client: the trial record is
the platform's (the trial loop writes it from what the worker reports with the token).
Credentials, region and endpoint come from boto3's own configuration (``AWS_ENDPOINT_URL``
locally).

On AWS (``KILELE_TRIAL_ROLE_ARN`` set) the job's own role may do little more than assume the
trial role; the worker's S3 client uses that role through a session whose policy
(:func:`session_policy`) names this run's keys only: it reads its inputs and writes its
outputs, and no other trial's. Task-token answers keep the job's own credentials, so a run
that cannot get its S3 credentials still says why. The model process gets no credentials at
all (kilele_worker.sandbox).
"""
from __future__ import annotations

import json
import re
from typing import Any, Optional

#: A SendTask* error that means the execution no longer waits for this token: it timed out, was
#: stopped (stop_train_job stops the worker slots' executions), or the task was answered already.
TOKEN_GONE_CODES = frozenset({"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"})
#: The answer of a conditional put (``IfNoneMatch="*"``) when the object exists.
PRECONDITION_FAILED_CODES = frozenset({"PreconditionFailed", "412"})


#: An assumed role's session lasts at most an hour when a role's credentials assume it (role
#: chaining); the credentials are fetched again before they expire, for as long as a run lasts.
RUN_SESSION_SECONDS = 3600


def _config() -> Any:
    from botocore.config import Config

    return Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=10, read_timeout=60)


class AwsClients:
    """The supervisor's boto3 clients (thread-safe; shared by the heartbeat thread)."""

    SERVICES = ("s3", "stepfunctions")

    def __init__(self, session: Any = None, s3_session: Any = None):
        """``s3_session``: the session of the S3 client, if not ``session`` (see :meth:`for_run`)."""
        import boto3

        self.session = session or boto3.session.Session()
        self.s3_session = s3_session or self.session
        self.s3 = self.s3_session.client("s3", config=_config())
        self.sfn = self.session.client("stepfunctions", config=_config())

    def for_run(self, spec: Any, role_arn: Optional[str]) -> "AwsClients":
        """The clients of one run: with ``role_arn`` (on AWS), S3 through that role, in a session
        narrowed by :func:`session_policy` to ``spec``'s keys; without, these clients."""
        if not role_arn:
            return self
        return AwsClients(self.session, s3_session=run_session(self.session, spec, role_arn))


def _arn_partition(role_arn: str) -> str:
    parts = role_arn.split(":")
    return parts[1] if len(parts) > 1 and parts[1] else "aws"


def run_keys(spec: Any) -> tuple[list[str], list[str], list[str]]:
    """What one run (a trial, a model description or a stress test) may touch in its bucket:
    the keys it reads, the keys it writes and the prefixes it writes under (a stress test's
    results folder), each from the message, which names every key the worker uses."""
    if spec.kind == "dataset_check":  # kilele_worker.dataset_check: one file in, one verdict out
        if spec.build:  # a file it builds first (kilele_worker.dataset_build): its manifest in, the file out
            return sorted({spec.source_key, spec.build["manifest_key"]}), sorted({spec.verdict_key, spec.source_key}), []
        return [spec.source_key], [spec.verdict_key], []
    if spec.kind == "stress_test":
        reads = [spec.ref_key, spec.eval_key, spec.model_key, spec.params_key, spec.continuous.get("history_key")]
        writes, prefixes = [spec.logs_key, spec.error_key, spec.claim_key], [spec.results_prefix]
    elif spec.is_describe:
        reads, writes, prefixes = [spec.model_key], [spec.logs_key, spec.error_key, spec.claim_key], []
    else:
        reads = [spec.model_key, spec.train_dataset_key, spec.val_dataset_key]
        writes = [spec.params_key, spec.onnx_key, spec.logs_key, spec.error_key, spec.claim_key]
        prefixes = []
    reads.append(getattr(spec, "run_token_key", None))  # the run task's token (kilele_worker.start)
    return (sorted({k for k in reads if k}), sorted({k for k in writes if k}), sorted(set(prefixes)))


def session_policy(spec: Any, partition: str = "aws") -> dict[str, Any]:
    """The session policy of one run: ``s3:GetObject`` on its inputs, ``s3:PutObject`` (and
    aborting its own multipart uploads) on its outputs; nothing else. The trial role's own
    policy allows the worker's prefixes of the data bucket; a session gets what both allow."""
    reads, writes, prefixes = run_keys(spec)
    # A scheduled continuous test's new data: the files of its manifest, too many to name here
    # (a session policy holds 2048 characters), lie under the folders the message names.
    # So are a built dataset's (kilele_worker.dataset_build): the app's capture and ground-truth folders.
    read_prefixes = ((getattr(spec, "continuous", None) or {}).get("source_prefixes")
                     or (getattr(spec, "build", None) or {}).get("source_prefixes") or [])

    def arn(key: str) -> str:
        return f"arn:{partition}:s3:::{spec.bucket}/{key}"

    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadItsInputs", "Effect": "Allow", "Action": "s3:GetObject",
         "Resource": [arn(k) for k in reads] + [arn(p + "*") for p in read_prefixes]},
        {"Sid": "WriteItsOutputs", "Effect": "Allow", "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
         "Resource": [arn(k) for k in writes] + [arn(p + "*") for p in prefixes]},
    ]}


def session_name(spec: Any) -> str:
    """``kilele-<kind>-<id>``: what CloudTrail shows as the caller of every S3 call of the run."""
    return re.sub(r"[^\w+=,.@-]", "-", f"kilele-{spec.kind}-{spec.id}")[:64]


def assume_role_arguments(spec: Any, role_arn: str) -> dict[str, Any]:
    """The ``sts:AssumeRole`` call that gives one run its credentials."""
    tags = [{"Key": "kilele:kind", "Value": spec.kind}, {"Key": "kilele:run", "Value": spec.id[:256]}]
    return {
        "RoleArn": role_arn,
        "RoleSessionName": session_name(spec),
        "Policy": json.dumps(session_policy(spec, _arn_partition(role_arn)), separators=(",", ":")),
        "DurationSeconds": RUN_SESSION_SECONDS,
        "Tags": tags,
    }


def run_session(session: Any, spec: Any, role_arn: str) -> Any:
    """A boto3 session whose credentials are the trial role's, narrowed to ``spec``'s keys,
    fetched on first use and again before they expire. STS errors (the role cannot be assumed,
    the policy is too large) surface at the first S3 call, where a run's failures are reported."""
    import boto3
    import botocore.session
    from botocore.credentials import CredentialProvider, CredentialResolver, DeferredRefreshableCredentials

    sts = session.client("sts", config=_config())
    arguments = assume_role_arguments(spec, role_arn)

    def fetch() -> dict[str, str]:
        credentials = sts.assume_role(**arguments)["Credentials"]
        return {"access_key": credentials["AccessKeyId"], "secret_key": credentials["SecretAccessKey"],
                "token": credentials["SessionToken"], "expiry_time": credentials["Expiration"].isoformat()}

    class RunCredentials(CredentialProvider):
        METHOD = "kilele-run-role"

        def load(self) -> Any:
            return DeferredRefreshableCredentials(refresh_using=fetch, method=self.METHOD)

    core = botocore.session.Session()
    core.register_component("credential_provider", CredentialResolver([RunCredentials()]))
    return boto3.session.Session(botocore_session=core, region_name=session.region_name)


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


__all__ = ["AwsClients", "run_keys", "session_policy", "assume_role_arguments", "run_session", "TOKEN_GONE_CODES", "error_code", "describe", "token_gone", "precondition_failed"]
