"""The worker's settings: the only module of kilele_worker that reads the environment.

``WorkerSettings.from_environ()`` reads it once, in ``__main__``; everything else gets the frozen
settings object passed down. Nothing in kilele_worker writes ``os.environ``.

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
#: Where the per-trial work directories go (default: the system temp directory).
WORKDIR_ROOT_ENV = "KILELE_WORKER_WORKDIR_ROOT"
#: Any non-empty value keeps the work directory after the trial (debugging).
KEEP_WORKDIR_ENV = "KILELE_WORKER_KEEP_WORKDIR"
#: The unprivileged user the model runs as when the worker is root ("" : never switch user).
MODEL_USER_ENV = "KILELE_MODEL_USER"
DEFAULT_MODEL_USER = "kilele-model"


@dataclass(frozen=True)
class WorkerSettings:
    message_json: Optional[str] = None
    message_s3: Optional[str] = None
    workdir_root: Optional[str] = None
    keep_workdir: bool = False
    model_user: Optional[str] = DEFAULT_MODEL_USER
    #: A read-only snapshot of the worker's environment, the source of the model's scrubbed one.
    environ: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False, compare=False)

    @classmethod
    def from_environ(cls, environ: Optional[Mapping[str, str]] = None) -> "WorkerSettings":
        """The settings from ``environ`` (default: this process's environment)."""
        source = dict(os.environ if environ is None else environ)
        user = source.get(MODEL_USER_ENV, DEFAULT_MODEL_USER)
        return cls(
            message_json=source.get(MESSAGE_ENV) or None,
            message_s3=source.get(MESSAGE_S3_ENV) or None,
            workdir_root=source.get(WORKDIR_ROOT_ENV) or None,
            keep_workdir=bool(source.get(KEEP_WORKDIR_ENV)),
            model_user=user or None,
            environ=MappingProxyType(source),
        )


__all__ = ["WorkerSettings", "MESSAGE_ENV", "MESSAGE_S3_ENV"]
