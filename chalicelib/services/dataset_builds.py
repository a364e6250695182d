"""Datasets built by a job from listed files (issue 12 item 6 on AWS): the retrain loop's
``labelled_captured_traffic``.

The process that decides a dataset is needed (on AWS a workflow Lambda, which ships no pandas)
only lists the files: it writes a *sources manifest* -- the layout of a scheduled continuous
test's (:mod:`chalicelib.services.ct_sources`, source ``traffic``), plus the folders its files
may come from -- and makes a PENDING dataset whose file lies under :data:`BUILD_PREFIX`. The
dataset's check job (:mod:`chalicelib.services.dataset_checks`; a Batch job in the worker image
on AWS, a thread of the local stack) sees the manifest, builds the file first (the captured
queries that have a label, their features and the label as the target column:
``kilele_stress.capture.labelled_dataset``) and then checks it like any upload: READY, or
INVALID with the reason. Pure, apart from the blob store's reads in :func:`build_in_process`.
"""
from __future__ import annotations

import io
import json
from typing import Any, Callable, Optional

from chalicelib.errors import Unprocessable

#: Where a built dataset's file and its sources manifest lie (the worker's role may write there).
BUILD_PREFIX = "dataset-builds/"
MANIFEST_KIND = "kilele.ct_sources"  # the worker parses it with kilele_worker.ct_sources.parse


def file_key(dataset_id: str) -> str:
    """The key of a built dataset's file (its ``object_key``)."""
    return f"{BUILD_PREFIX}{dataset_id}/data.csv"


def manifest_key(dataset_id: str) -> str:
    """The key of the sources manifest a built dataset's file is made from."""
    return f"{BUILD_PREFIX}{dataset_id}/sources.json"


def is_built(object_key: str) -> bool:
    """Whether a dataset whose file is ``object_key`` is built by its job (rather than uploaded)."""
    return object_key.startswith(BUILD_PREFIX)


def traffic_manifest(captures: list[str], labels: list[str], prefixes: list[str], target_column: str) -> dict[str, Any]:
    """The manifest of a dataset of labelled captured traffic: every query of ``captures`` with
    its label from ``labels`` (ground-truth files, oldest first), the label as ``target_column``;
    ``prefixes``: the folders the files lie in (the job may read under them only)."""
    return {"kind": MANIFEST_KIND, "version": 1, "source": "traffic", "captures": list(captures),
            "labels": list(labels), "files": [], "since": None, "until": None, "timestamp_col": "timestamp",
            "label_col": target_column, "source_prefixes": list(prefixes)}


def job_build(manifest: dict[str, Any], manifest_at: str) -> dict[str, Any]:
    """The ``build`` section of a check job's message (kilele_worker.dataset_check)."""
    return {"manifest_key": manifest_at, "source_prefixes": list(manifest.get("source_prefixes") or []),
            "target_column": manifest.get("label_col")}


def build_in_process(manifest: dict[str, Any], read: Callable[[str], bytes]) -> bytes:
    """The CSV a manifest describes, built here (the local stack's check job, which has pandas;
    the worker does the same, kilele_worker.dataset_build). ``Unprocessable`` with why when the
    traffic holds no labelled query or a file is no capture record."""
    # pandas and kilele_stress: never imported on the Lambdas' path (tests/infra/test_lambda_data_steps.py)
    from kilele_stress.capture import CaptureFormatError, NoLabelledTraffic, labelled_dataset

    target: Optional[str] = manifest.get("label_col")
    if not target:
        raise Unprocessable("the sources manifest names no target column (label_col)")
    try:
        frame = labelled_dataset((read(k) for k in manifest.get("captures") or []),
                                 (read(k) for k in manifest.get("labels") or []), target)
    except CaptureFormatError as e:  # the worker's words (kilele_worker.dataset_build): one contract
        raise Unprocessable(f"the dataset could not be built: the captured traffic could not be read: {e}") from e
    except NoLabelledTraffic as e:
        raise Unprocessable(f"the dataset could not be built: {e}") from e
    out = io.StringIO()
    frame.to_csv(out, index=False)
    return out.getvalue().encode()


def parse_manifest(data: bytes) -> dict[str, Any]:
    """A manifest as the platform wrote it; ``Unprocessable`` if it is not one."""
    try:
        manifest = json.loads(data)
    except ValueError as e:
        raise Unprocessable(f"the dataset's sources manifest is not JSON: {e}") from e
    if not isinstance(manifest, dict) or manifest.get("kind") != MANIFEST_KIND:
        raise Unprocessable("the dataset's sources manifest is not one the platform writes")
    return manifest


__all__ = ["BUILD_PREFIX", "build_in_process", "file_key", "is_built", "job_build", "manifest_key",
           "parse_manifest", "traffic_manifest"]
