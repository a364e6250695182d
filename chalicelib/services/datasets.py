"""Datasets: uploaded through the API, fetched from a URL, or sent straight to S3 with a
presigned upload. A file becomes a READY dataset only after it passes its task's format check.

Files sent in the request (up to ``max_direct_upload_bytes``) and fetched from a URL are checked in
the request. A presigned upload above ``check_threshold_bytes`` is not: with a check job
dispatcher, it is recorded PENDING and checked by a job (issue 13, finding 3; see
:mod:`chalicelib.services.dataset_checks`), which records READY or INVALID with the message."""
from __future__ import annotations

import json
import tempfile
from datetime import timedelta
from typing import IO, Any, Callable, Optional

from chalicelib.dataset_formats import check_dataset
from chalicelib.image_archives import ArchiveLimitExceeded, ArchiveLimits
from chalicelib.entities import Dataset, DatasetStatus, Task, User
from chalicelib.direct_transfers import DirectTransfers
from chalicelib.errors import Conflict, FormatError, NotFound, PayloadTooLarge, Unavailable, Unprocessable
from chalicelib.permissions import Action, owns_or_admin, require
from chalicelib.services import Clock, new_id, utc_now
from chalicelib.ports import BlobStore, DatasetStore, UrlFetcher
from chalicelib.ports_datasets import DatasetCheckDispatcher
from chalicelib.services import dataset_builds
from chalicelib.services.dataset_checks import DatasetCheckJob

_SPOOL_BYTES = 8 * 1024 * 1024


class DatasetService:
    def __init__(
        self,
        datasets: DatasetStore,
        blobs: BlobStore,
        fetcher: UrlFetcher,
        max_direct_upload_bytes: int,
        max_dataset_bytes: int,
        presigned_url_seconds: int,
        clock: Clock = utc_now,
        archive_limits: ArchiveLimits = ArchiveLimits(),
        check_dispatcher: Optional[DatasetCheckDispatcher] = None,
        check_threshold_bytes: Optional[int] = None,
        check_job: Optional[DatasetCheckJob] = None,
        check_timeout_seconds: float = 3600.0,
        bucket: str = "",
        direct_endpoint_url: Optional[str] = None,
    ):
        self._datasets = datasets
        self._blobs = blobs
        self._fetcher = fetcher
        self._max_direct = max_direct_upload_bytes
        self._max_bytes = max_dataset_bytes
        self._presign_seconds = presigned_url_seconds
        self._clock = clock
        self._archive_limits = archive_limits
        self._check_dispatcher = check_dispatcher
        self._check_threshold = check_threshold_bytes
        self._check_timeout = timedelta(seconds=check_timeout_seconds)
        self.check_job = check_job or DatasetCheckJob(datasets, blobs, max_dataset_bytes, archive_limits)
        # The one rule for IAM users' keys (chalicelib/direct_transfers.py), shared with bundle exports.
        self._direct = DirectTransfers(bucket, direct_endpoint_url or None) if bucket else None

    def create_from_bytes(
        self, actor: User, name: str, task: Task, content: bytes, target_column: Optional[str] = None
    ) -> dict[str, Any]:
        """A dataset from a file sent in the request (up to ``max_direct_upload_bytes``)."""
        require(actor, Action.MANAGE_DATASETS)
        if len(content) > self._max_direct:
            raise PayloadTooLarge(
                f"the file is {len(content)} bytes; files over {self._max_direct} bytes go through "
                "a presigned upload (POST /datasets/uploads)"
            )
        with tempfile.SpooledTemporaryFile(_SPOOL_BYTES) as file:
            file.write(content)
            return self._store_checked(actor, name, task, target_column, file, len(content))

    def create_from_url(
        self, actor: User, name: str, task: Task, url: str, target_column: Optional[str] = None
    ) -> dict[str, Any]:
        """A dataset downloaded from ``url`` by the platform."""
        require(actor, Action.MANAGE_DATASETS)
        with tempfile.SpooledTemporaryFile(_SPOOL_BYTES) as file:
            size = self._fetcher.fetch(url, file, self._max_bytes)
            if size == 0:
                raise Unprocessable(f"{url} returned an empty file")
            try:
                return self._store_checked(actor, name, task, target_column, file, size)
            except (FormatError, ArchiveLimitExceeded) as e:
                # Say where, never what: the answer of a URL is not echoed back (issue 9, finding 2).
                raise type(e)(f"{url}: {e.blind}", e.blind) from None

    def start_upload(
        self, actor: User, name: str, task: Task, size_bytes: int, target_column: Optional[str] = None,
        iam_principal: Optional[str] = None,
    ) -> dict[str, Any]:
        """Reserve a dataset and hand out a presigned S3 upload for its file; the dataset is
        usable once :meth:`complete_upload` has checked the file.

        A request signed by an IAM user (``iam_principal``, verified by API Gateway) also gets
        ``direct``: a bucket and key under ``direct/<IAM user name>/`` it may write itself with
        S3's multipart API, which infra's transfer policy grants per user name (``${aws:username}``).
        Roles have no such variable that a session cannot choose, so they keep the presigned
        POST (``direct`` is null). The file's size is checked again on completion either way."""
        require(actor, Action.MANAGE_DATASETS)
        if size_bytes > self._max_bytes:
            raise PayloadTooLarge(f"datasets are limited to {self._max_bytes} bytes, got {size_bytes}")
        dataset = self._new(actor, name, task, target_column, DatasetStatus.UPLOADING)
        direct_key = self._direct.key_for(iam_principal, dataset.object_key) if self._direct else None
        if direct_key:
            dataset.object_key = direct_key
        self._datasets.save(dataset)
        upload = self._blobs.presigned_post(dataset.object_key, self._max_bytes, self._presign_seconds)
        direct = self._direct.target(dataset.object_key) if self._direct and direct_key else None
        return {"dataset": dataset.to_dict(), "upload": upload, "direct": direct}

    def complete_upload(self, actor: User, dataset_id: str) -> dict[str, Any]:
        """Check the uploaded file. A bad file is deleted with its dataset record, and the
        error says what is wrong. A file above the check threshold is left PENDING for the
        check job (when there is a dispatcher): poll GET /datasets/{id} for READY or INVALID."""
        dataset = self._owned(actor, dataset_id)
        if dataset.status is not DatasetStatus.UPLOADING:
            raise Conflict(f"dataset {dataset_id!r} is already {dataset.status.value}")
        size = self._blobs.size(dataset.object_key)
        if self._check_dispatcher is not None and self._check_threshold is not None \
                and self._check_threshold < size <= self._max_bytes:
            return self._dispatch_check(dataset, size)
        try:
            if size > self._max_bytes:
                raise PayloadTooLarge(f"the uploaded file is {size} bytes; the limit is {self._max_bytes}")
            with tempfile.TemporaryFile() as file:
                self._blobs.download_to(dataset.object_key, file)
                dataset.stats = check_dataset(file, task=dataset.task, target_column=dataset.target_column,
                                              archive_limits=self._archive_limits)
        except (Unprocessable, PayloadTooLarge):
            self._blobs.delete(dataset.object_key)
            self._datasets.delete(dataset.id)
            raise
        dataset.size_bytes = size
        dataset.status = DatasetStatus.READY
        self._datasets.save(dataset)
        return dataset.to_dict()

    def start_build(self, actor: User, name: str, task: Task, target_column: str, manifest: dict[str, Any],
                    before_job: Optional[Callable[[dict[str, Any]], None]] = None) -> dict[str, Any]:
        """A PENDING dataset whose file its job builds from the files ``manifest`` lists
        (:mod:`chalicelib.services.dataset_builds`) and then checks: READY, or INVALID with why
        (the check job's listeners are told either way). ``before_job(dataset)`` is called before
        the job starts, so whoever waits for it knows it first. ``Unavailable`` when no job can be
        started (the dataset is then INVALID saying so)."""
        require(actor, Action.MANAGE_DATASETS)
        if self._check_dispatcher is None:
            raise Unavailable("datasets cannot be built here: no dataset check job dispatcher is configured")
        dataset = self._new(actor, name, task, target_column, DatasetStatus.PENDING)
        dataset.object_key = dataset_builds.file_key(dataset.id)
        self._blobs.put_bytes(dataset_builds.manifest_key(dataset.id), json.dumps(manifest).encode(),
                              "application/json")
        dataset.check_started_at = self._clock()
        self._datasets.save(dataset)
        if before_job is not None:
            before_job(dataset.to_dict())
        return self._dispatch_check(dataset, 0)

    def _dispatch_check(self, dataset: Dataset, size: int) -> dict[str, Any]:
        assert self._check_dispatcher is not None
        dataset.size_bytes, dataset.status, dataset.check_started_at = size, DatasetStatus.PENDING, self._clock()
        self._datasets.save(dataset)
        try:
            self._check_dispatcher.dispatch(dataset.id)
        except Exception as e:  # never PENDING with no job behind it
            self.check_job.mark_invalid(dataset, f"the check job could not be started: {e}", delete_file=False)
            raise
        return dataset.to_dict()

    def list(self, actor: User, task: Optional[Task] = None) -> list[dict[str, Any]]:
        """The caller's READY datasets; admins see everyone's."""
        require(actor, Action.MANAGE_DATASETS)
        owner = None if actor.user_type.is_admin else actor.id
        return [d.to_dict() for d in self._datasets.list(owner_id=owner, task=task)]

    def get(self, actor: User, dataset_id: str) -> dict[str, Any]:
        """One dataset. A PENDING one records its check job's verdict if the job wrote one (a
        job in the worker image cannot write the record); one whose job has not ended within the
        check timeout is recorded INVALID here (its job was lost, e.g. with the process that ran it)."""
        dataset = self.check_job.settle(self._owned(actor, dataset_id))
        if dataset.status is DatasetStatus.PENDING and dataset.check_started_at is not None \
                and self._clock() - dataset.check_started_at > self._check_timeout:
            again = ("the next breach builds another" if dataset_builds.is_built(dataset.object_key)
                     else "upload the file again")
            self.check_job.mark_invalid(
                dataset, f"the check job did not end within {self._check_timeout.total_seconds():g} s "
                f"(it was lost or stopped); {again}", delete_file=True)
        return dataset.to_dict()

    def _owned(self, actor: User, dataset_id: str) -> Dataset:
        require(actor, Action.MANAGE_DATASETS)
        dataset = self._datasets.get(dataset_id)
        if not dataset or not owns_or_admin(actor, dataset.owner_id):
            raise NotFound(f"no dataset {dataset_id!r}")
        return dataset

    def _new(
        self, actor: User, name: str, task: Task, target_column: Optional[str], status: DatasetStatus
    ) -> Dataset:
        dataset_id = new_id()
        return Dataset(
            id=dataset_id,
            owner_id=actor.id,
            name=name,
            task=task,
            status=status,
            object_key=f"datasets/{dataset_id}/data",
            created_at=self._clock(),
            target_column=target_column,
        )

    def _store_checked(
        self, actor: User, name: str, task: Task, target_column: Optional[str], file: IO[bytes], size: int
    ) -> dict[str, Any]:
        stats = check_dataset(file, task=task, target_column=target_column, archive_limits=self._archive_limits)
        dataset = self._new(actor, name, task, target_column, DatasetStatus.READY)
        dataset.size_bytes, dataset.stats = size, stats
        file.seek(0)
        self._blobs.put_file(dataset.object_key, file)
        try:
            self._datasets.save(dataset)
        except Exception:
            self._blobs.delete(dataset.object_key)  # no orphan file for a dataset that does not exist
            raise
        return dataset.to_dict()
