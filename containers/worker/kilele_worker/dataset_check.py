"""``kilele-worker run`` with ``KILELE_DATASET_CHECK`` set: check one large dataset (issue 13,
finding 3) in the worker image instead of the API Lambda (29 s, a small /tmp).

The platform (chalicelib/adapters/dataset_checks/batch.py) submits the job with the check's
message; the worker streams the file from S3 to a local temporary file (boto3's managed
transfer: ranged, parallel), runs the platform's own format check (``chalicelib.dataset_formats``,
copied into this image: see the Dockerfile) and writes its verdict, a JSON object, to
``verdict_key``:

- ``{"status": "READY", "size_bytes": N, "stats": {...}}``;
- ``{"status": "INVALID", "reason": "...", "refused": true}``: the file is not what its task
  needs (the platform deletes it, as the API does with a refused upload);
- ``{"status": "INVALID", "reason": "the check job failed: ...", "refused": false}``: the check
  itself broke (the file is kept).

A message with ``build`` is a dataset the job makes first, from listed files
(:mod:`kilele_worker.dataset_build`: the retrain loop's labelled captured traffic); a build that
cannot be made is ``{"status": "INVALID", "reason": "the dataset could not be built: ...",
"refused": false}``.

The platform records the verdict (chalicelib/services/dataset_checks.py: ``settle``); the worker
has no DynamoDB access. It never sees a task token: nothing waits on it but the dataset record.
Exit codes: 0 a verdict was written, 2 unusable message, 3 the verdict could not be written.
"""
from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any

from kilele_worker import errors

#: What the check message must hold (the platform's DatasetCheckJob.job_message writes it).
REQUIRED = ("dataset_id", "bucket", "source_key", "verdict_key", "task", "max_bytes")


class DatasetCheckMessageError(ValueError):
    """The message is not a dataset check's."""


@dataclass(frozen=True)
class DatasetCheckSpec:
    """One dataset check: what it reads (``source_key``) and writes (``verdict_key``) in ``bucket``."""

    id: str
    bucket: str
    source_key: str
    verdict_key: str
    task: str
    max_bytes: int
    target_column: Any = None
    archive_limits: dict[str, int] = field(default_factory=dict)
    #: ``{"manifest_key", "source_prefixes", "target_column"}`` when the job builds the file first.
    build: dict[str, Any] = field(default_factory=dict)
    kind: str = "dataset_check"

    @classmethod
    def parse(cls, raw: str) -> "DatasetCheckSpec":
        try:
            data = json.loads(raw)
        except ValueError as e:
            raise DatasetCheckMessageError(f"not JSON: {e}") from e
        if not isinstance(data, dict):
            raise DatasetCheckMessageError("the message is not a JSON object")
        missing = [k for k in REQUIRED if data.get(k) in (None, "")]
        if missing:
            raise DatasetCheckMessageError(f"missing {', '.join(missing)}")
        limits = data.get("archive_limits") or {}
        if not isinstance(limits, dict) or not all(isinstance(v, int) for v in limits.values()):
            raise DatasetCheckMessageError("archive_limits must map names to integers")
        build = data.get("build") or {}
        if build and not (isinstance(build, dict) and isinstance(build.get("manifest_key"), str)
                          and build["manifest_key"] and isinstance(build.get("source_prefixes"), list)
                          and all(isinstance(p, str) and p.endswith("/") and len(p) > 1
                                  for p in build["source_prefixes"])):
            raise DatasetCheckMessageError("build must name a manifest_key and source_prefixes (folders ending in /)")
        return cls(id=str(data["dataset_id"]), bucket=str(data["bucket"]), source_key=str(data["source_key"]),
                   verdict_key=str(data["verdict_key"]), task=str(data["task"]), max_bytes=int(data["max_bytes"]),
                   target_column=data.get("target_column"), archive_limits=dict(limits), build=dict(build))


def _say(text: str) -> None:
    print(f"kilele-worker: {text}", file=sys.stderr, flush=True)


def check(spec: DatasetCheckSpec, s3: Any) -> dict[str, Any]:
    """The verdict on ``spec``'s file, built first if the message says so (never raises for the
    file's faults or the check's own)."""
    if spec.build:
        from kilele_worker.dataset_build import BuildError, build

        try:
            build(spec, s3, _say)
        except BuildError as e:
            return {"status": "INVALID", "reason": f"the dataset could not be built: {e}", "refused": False}
        except Exception as e:  # noqa: BLE001 - S3 refused, a file vanished: a verdict saying so
            from kilele_worker.aws import describe

            return {"status": "INVALID", "reason": f"the build job failed: {describe(e)}", "refused": False}
    # The platform's check, imported here: a trial never needs it.
    from chalicelib.dataset_formats import check_dataset
    from chalicelib.entities import Task
    from chalicelib.errors import PayloadTooLarge, Unprocessable
    from chalicelib.image_archives import ArchiveLimitExceeded, ArchiveLimits

    try:
        size = int(s3.head_object(Bucket=spec.bucket, Key=spec.source_key)["ContentLength"])
        if size > spec.max_bytes:
            raise PayloadTooLarge(f"the uploaded file is {size} bytes; the limit is {spec.max_bytes}")
        with tempfile.TemporaryFile() as file:
            s3.download_fileobj(spec.bucket, spec.source_key, file)
            file.seek(0)
            stats = check_dataset(file, task=Task(spec.task), target_column=spec.target_column,
                                  archive_limits=ArchiveLimits(**spec.archive_limits))
    except (Unprocessable, PayloadTooLarge, ArchiveLimitExceeded) as e:
        return {"status": "INVALID", "reason": str(e), "refused": True}
    except Exception as e:  # noqa: BLE001 - the check broke: a verdict saying so, not a silent job
        from kilele_worker.aws import describe

        return {"status": "INVALID", "reason": f"the check job failed: {describe(e)}", "refused": False}
    return {"status": "READY", "size_bytes": size, "stats": stats}


def run(raw: str, aws: Any, role_arn: Any = None) -> int:
    """Check the dataset ``raw`` (the message) names and write the verdict; the exit code."""
    try:
        spec = DatasetCheckSpec.parse(raw)
    except DatasetCheckMessageError as e:
        print(f"kilele-worker: invalid dataset check message: {e}", file=sys.stderr, flush=True)
        return errors.EXIT_USAGE
    # On AWS, S3 through the trial role narrowed to this check's two keys (kilele_worker.aws).
    s3 = aws.for_run(spec, role_arn).s3
    verdict = check(spec, s3)
    print(f"kilele-worker: dataset {spec.id}: {verdict['status']}"
          + (f" ({verdict['reason']})" if verdict.get("reason") else ""), file=sys.stderr, flush=True)
    try:
        s3.put_object(Bucket=spec.bucket, Key=spec.verdict_key, Body=json.dumps(verdict).encode(),
                      ContentType="application/json")
    except Exception as e:  # noqa: BLE001 - the Batch job fails, and its FAILED event says why
        from kilele_worker.aws import describe

        print(f"kilele-worker: could not write the verdict of dataset {spec.id}: {describe(e)}",
              file=sys.stderr, flush=True)
        return errors.EXIT_NOT_REPORTED
    return 0


__all__ = ["DatasetCheckSpec", "DatasetCheckMessageError", "check", "run"]
