"""A scheduled continuous test's new data, gathered in the worker (issue 12 item 4 on AWS).

A schedule's firing runs where pandas is not (the schedule Lambda on AWS): it only lists what
arrived since its last run and hands the list over. Its job's evaluation file is then a *sources
manifest* the platform wrote (``chalicelib/ct_sources.py`` builds it), and the message's
``continuous.source_prefixes`` names the folders those files may come from::

    {"kind": "kilele.ct_sources", "version": 1, "source": "traffic" | "files",
     "captures": [keys], "labels": [keys], "files": [keys],
     "since": ISO-8601 | null, "until": ISO-8601 | null,
     "timestamp_col": "...", "label_col": "..." | null}

Two halves, as everything the worker runs: :func:`fetch` in the supervisor (it holds the
credentials) checks the manifest and downloads the files it names, every one under a source
prefix, and writes the same manifest with local paths; :func:`eval_frame` in the model process
reads them into the continuous test's evaluation data. ``traffic``: the queries answered in
``[since, until)`` (SageMaker Data Capture JSON Lines, ``kilele_stress.capture``), the labels
sent so far joined in as ``label_col``, their time as ``timestamp_col``; ``files``: the CSV or
Parquet files, one table.
"""
from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Any, Callable, Optional

KIND = "kilele.ct_sources"
LISTS = ("captures", "labels", "files")
#: Columns of a captured query that are no feature of the model's data.
CAPTURE_ONLY = ("query_id", "event_id", "endpoint_default", "input", "prediction")
#: The most files one firing may hand over (a bound on the job's downloads; the platform lists fewer).
MAX_FILES = 20_000


class SourcesError(ValueError):
    """The manifest is not one the platform writes, or names a file outside the run's folders."""


def parse(data: bytes, prefixes: list[str]) -> dict[str, Any]:
    """The manifest, checked: its lists hold keys under ``prefixes`` only."""
    try:
        manifest = json.loads(data)
    except ValueError as e:
        raise SourcesError(f"the sources manifest is not JSON: {e}") from e
    if not isinstance(manifest, dict) or manifest.get("kind") != KIND or manifest.get("source") not in (
            "traffic", "files"):
        raise SourcesError(f"the evaluation file is not a sources manifest (kind {KIND!r}, source traffic or files)")
    total = 0
    for name in LISTS:
        keys = manifest.setdefault(name, [])
        if not isinstance(keys, list):
            raise SourcesError(f"sources manifest: {name} must be a list of keys")
        for key in keys:
            if not isinstance(key, str) or ".." in key.split("/") or not any(key.startswith(p) for p in prefixes):
                raise SourcesError(f"sources manifest: {key!r} is not under the run's source folders "
                                   f"({', '.join(prefixes)})")
        total += len(keys)
    if total > MAX_FILES:
        raise SourcesError(f"sources manifest: {total} files, more than {MAX_FILES}")
    for name in ("since", "until"):
        if manifest.get(name) is not None:
            try:
                datetime.fromisoformat(manifest[name])
            except (TypeError, ValueError) as e:
                raise SourcesError(f"sources manifest: {name} must be an ISO-8601 time or null") from e
    if not isinstance(manifest.get("timestamp_col"), str) or not manifest["timestamp_col"]:
        raise SourcesError("sources manifest: timestamp_col must be a non-empty string")
    return manifest


def fetch(manifest_path: str, prefixes: list[str], download: Callable[[str, str], None], folder: str,
          say: Callable[[str], None]) -> str:
    """Download the files ``manifest_path`` names (``download(key, path)``) into ``folder``;
    returns the path of the manifest with local paths (``local`` beside each key list)."""
    with open(manifest_path, "rb") as f:
        manifest = parse(f.read(), prefixes)
    os.makedirs(folder, 0o755, exist_ok=True)
    count = 0
    for name in LISTS:
        local = []
        for key in manifest[name]:
            count += 1
            suffix = os.path.splitext(key)[1].lower()
            path = os.path.join(folder, f"{count:05d}{suffix if suffix in ('.csv', '.parquet', '.jsonl') else ''}")
            download(key, path)
            os.chmod(path, 0o644)
            local.append(path)
        manifest[f"local_{name}"] = local
    say(f"downloaded the new data: {len(manifest['captures'])} capture file(s), {len(manifest['labels'])} "
        f"ground-truth file(s), {len(manifest['files'])} data file(s)")
    out = os.path.join(folder, "sources.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump(manifest, f)
    os.chmod(out, 0o644)
    return out


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def eval_frame(local_manifest: str, say: Callable[[str], None]) -> tuple[Any, dict[str, int]]:
    """The evaluation data of the manifest's files (a DataFrame, perhaps empty) and what it came
    from (``num_rows``, ``num_files``, ``num_label_files``). Raises :class:`SourcesError` naming
    the file that cannot be read or the data that makes no table."""
    import pandas as pd

    with open(local_manifest, encoding="utf-8") as f:
        manifest = json.load(f)
    timestamp_col = manifest["timestamp_col"]
    if manifest["source"] == "traffic":
        frame = _traffic(manifest, timestamp_col)
        files = len(manifest["captures"])
    else:
        from kilele_stress.data import DataError, read_table

        frames = []
        for key, path in zip(manifest["files"], manifest["local_files"]):
            try:
                frames.append(read_table(path))
            except DataError as e:
                raise SourcesError(f"{key} is not a readable CSV or Parquet file: {str(e).split(': ', 1)[-1]}") from e
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        files = len(frames)
    gathered = {"num_rows": int(len(frame)), "num_files": files, "num_label_files": len(manifest["labels"])}
    say(f"the new data: {gathered['num_rows']} row(s) from {files} file(s)"
        + (f" and the labels of {gathered['num_label_files']} ground-truth file(s)" if manifest["labels"] else ""))
    return frame, gathered


def _traffic(manifest: dict[str, Any], timestamp_col: str) -> Any:
    from kilele_stress.capture import CaptureFormatError, traffic_table

    since, until = (datetime.fromisoformat(manifest[k]) if manifest.get(k) else None for k in ("since", "until"))
    try:
        frame = traffic_table((_read(p) for p in manifest["local_captures"]),
                              (_read(p) for p in manifest["local_labels"]), since, until)
    except CaptureFormatError as e:  # "file N, line M": N counts the captures, then the labels
        raise SourcesError(f"captured traffic could not be read: {e}") from e
    label_col: Optional[str] = manifest.get("label_col")
    frame = frame.drop(columns=[c for c in CAPTURE_ONLY if c in frame.columns])
    if "label" in frame.columns and label_col and label_col != "label":
        frame = frame.rename(columns={"label": label_col})
    if label_col in frame.columns and frame[label_col].isna().all():
        frame = frame.drop(columns=[label_col])  # no label sent yet: drift is tested, not performance
    return frame.rename(columns={"timestamp": timestamp_col})


__all__ = ["KIND", "MAX_FILES", "SourcesError", "eval_frame", "fetch", "parse"]
