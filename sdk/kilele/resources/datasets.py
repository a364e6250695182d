"""Datasets: created from a local file (in the request body, or uploaded straight to object
storage when large) or from a URL the platform downloads."""
from __future__ import annotations

import base64
import os
import time
from typing import Any, Optional

from kilele._args import StrOrEnum, _enum_value, _segment
from kilele._transfer import TransferMixin
from kilele.errors import DatasetInvalidError, PayloadTooLargeError


class DatasetsMixin(TransferMixin):
    """``create_dataset``, ``wait_for_dataset``, ``get_datasets`` and ``get_dataset``."""

    def create_dataset(
        self,
        name: str,
        task: StrOrEnum,
        dataset_path: Optional[str] = None,
        dataset_url: Optional[str] = None,
        target_column: Optional[str] = None,
        wait: bool = True,
        timeout: Optional[float] = None,
        poll_rate_sec: float = 2.0,
    ) -> dict[str, Any]:
        """Create a dataset from a local file (``dataset_path``) or a URL the platform downloads
        (``dataset_url``); give exactly one. Files above :attr:`max_direct_upload_bytes` are
        uploaded straight to object storage: with a presigned POST, or, when the client signs
        as an IAM user, with boto3's multipart upload (knobs in :attr:`transfer`).

        Large uploads are checked by a job on the platform: the dataset is PENDING until it
        ends. With ``wait`` (the default) this waits for it (``poll_rate_sec`` apart, at most
        ``timeout`` seconds, then :class:`TimeoutError`) and returns the READY dataset, or raises
        :class:`~kilele.errors.DatasetInvalidError` with the check's message; ``wait=False``
        returns the PENDING dataset (follow it with :meth:`wait_for_dataset`)."""
        dataset = self._create_dataset(name, task, dataset_path, dataset_url, target_column)
        if wait and dataset.get("status") == "PENDING":
            return self.wait_for_dataset(dataset["id"], timeout=timeout, poll_rate_sec=poll_rate_sec)
        return dataset

    def wait_for_dataset(self, dataset_id: str, timeout: Optional[float] = None,
                         poll_rate_sec: float = 2.0) -> dict[str, Any]:
        """Wait until a PENDING dataset's check ends: returns it READY, raises
        :class:`~kilele.errors.DatasetInvalidError` (with the message) if INVALID, and
        :class:`TimeoutError` after ``timeout`` seconds (None: no limit)."""
        if poll_rate_sec < 0:
            raise ValueError(f"poll_rate_sec must be >= 0, got {poll_rate_sec!r}")
        deadline = None if timeout is None else time.monotonic() + float(timeout)
        while True:
            dataset = self.get_dataset(dataset_id)
            status = dataset.get("status")
            if status == "INVALID":
                error = dataset.get("error") or "no reason given"
                raise DatasetInvalidError(f"dataset {dataset_id} is INVALID: {error}", dataset=dataset, error=error)
            if status != "PENDING":
                return dataset
            if deadline is not None and time.monotonic() + poll_rate_sec > deadline:
                raise TimeoutError(f"dataset {dataset_id} is still PENDING after {timeout} s "
                                   "(its check job is still running; wait_for_dataset follows it)")
            time.sleep(poll_rate_sec)

    def _create_dataset(self, name: str, task: StrOrEnum, dataset_path: Optional[str], dataset_url: Optional[str],
                        target_column: Optional[str]) -> dict[str, Any]:
        if (dataset_path is None) == (dataset_url is None):
            raise ValueError("give exactly one of dataset_path and dataset_url")
        base: dict[str, Any] = {"name": name, "task": _enum_value(task)}
        if target_column is not None:
            base["target_column"] = target_column
        if dataset_url is not None:
            return self._request("POST", "/datasets", json={**base, "dataset_url": dataset_url})

        path = os.fspath(dataset_path)  # type: ignore[arg-type]
        size = os.path.getsize(path)  # FileNotFoundError before any call
        if size > self.max_direct_upload_bytes:
            return self._create_dataset_presigned(base, path, size)
        with open(path, "rb") as f:
            content = base64.b64encode(f.read()).decode("ascii")
        try:
            return self._request("POST", "/datasets", json={**base, "content_base64": content})
        except PayloadTooLargeError:
            if size == 0:
                raise
            # The server's direct-upload limit is lower than ours: take the presigned path.
            return self._create_dataset_presigned(base, path, size)

    def _create_dataset_presigned(self, base: dict[str, Any], path: str, size: int) -> dict[str, Any]:
        started = self._request("POST", "/datasets/uploads", json={**base, "size_bytes": size})
        dataset_id = started["dataset"]["id"]
        if started.get("direct") and self.aws_session is not None and self._signer is not None:
            # Signed as an IAM user: S3's multipart upload with our own credentials.
            from kilele._s3_direct import upload_direct

            upload_direct(self.aws_session, started["direct"], path, self.transfer, f"dataset {dataset_id}",
                          "the dataset stays UPLOADING and unusable")
        else:
            self._upload_presigned(started["upload"], path, dataset_id)
        return self._request("POST", f"/datasets/{_segment(dataset_id)}/complete")

    def get_datasets(self, task: Optional[StrOrEnum] = None) -> list[dict[str, Any]]:
        """Your datasets (admins: all), optionally of one task."""
        return self._request("GET", "/datasets", params={"task": _enum_value(task) if task else None})

    def get_dataset(self, dataset_id: str) -> dict[str, Any]:
        """One dataset by id."""
        return self._request("GET", f"/datasets/{_segment(dataset_id)}")
