"""The check job of a large dataset (issue 13, finding 3).

A presigned upload above ``dataset_check_threshold_bytes`` is not checked in the API request (an
API Lambda has 29 s and a small /tmp): the dataset is recorded PENDING and a
:class:`~chalicelib.ports_datasets.DatasetCheckDispatcher` starts this job, which streams the file
from the blob store into a local temporary file, runs the same format check as the API, and
records READY (with the same stats) or INVALID with the message. A crash of the check itself
ends INVALID too, with a reason and a log line, so a dataset is never PENDING forever because
its job died.

On AWS the job runs in the worker image (a Batch job; ``adapters/dataset_checks/batch.py``),
which has no access to the tables: it gets :meth:`DatasetCheckJob.job_message`, runs the same
check and writes its verdict to :func:`verdict_key` (containers/worker/kilele_worker/dataset_check.py).
:meth:`DatasetCheckJob.settle` records a verdict (the API calls it when a PENDING dataset is
read), and :meth:`DatasetCheckJob.job_lost` a job that ended without one (its Batch job FAILED).

A dataset built from listed files (:mod:`chalicelib.services.dataset_builds`: the retrain loop's
labelled captured traffic) is built by the same job before its check. Whoever waits for a
dataset (the retrain loop) is one of :attr:`DatasetCheckJob.listeners`, called once it is
READY or INVALID, wherever that was recorded.
"""
from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict
from typing import Any, Callable, Optional

from chalicelib.dataset_formats import check_dataset
from chalicelib.entities import Dataset, DatasetStatus
from chalicelib.errors import NotFound, PayloadTooLarge, Unprocessable
from chalicelib.image_archives import ArchiveLimitExceeded, ArchiveLimits
from chalicelib.ports import BlobStore, DatasetStore
from chalicelib.services import dataset_builds

log = logging.getLogger("kilele.dataset_checks")

#: Where a check job in the worker writes its verdict (the worker's role may write there only).
VERDICT_PREFIX = "dataset-checks/"


def verdict_key(dataset_id: str) -> str:
    """The S3 key of the verdict of ``dataset_id``'s check job."""
    return f"{VERDICT_PREFIX}{dataset_id}/verdict.json"


class DatasetCheckJob:
    """Checks one PENDING dataset and records the outcome."""

    def __init__(self, datasets: DatasetStore, blobs: BlobStore, max_dataset_bytes: int,
                 archive_limits: ArchiveLimits = ArchiveLimits()):
        self._datasets = datasets
        self._blobs = blobs
        self._max_bytes = max_dataset_bytes
        self._archive_limits = archive_limits
        #: Called with a dataset once its check recorded READY or INVALID (wiring adds the retrain loop).
        self.listeners: list[Callable[[Dataset], None]] = []

    def run(self, dataset_id: str) -> Optional[Dataset]:
        """Check ``dataset_id`` if it is PENDING (a second delivery of the job changes nothing);
        returns the dataset as recorded, or None if there is no such dataset."""
        dataset = self._datasets.get(dataset_id)
        if dataset is None or dataset.status is not DatasetStatus.PENDING:
            return dataset
        try:
            if dataset_builds.is_built(dataset.object_key):
                self._build(dataset)
        except Unprocessable as e:
            return self.mark_invalid(dataset, str(e), delete_file=False)
        except Exception as e:  # the build broke: say so rather than leave it PENDING
            log.exception("the build of dataset %s failed", dataset_id)
            return self.mark_invalid(dataset, f"the build job failed: {type(e).__name__}: {e}", delete_file=False)
        try:
            size = self._blobs.size(dataset.object_key)
            if size > self._max_bytes:
                raise PayloadTooLarge(f"the uploaded file is {size} bytes; the limit is {self._max_bytes}")
            with tempfile.TemporaryFile() as file:
                self._blobs.download_to(dataset.object_key, file)
                stats = check_dataset(file, task=dataset.task, target_column=dataset.target_column,
                                      archive_limits=self._archive_limits)
        except (Unprocessable, PayloadTooLarge, ArchiveLimitExceeded) as e:
            return self.mark_invalid(dataset, str(e), delete_file=True)
        except Exception as e:  # the job itself failed: say so rather than leave it PENDING
            log.exception("the check of dataset %s failed", dataset_id)
            return self.mark_invalid(dataset, f"the check job failed: {type(e).__name__}: {e}", delete_file=False)
        dataset.size_bytes, dataset.stats, dataset.status, dataset.error = size, stats, DatasetStatus.READY, None
        self._datasets.save(dataset)
        log.info("dataset %s checked: READY (%d bytes)", dataset_id, size)
        self._settled(dataset)
        return dataset

    def _build(self, dataset: Dataset) -> None:
        """Make a built dataset's file from its sources manifest, in this process (the local
        stack's job; on AWS the worker does it, kilele_worker.dataset_build)."""
        manifest = dataset_builds.parse_manifest(self._blobs.get_bytes(dataset_builds.manifest_key(dataset.id)))
        content = dataset_builds.build_in_process(manifest, self._blobs.get_bytes)
        self._blobs.put_bytes(dataset.object_key, content, "text/csv")
        log.info("dataset %s built from %d capture and %d ground-truth file(s): %d bytes", dataset.id,
                 len(manifest.get("captures") or []), len(manifest.get("labels") or []), len(content))

    def job_message(self, dataset_id: str, bucket: str) -> dict[str, Any]:
        """What a check job outside the platform's process needs (it cannot read the tables):
        the file, the task and the limits, and where to write its verdict."""
        dataset = self._datasets.get(dataset_id)
        if dataset is None:
            raise NotFound(f"no dataset {dataset_id!r}")
        message = {"dataset_id": dataset.id, "bucket": bucket, "source_key": dataset.object_key,
                   "verdict_key": verdict_key(dataset.id), "task": dataset.task.value,
                   "target_column": dataset.target_column, "max_bytes": self._max_bytes,
                   "archive_limits": asdict(self._archive_limits)}
        if dataset_builds.is_built(dataset.object_key):  # the job builds the file first, from these
            at = dataset_builds.manifest_key(dataset.id)
            message["build"] = dataset_builds.job_build(dataset_builds.parse_manifest(self._blobs.get_bytes(at)), at)
        return message

    def settle(self, dataset: Dataset) -> Dataset:
        """Record the verdict of a PENDING dataset's check job if it wrote one (else unchanged):
        READY with its stats, or INVALID with the reason (a refused file is deleted)."""
        if dataset.status is not DatasetStatus.PENDING:
            return dataset
        try:
            verdict = json.loads(self._blobs.get_bytes(verdict_key(dataset.id)))
        except NotFound:
            return dataset  # the job has not written one yet
        except ValueError as e:
            return self.mark_invalid(dataset, f"the check job wrote an unreadable verdict: {e}", delete_file=False)
        self._discard_verdict(dataset.id)
        if verdict.get("status") == DatasetStatus.READY.value:
            dataset.size_bytes = int(verdict.get("size_bytes") or dataset.size_bytes)
            dataset.stats, dataset.status, dataset.error = dict(verdict.get("stats") or {}), DatasetStatus.READY, None
            self._datasets.save(dataset)
            log.info("dataset %s checked by its job: READY (%d bytes)", dataset.id, dataset.size_bytes)
            self._settled(dataset)
            return dataset
        reason = str(verdict.get("reason") or "the check job refused the file without saying why")
        return self.mark_invalid(dataset, reason, delete_file=bool(verdict.get("refused")))

    def job_lost(self, dataset_id: str, reason: str) -> Optional[Dataset]:
        """The check job of ``dataset_id`` ended without running to its verdict (its Batch job
        FAILED: killed, out of memory, its image not pulled): the verdict if it wrote one, else
        INVALID saying why. None if there is no such dataset."""
        dataset = self._datasets.get(dataset_id)
        if dataset is None:
            return None
        dataset = self.settle(dataset)
        if dataset.status is DatasetStatus.PENDING:
            return self.mark_invalid(dataset, f"the check job failed: {reason}", delete_file=False)
        return dataset

    def job_ended(self, dataset_id: str, succeeded: bool, reason: str = "") -> Optional[Dataset]:
        """The job of ``dataset_id`` ended (on AWS its Batch job's state change): its verdict is
        recorded now (else, if it failed, INVALID with ``reason``), and the listeners are told
        even when another process recorded it first (the rule on FAILED jobs does, without the
        grants a listener needs). None if there is no such dataset."""
        dataset = self._datasets.get(dataset_id)
        if dataset is None:
            return None
        if dataset.status is not DatasetStatus.PENDING:
            self._settled(dataset)  # recorded elsewhere: whoever waits here still hears of it
            return dataset
        dataset = self.settle(dataset)  # a verdict recorded tells the listeners itself
        if dataset.status is DatasetStatus.PENDING:
            why = reason if not succeeded else "the job ended without writing its verdict"
            return self.mark_invalid(dataset, f"the check job failed: {why}", delete_file=False)
        return dataset

    def _discard_verdict(self, dataset_id: str) -> None:
        try:
            self._blobs.delete(verdict_key(dataset_id))
        except Exception:  # the record is written next; a leftover verdict of a settled dataset is inert
            log.exception("could not delete the verdict of dataset %s", dataset_id)

    def mark_invalid(self, dataset: Dataset, reason: str, delete_file: bool) -> Dataset:
        """Record ``dataset`` INVALID with ``reason``; a refused file is deleted (the record stays
        so its owner can read why)."""
        if delete_file:
            try:
                self._blobs.delete(dataset.object_key)
            except Exception:  # the record matters more than the orphan file; log it
                log.exception("could not delete the refused file of dataset %s", dataset.id)
        dataset.status, dataset.error = DatasetStatus.INVALID, reason
        self._datasets.save(dataset)
        log.warning("dataset %s INVALID: %s", dataset.id, reason)
        self._settled(dataset)
        return dataset

    def _settled(self, dataset: Dataset) -> None:
        for listener in list(self.listeners):
            try:
                listener(dataset)
            except Exception:  # noqa: BLE001 - the record is written; a reaction's failure is its own
                log.exception("a listener of dataset %s (%s) failed", dataset.id, dataset.status.value)
