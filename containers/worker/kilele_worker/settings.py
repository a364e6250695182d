"""The worker's settings: the only module of kilele_worker that reads the environment.

``WorkerSettings.from_environ()`` reads it once, in ``__main__``; everything else gets the frozen
settings object passed down. Nothing in kilele_worker writes ``os.environ`` but
:func:`take_environment`, for the local stack's warm workers (forked, not exec'd).

The settings also carry a snapshot of the whole environment (``environ``), never printed: the
sandbox builds the model process's scrubbed environment from it (see
:func:`kilele_worker.sandbox.child_environment`). AWS credentials, region and endpoint are not
settings of the worker: boto3 reads them itself (it honours ``AWS_ENDPOINT_URL``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, Optional

#: The trial message as JSON (the Batch dispatcher sets it per job; the platform's
#: chalicelib/adapters/trial_dispatch uses the same name, pinned by tests/contract).
MESSAGE_ENV = "KILELE_TRIAL_MESSAGE"
#: The trial message as an S3 URI (SageMaker caps environment values at 512 characters).
MESSAGE_S3_ENV = "KILELE_TRIAL_MESSAGE_S3"
#: A dataset check's message as JSON (issue 13, finding 3; chalicelib/adapters/dataset_checks/batch.py
#: sets it per job): when set, ``run`` checks that dataset instead of running a trial.
DATASET_CHECK_ENV = "KILELE_DATASET_CHECK"
#: Where the per-trial work directories go (default: the system temp directory).
WORKDIR_ROOT_ENV = "KILELE_WORKER_WORKDIR_ROOT"
#: Any non-empty value keeps the work directory after the trial (debugging).
KEEP_WORKDIR_ENV = "KILELE_WORKER_KEEP_WORKDIR"
#: "0": the model keeps the worker's user even when the worker is root (default: a user of its own).
SANDBOX_USER_ENV = "KILELE_SANDBOX_USER"
#: "0": no network, PID or mount namespaces for the model (default: where the kernel allows).
SANDBOX_ISOLATE_ENV = "KILELE_SANDBOX_ISOLATE"
#: Processes and threads the model's user may have at once (a fork bomb stops there).
SANDBOX_MAX_PROCESSES_ENV = "KILELE_SANDBOX_MAX_PROCESSES"
DEFAULT_MAX_PROCESSES = 256
#: On AWS: the role whose session, narrowed to one run's keys, the worker's S3 client uses
#: (kilele_worker.aws.run_session); unset (locally): the worker's own credentials.
TRIAL_ROLE_ARN_ENV = "KILELE_TRIAL_ROLE_ARN"
#: Seconds between uploads of the log so far while a run goes on (only when it grew).
LOG_UPLOAD_SECONDS_ENV = "KILELE_LOG_UPLOAD_SECONDS"
DEFAULT_LOG_UPLOAD_SECONDS = 2.0
#: How long a heartbeat answered InvalidToken before any was accepted is asked again rather than
#: believed (kilele_worker.heartbeats: emulators set a task's heartbeat up a moment after its
#: token is out, seconds later on a loaded machine); a tenth of the default heartbeat timeout.
DEFAULT_TOKEN_SETTLE_SECONDS = 10.0


@dataclass(frozen=True)
class WorkerSettings:
    message_json: Optional[str] = None
    message_s3: Optional[str] = None
    #: A dataset check's message (kilele_worker.dataset_check), if this job is one.
    dataset_check_json: Optional[str] = None
    workdir_root: Optional[str] = None
    keep_workdir: bool = False
    #: The model gets a user of its own (``kilele.sandbox.UID_BASE`` + a pid) when the worker is root.
    sandbox_user: bool = True
    #: Network, PID and mount namespaces for the model, where the kernel allows them.
    sandbox_isolate: bool = True
    sandbox_max_processes: int = DEFAULT_MAX_PROCESSES
    log_upload_seconds: float = DEFAULT_LOG_UPLOAD_SECONDS
    #: See :data:`DEFAULT_TOKEN_SETTLE_SECONDS` (tests pass less).
    token_settle_seconds: float = DEFAULT_TOKEN_SETTLE_SECONDS
    #: The trial role to assume for S3, narrowed to the run (on AWS; None: own credentials).
    trial_role_arn: Optional[str] = None
    #: A read-only snapshot of the worker's environment, the source of the model's scrubbed one.
    environ: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False, compare=False)

    @classmethod
    def from_environ(cls, environ: Optional[Mapping[str, str]] = None) -> "WorkerSettings":
        """The settings from ``environ`` (default: this process's environment)."""
        source = dict(os.environ if environ is None else environ)
        return cls(
            message_json=source.get(MESSAGE_ENV) or None,
            message_s3=source.get(MESSAGE_S3_ENV) or None,
            dataset_check_json=source.get(DATASET_CHECK_ENV) or None,
            workdir_root=source.get(WORKDIR_ROOT_ENV) or None,
            keep_workdir=bool(source.get(KEEP_WORKDIR_ENV)),
            sandbox_user=source.get(SANDBOX_USER_ENV, "1").strip() != "0",
            sandbox_isolate=source.get(SANDBOX_ISOLATE_ENV, "1").strip() != "0",
            sandbox_max_processes=int(source.get(SANDBOX_MAX_PROCESSES_ENV) or DEFAULT_MAX_PROCESSES),
            log_upload_seconds=float(source.get(LOG_UPLOAD_SECONDS_ENV) or DEFAULT_LOG_UPLOAD_SECONDS),
            trial_role_arn=source.get(TRIAL_ROLE_ARN_ENV) or None,
            environ=MappingProxyType(source),
        )


def take_environment(environ: Mapping[str, str]) -> None:
    """Makes ``environ`` this process's whole environment: what exec would have given a worker
    process started for the trial. A warm worker (:mod:`kilele_worker.zygote`) is forked from a
    zygote that holds the model's scrubbed environment, and gets its own (the AWS endpoint and
    credentials boto3 reads) with its trial; :meth:`WorkerSettings.from_environ` then reads it."""
    os.environ.clear()
    os.environ.update(environ)


__all__ = ["WorkerSettings", "take_environment", "MESSAGE_ENV", "MESSAGE_S3_ENV", "TRIAL_ROLE_ARN_ENV",
           "DATASET_CHECK_ENV"]
