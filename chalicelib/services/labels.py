"""Ground truth sent after the fact: labels of answered queries, by the query id the predict
answer carried, stored in SageMaker Model Monitor's ground-truth layout beside the app's captured
traffic (chalicelib/capture_format.py), where chalicelib/capture_reader.py joins them in."""
from __future__ import annotations

import uuid
from typing import Any, Callable

from chalicelib.capture_format import (CAPTURE_PREFIX, GROUND_TRUTH_PREFIX, app_prefix, ground_truth_key,
                                       ground_truth_record)
from chalicelib.errors import InvalidInput, NotFound, Unprocessable
from chalicelib.permissions import Action, require
from chalicelib.entities import User
from chalicelib.ports import ApplicationStore, BlobStore
from chalicelib.services import Clock, utc_now

JSONL_TYPE = "application/jsonl"


class LabelService:
    def __init__(self, apps: ApplicationStore, blobs: BlobStore, bucket: str, clock: Clock = utc_now,
                 unique: Callable[[], str] = lambda: uuid.uuid4().hex):
        self._apps = apps
        self._blobs = blobs
        self._bucket = bucket
        self._clock = clock
        self._unique = unique

    def send_labels(self, actor: User, app_name: str, labels: list[tuple[str, Any]]) -> dict[str, Any]:
        """Store ``labels`` (``(query id, label)`` pairs) of a registered app's queries as one
        ground-truth file of the hour they were received. A query id sent twice in one batch is
        refused (which label would count is unclear); sent again in a later batch, the later
        label counts. Labels of queries that were not captured are kept, and join nothing."""
        require(actor, Action.MANAGE_INFERENCE_JOBS)
        if self._apps.get(actor.id, app_name) is None:
            raise NotFound(f"no application {app_name!r}; register it first")
        seen: set[str] = set()
        for index, (query_id, _) in enumerate(labels):
            if query_id in seen:
                # 422, not 400: the body is valid JSON Schema-wise (no schema says "ids unique by key")
                raise Unprocessable(f"labels[{index}]: query_id {query_id!r} appears twice in this batch")
            seen.add(query_id)
        if not labels:
            raise InvalidInput("labels is empty")
        key = ground_truth_key(actor.id, app_name, self._clock(), self._unique())
        body = b"\n".join(ground_truth_record(query_id, label) for query_id, label in labels) + b"\n"
        self._blobs.put_bytes(key, body, JSONL_TYPE)
        return {"app": app_name, "received": len(labels), **self.locations(actor, app_name)}

    def capture_settings(self, actor: User, app_name: str) -> dict[str, Any]:
        """The app's capture percentage and where its captured traffic and labels are."""
        require(actor, Action.MANAGE_INFERENCE_JOBS)
        app = self._apps.get(actor.id, app_name)
        if app is None:
            raise NotFound(f"no application {app_name!r}; register it first")
        return {"app": app_name, "capture_percent": app.capture_percent, **self.locations(actor, app_name)}

    def locations(self, actor: User, app_name: str) -> dict[str, str]:
        """Where the app's captured traffic and ground truth are (S3 URIs of their folders)."""
        return {"capture_uri": f"s3://{self._bucket}/{app_prefix(CAPTURE_PREFIX, actor.id, app_name)}/",
                "ground_truth_uri": f"s3://{self._bucket}/{app_prefix(GROUND_TRUTH_PREFIX, actor.id, app_name)}/"}
