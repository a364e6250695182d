"""Captured traffic as a DataFrame: the contents of files in SageMaker Data Capture's layout
(Kilele's own, or a SageMaker endpoint's), and ground-truth files joined in by query id.

Pure: file contents in, pandas DataFrames out (which files to read is the caller's: the platform
chooses them without pandas, ``chalicelib/capture_window.py``; the worker reads them in a
continuous test of an app's traffic, ``kilele_worker.ct_sources``). The layout is described in
the platform's ``chalicelib/capture_format.py``.

One row per query. A Kilele capture record holds one query (its ``inferenceId`` is the query
id); a SageMaker endpoint's record holds one request, which may hold several rows (CSV lines,
or a JSON body ``{"instances": [...]}``, ``{"queries": [...]}``, ``{"inputs": [...]}`` or a
list): its rows get the record's ``inferenceId`` (else its ``eventId``), suffixed ``#<row>``
when there are several. Columns:

- ``timestamp`` (UTC), ``query_id``, ``event_id``, ``endpoint_default`` (True where the app's
  default output answered: Kilele's ``kileleDefault``);
- ``input`` (the query as sent) and ``prediction`` (what was answered for it);
- the query's features beside them: a JSON object's keys, or ``x0``, ``x1`` ... for a list of
  scalars or a CSV line (a feature named like one of the columns above is left out);
- after :func:`join_labels`, ``label`` (missing where no label was sent).
"""
from __future__ import annotations

import base64
import csv
import io
import json
from datetime import datetime
from typing import Any, Iterable, Optional, Union

import pandas as pd

Content = Union[bytes, str]
COLUMNS = ["timestamp", "query_id", "event_id", "endpoint_default", "input", "prediction"]
_BATCH_KEYS = ("instances", "queries", "inputs")


class CaptureFormatError(ValueError):
    """A line that is not a capture (or ground-truth) record; says which line and why."""


class NoLabelledTraffic(ValueError):
    """The captured traffic holds no query with a label: no dataset can be built of it."""


def _lines(contents: Iterable[Content]) -> Iterable[tuple[int, int, str]]:
    for file_index, content in enumerate(contents):
        text = content.decode("utf-8") if isinstance(content, bytes) else content
        for line_number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                yield file_index, line_number, line


def _scalar(text: str) -> Any:
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number


def _decode(part: dict[str, Any]) -> tuple[list[Any], bool]:
    """The rows of a captured input or output, and whether it held several (a batch)."""
    data, encoding = part.get("data", ""), str(part.get("encoding", "")).upper()
    content_type = str(part.get("observedContentType", "")).lower()
    if encoding == "BASE64":
        data = base64.b64decode(data).decode("utf-8")
        encoding = "CSV" if "csv" in content_type else "JSON" if "json" in content_type else "TEXT"
    if encoding == "CSV":
        rows = [[_scalar(cell) for cell in row] for row in csv.reader(io.StringIO(data)) if row]
        rows = [row[0] if len(row) == 1 else row for row in rows]
        return rows, len(rows) > 1
    if encoding == "JSON":
        value = json.loads(data)
        if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _BATCH_KEYS + ("predictions",):
            inner = next(iter(value.values()))
            if isinstance(inner, list):
                return inner, True
        return [value], False
    return [data], False


def _features(query: Any) -> dict[str, Any]:
    if isinstance(query, dict):
        return {str(k): v for k, v in query.items() if str(k) not in COLUMNS and str(k) != "label"}
    if isinstance(query, list) and query and all(not isinstance(v, (list, dict)) for v in query):
        return {f"x{i}": v for i, v in enumerate(query)}
    return {}


def capture_frame(contents: Iterable[Content]) -> pd.DataFrame:
    """One row per captured query, from the contents of capture files (bytes or text), oldest first."""
    rows: list[dict[str, Any]] = []
    for file_index, line_number, line in _lines(contents):
        where = f"file {file_index}, line {line_number}"
        try:
            record = json.loads(line)
            capture = record["captureData"]
            metadata = record.get("eventMetadata", {})
            inputs, batch = _decode(capture["endpointInput"]) if "endpointInput" in capture else ([None], False)
            outputs = _decode(capture["endpointOutput"])[0] if "endpointOutput" in capture else [None] * len(inputs)
            when = metadata["inferenceTime"]
        except (ValueError, KeyError, TypeError) as e:
            raise CaptureFormatError(f"{where} is not a Data Capture record: {e}") from e
        if len(outputs) != len(inputs):  # one answer for the whole request: every row gets it
            outputs = [outputs[0] if len(outputs) == 1 else outputs] * len(inputs)
        base_id = str(metadata.get("inferenceId") or metadata.get("eventId", ""))
        for index, (query, output) in enumerate(zip(inputs, outputs)):
            row = {"timestamp": when, "query_id": f"{base_id}#{index}" if batch and len(inputs) > 1 else base_id,
                   "event_id": metadata.get("eventId"), "endpoint_default": bool(metadata.get("kileleDefault")),
                   "input": query, "prediction": output}
            row.update({k: v for k, v in _features(query).items() if k not in row})
            rows.append(row)
    frame = pd.DataFrame(rows, columns=None if rows else COLUMNS)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)


def ground_truth_frame(contents: Iterable[Content]) -> pd.DataFrame:
    """``query_id`` and ``label`` from ground-truth files, in the order given (pass files oldest
    first: a query labelled twice keeps its last label in :func:`join_labels`)."""
    rows = []
    for file_index, line_number, line in _lines(contents):
        try:
            record = json.loads(line)
            truth = record["groundTruthData"]
            labels, _ = _decode(truth)
            rows.append({"query_id": str(record["eventMetadata"]["eventId"]),
                         "label": labels[0] if len(labels) == 1 else labels})
        except (ValueError, KeyError, TypeError) as e:
            raise CaptureFormatError(f"file {file_index}, line {line_number} is not a ground-truth record: {e}") from e
    return pd.DataFrame(rows, columns=["query_id", "label"])


def join_labels(captured: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """``captured`` with a ``label`` column: each query's last label (missing if none)."""
    last = labels.drop_duplicates("query_id", keep="last")
    joined = captured.drop(columns=["label"], errors="ignore").merge(last, on="query_id", how="left")
    return joined


def traffic_table(captures: Iterable[Content], labels: Iterable[Content], since: Optional[datetime] = None,
                  until: Optional[datetime] = None) -> pd.DataFrame:
    """The queries of ``captures`` answered in ``[since, until)``, with their labels from
    ``labels`` (ground-truth files, oldest first: a query labelled twice keeps its last label)."""
    frame = capture_frame(captures)
    if since is not None:
        frame = frame[frame["timestamp"] >= pd.Timestamp(since)]
    if until is not None:
        frame = frame[frame["timestamp"] < pd.Timestamp(until)]
    return join_labels(frame.reset_index(drop=True), ground_truth_frame(labels))


def labelled_dataset(captures: Iterable[Content], labels: Iterable[Content], target_column: str) -> pd.DataFrame:
    """A training table of the captured queries that have a label: their features and the label
    as ``target_column``, oldest query first (the retrain loop's ``labelled_captured_traffic``;
    the worker builds it, ``kilele_worker.dataset_build``). :class:`NoLabelledTraffic` if no query
    has one; :class:`CaptureFormatError` naming the line that is no record."""
    frame = traffic_table(captures, labels)
    if "label" not in frame.columns or frame["label"].isna().all():
        raise NoLabelledTraffic("no captured query has a label (send them: POST /apps/{app}/labels)")
    frame = frame[frame["label"].notna()]
    features = frame.drop(columns=[c for c in COLUMNS + [target_column] if c in frame.columns])
    return features.rename(columns={"label": target_column}).reset_index(drop=True)


__all__ = ["COLUMNS", "CaptureFormatError", "NoLabelledTraffic", "capture_frame", "ground_truth_frame", "join_labels",
           "labelled_dataset", "traffic_table"]
