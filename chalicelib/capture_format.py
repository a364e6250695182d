"""Captured predict traffic and ground-truth labels in SageMaker Model Monitor's own layout.

Kilele writes the same JSON Lines files SageMaker Data Capture writes, so SageMaker Model
Monitor and Kilele's continuous tests read the same files, and files a SageMaker endpoint
captured can be tested here (``chalicelib/capture_reader.py`` reads both).

Captured traffic (SageMaker's documented layout)::

    s3://<bucket>/capture/<user id>/<app>/<endpoint-name>/<variant>/yyyy/mm/dd/hh/<file>.jsonl

one record per line, one record per query::

    {"captureData": {"endpointInput":  {"observedContentType": "application/json", "mode": "INPUT",
                                        "data": "<the query, JSON>", "encoding": "JSON"},
                     "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                        "data": "<the answer, JSON>", "encoding": "JSON"}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceId": "<query id>",
                       "inferenceTime": "2026-12-02T01:02:03.456Z"},
     "eventVersion": "0"}

``inferenceId`` is the query id the caller got in the predict answer (SageMaker's caller-given
id, which Model Monitor merges ground truth on when present). An answer that was the app's
default output (no model answered) carries ``"kileleDefault": true`` in ``eventMetadata``.
``<endpoint-name>`` is the serving inference job's endpoint (``default-output`` when no endpoint
answered); ``<variant>`` is SageMaker's default variant name, ``AllTraffic``.

Ground truth (Model Monitor's documented ground-truth layout, labels keyed by the query id)::

    s3://<bucket>/ground-truth/<user id>/<app>/yyyy/mm/dd/hh/<file>.jsonl
    {"groundTruthData": {"data": "<label, JSON>", "encoding": "JSON"},
     "eventMetadata": {"eventId": "<query id>"}, "eventVersion": "0"}

The hour of a capture file is the hour its queries were answered; of a label file, the hour
the labels were received. Everything here is pure (bytes in, bytes out).
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional

import orjson

CAPTURE_PREFIX = "capture"
GROUND_TRUTH_PREFIX = "ground-truth"
#: SageMaker's default production variant (the SageMaker adapter names its only variant so).
VARIANT = "AllTraffic"
#: The endpoint-name folder of answers no endpoint gave (the app's default output).
NO_ENDPOINT = "default-output"
JSON_TYPE = "application/json"


def app_prefix(root: str, user_id: str, app: str) -> str:
    """``<root>/<user id>/<app>``: one app's capture (or ground-truth) folder."""
    return f"{root}/{user_id}/{app}"


def _hour_path(at: datetime) -> str:
    at = at.astimezone(timezone.utc)
    return f"{at:%Y/%m/%d/%H}"


def file_name(at: datetime, unique: Optional[str] = None) -> str:
    """A file name as SageMaker's: minute, second, millisecond and a unique part
    (``MM-SS-mmm-<hex>.jsonl``), so names sort by time within their hour."""
    at = at.astimezone(timezone.utc)
    return f"{at:%M-%S}-{at.microsecond // 1000:03d}-{unique or uuid.uuid4().hex}.jsonl"


def capture_key(user_id: str, app: str, endpoint: str, variant: str, hour: datetime, written: datetime,
                unique: Optional[str] = None) -> str:
    """The object key of a capture file holding queries answered in ``hour``."""
    return (f"{app_prefix(CAPTURE_PREFIX, user_id, app)}/{endpoint}/{variant}/{_hour_path(hour)}/"
            f"{file_name(written, unique)}")


def ground_truth_key(user_id: str, app: str, received: datetime, unique: Optional[str] = None) -> str:
    """The object key of a ground-truth file of labels received at ``received``."""
    return f"{app_prefix(GROUND_TRUTH_PREFIX, user_id, app)}/{_hour_path(received)}/{file_name(received, unique)}"


_HOURLY = re.compile(r"(?:^|/)(?P<y>\d{4})/(?P<m>\d\d)/(?P<d>\d\d)/(?P<h>\d\d)/[^/]+\.jsonl$")


def partition_hour(key: str) -> Optional[datetime]:
    """The hour (UTC) of a capture or ground-truth file from its key's ``yyyy/mm/dd/hh/`` folders
    (Kilele's, or a SageMaker endpoint's ``<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/``); None for
    a key without them. A reader picks the hours it wants with it (e.g. those since a continuous
    test's last run) before reading any file."""
    match = _HOURLY.search(key)
    if match is None:
        return None
    try:
        return datetime(int(match["y"]), int(match["m"]), int(match["d"]), int(match["h"]), tzinfo=timezone.utc)
    except ValueError:  # 2026/13/45/99: not a date
        return None


def inference_time(at: datetime) -> str:
    """SageMaker's ``inferenceTime``: UTC, ISO 8601 with a ``Z`` (milliseconds kept)."""
    # isoformat is C code; strftime-style formatting was a tenth of a capture record's cost.
    return at.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # integers beyond 64 bits: the json module writes them
        import json

        return json.dumps(value)


@dataclass(frozen=True)
class CapturedQuery:
    """One answered query as the predict path saw it."""

    query_id: str
    query: Any
    output: Any
    at: datetime
    default: bool = False


def capture_record(query: CapturedQuery, event_id: Optional[str] = None, time_text: Optional[str] = None) -> bytes:
    """One capture line (no newline) in SageMaker Data Capture's record layout (``time_text``:
    ``inference_time(query.at)`` when the caller has it already)."""
    metadata: dict[str, Any] = {"eventId": event_id or str(uuid.uuid4()), "inferenceId": query.query_id,
                                "inferenceTime": time_text or inference_time(query.at)}
    if query.default:
        metadata["kileleDefault"] = True
    return orjson.dumps({
        "captureData": {
            "endpointInput": {"observedContentType": JSON_TYPE, "mode": "INPUT", "data": _json_text(query.query),
                              "encoding": "JSON"},
            "endpointOutput": {"observedContentType": JSON_TYPE, "mode": "OUTPUT",
                               "data": _json_text(query.output), "encoding": "JSON"},
        },
        "eventMetadata": metadata,
        "eventVersion": "0",
    })


def ground_truth_record(query_id: str, label: Any) -> bytes:
    """One ground-truth line (no newline) in Model Monitor's ground-truth layout."""
    return orjson.dumps({"groundTruthData": {"data": _json_text(label), "encoding": "JSON"},
                         "eventMetadata": {"eventId": query_id}, "eventVersion": "0"})
