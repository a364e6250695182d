"""The check job of a large dataset (issue 13, finding 3).

A presigned upload above ``dataset_check_threshold_bytes`` is not checked in the API request (an
API Lambda has 29 s and a small /tmp): the dataset is recorded PENDING and a
:class:`~chalicelib.ports_datasets.DatasetCheckDispatcher` starts this job, which streams the file
from the blob store into a local temporary file, runs the same format check as the API, and
records READY (with the same stats) or INVALID with the message. A crash of the check itself
ends INVALID too, with a reason and a log line, so a dataset is never PENDING forever because
its job died.
"""
from __future__ import annotations

import logging
import tempfile
from typing import Optional

from chalicelib.dataset_formats import check_dataset
from chalicelib.entities import Dataset, DatasetStatus
from chalicelib.errors import PayloadTooLarge, Unprocessable
from chalicelib.image_archives import ArchiveLimitExceeded, ArchiveLimits
from chalicelib.ports import BlobStore, DatasetStore

log = logging.getLogger("kilele.dataset_checks")


class DatasetCheckJob:
    """Checks one PENDING dataset and records the outcome."""

    def __init__(self, datasets: DatasetStore, blobs: BlobStore, max_dataset_bytes: int,
                 archive_limits: ArchiveLimits = ArchiveLimits()):
        self._datasets = datasets
        self._blobs = blobs
        self._max_bytes = max_dataset_bytes
        self._archive_limits = archive_limits

    def run(self, dataset_id: str) -> Optional[Dataset]:
        """Check ``dataset_id`` if it is PENDING (a second delivery of the job changes nothing);
        returns the dataset as recorded, or None if there is no such dataset."""
        dataset = self._datasets.get(dataset_id)
        if dataset is None or dataset.status is not DatasetStatus.PENDING:
            return dataset
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
        return dataset

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
        return dataset
