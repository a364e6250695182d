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
the labels were received. Everything here is pure (bytes in, bytes out), but for the random bytes
of event ids (each thread's own, see :func:`new_event_id`).
"""
from __future__ import annotations

import os
import re
import threading
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


class InferenceTimes:
    """``(inference_time(at), epoch hour of at)``, the date and time to the second formatted once
    per second (a busy app answers many queries in one second; ``isoformat`` per query was a
    tenth of a record's cost). Safe to share between threads: its one cached second is replaced
    whole."""

    def __init__(self) -> None:
        self._second: tuple[Optional[int], str] = (None, "")

    def __call__(self, at: datetime) -> tuple[str, int]:
        if at.tzinfo is not timezone.utc:  # another zone (or none: local time): converted as inference_time does
            return inference_time(at), int(at.timestamp() // 3600)
        micro = at.microsecond
        # Whole seconds since the epoch: round() absorbs the float error of timestamp().
        second = round(at.timestamp() - micro / 1e6)
        known = self._second
        if known[0] != second:
            known = self._second = (second, datetime.fromtimestamp(second, timezone.utc).isoformat()[:19])
        return f"{known[1]}.{micro // 1000:03d}Z", second // 3600


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
    return encode_record(query.query_id, query.query, query.output, time_text or inference_time(query.at),
                         query.default, event_id or new_event_id())


# The fixed parts of a record, in the order orjson writes the record's dict (compact, keys in
# insertion order): a record is these parts joined with its five values, byte for byte what
# orjson.dumps({"captureData": ..., "eventMetadata": ..., "eventVersion": "0"}) writes, without
# building the five nested dicts per query (tests/unit/capture/test_capture_encoding.py checks
# the two agree).
_INPUT = (b'{"captureData":{"endpointInput":{"observedContentType":"' + JSON_TYPE.encode()
          + b'","mode":"INPUT","data":')
_OUTPUT = (b',"encoding":"JSON"},"endpointOutput":{"observedContentType":"' + JSON_TYPE.encode()
           + b'","mode":"OUTPUT","data":')
_EVENT_ID = b',"encoding":"JSON"}},"eventMetadata":{"eventId":'
_INFERENCE_ID = b',"inferenceId":'
_INFERENCE_TIME = b',"inferenceTime":'
_END = b'},"eventVersion":"0"}'
_END_DEFAULT = b',"kileleDefault":true},"eventVersion":"0"}'


def encode_record(query_id: Any, query: Any, output: Any, time_text: str, default: bool, event_id: str) -> bytes:
    """:func:`capture_record` from its values: the predict path's encoder (no
    :class:`CapturedQuery` per query)."""
    return b"".join((_INPUT, orjson.dumps(_json_text(query)), _OUTPUT, orjson.dumps(_json_text(output)),
                     _EVENT_ID, orjson.dumps(event_id), _INFERENCE_ID, orjson.dumps(query_id),
                     _INFERENCE_TIME, orjson.dumps(time_text), _END_DEFAULT if default else _END))


class _EventIds(threading.local):
    """Each thread's random bytes for event ids, drawn 64 ids at a time."""

    pool: list[str]

    def __init__(self) -> None:
        self.pool = []


_event_ids = _EventIds()


def _fresh_ids_after_fork() -> None:
    # A forked child must not hand out the ids its parent's pool still holds.
    global _event_ids
    _event_ids = _EventIds()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_ids_after_fork)


def new_event_id() -> str:
    """A random (version 4) UUID, as ``str(uuid.uuid4())`` writes it. ``uuid.uuid4()`` reads the
    OS's random source once per id and builds a UUID object; a capture record needs only the
    text, so each thread draws the random bytes of 64 ids in one read and formats them itself."""
    pool = _event_ids.pool
    if not pool:
        text = os.urandom(16 * 64).hex()
        pool.extend(text[i:i + 32] for i in range(0, len(text), 32))
    h = pool.pop()
    # Version 4 in the 13th hex digit, variant 10xx (RFC 4122) in the 17th: 122 random bits, as uuid4's.
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def ground_truth_record(query_id: str, label: Any) -> bytes:
    """One ground-truth line (no newline) in Model Monitor's ground-truth layout."""
    return orjson.dumps({"groundTruthData": {"data": _json_text(label), "encoding": "JSON"},
                         "eventMetadata": {"eventId": query_id}, "eventVersion": "0"})
