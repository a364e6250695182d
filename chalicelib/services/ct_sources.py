"""What a scheduled continuous test's firing hands to the worker: the new data's files, listed.

A firing runs in the schedule Lambda on AWS, which ships no pandas; it only decides what is new
from a listing (which files, which time window) and writes a *sources manifest*, the evaluation
file of the incremental continuous test it starts. The worker's continuous-test job reads the
files it names (containers/worker/kilele_worker/ct_sources.py; the manifest's layout is
documented there) from the folders the job's message names (``source_prefixes``): the app's
capture and ground-truth folders, or the schedule's prefix. Pure, apart from the listing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Optional

from chalicelib.capture_format import CAPTURE_PREFIX, GROUND_TRUTH_PREFIX, app_prefix, partition_hour
from chalicelib.capture_window import traffic_keys
from chalicelib.errors import InvalidInput
from chalicelib.ports_loop import KeyLister

KIND = "kilele.ct_sources"
VERSION = 1
#: Files of an S3 source remembered as tested (the oldest are forgotten past this).
MAX_SEEN_FILES = 5000
#: The most files one firing hands over (the worker refuses more): a schedule far behind its data
#: tests the oldest first and the rest at its next firings.
MAX_FILES = 20_000
DATA_FILE = re.compile(r"\.(csv|parquet)$", re.I)


@dataclass
class NewData:
    """A firing's new data: the manifest (None when nothing arrived), the folders its files lie
    in, and what the schedule's record becomes once a job took it (``moved``)."""

    manifest: Optional[dict[str, Any]]
    prefixes: list[str]
    moved: dict[str, Any] = field(default_factory=dict)

    @property
    def num_files(self) -> int:
        return len(self.manifest["captures"]) + len(self.manifest["files"]) if self.manifest else 0


def _manifest(source: str, timestamp_col: str, label_col: Optional[str] = None, since: Optional[datetime] = None,
              until: Optional[datetime] = None, captures: Optional[list[str]] = None,
              labels: Optional[list[str]] = None, files: Optional[list[str]] = None) -> dict[str, Any]:
    return {"kind": KIND, "version": VERSION, "source": source, "captures": captures or [], "labels": labels or [],
            "files": files or [], "since": since.isoformat() if since else None,
            "until": until.isoformat() if until else None, "timestamp_col": timestamp_col, "label_col": label_col}


def traffic(keys: KeyLister, owner_id: str, app: str, since: Optional[datetime], until: datetime,
            timestamp_col: str, label_col: Optional[str], max_files: int = MAX_FILES) -> NewData:
    """The app's queries answered in ``[since, until)``: the capture files of those hours and
    the labels received since (a firing with no capture file of the window has no new data).
    At most ``max_files`` files, half of them labels at most: past that, the oldest whole hours
    of the window that fit, and the watermark stops at the first hour left out."""
    folders = [app_prefix(CAPTURE_PREFIX, owner_id, app) + "/", app_prefix(GROUND_TRUTH_PREFIX, owner_id, app) + "/"]
    captures, labels = traffic_keys([k for folder in folders for k in keys.list_keys(folder)], since, until)
    labels = labels[:max_files // 2]  # the labels received first: those of the window's queries come first
    budget = max_files - len(labels)
    if len(captures) > budget:
        # A schedule far behind its traffic: this job tests the oldest whole hours that fit, and
        # the watermark stops there (the next firing goes on from it).
        ordered = sorted(captures, key=lambda k: (partition_hour(k), k))
        cut = partition_hour(ordered[budget])
        captures = [k for k in ordered if partition_hour(k) < cut]
        if not captures or cut is None:
            raise InvalidInput(f"more than {budget} capture files in the hour from {cut}: more than one "
                               "continuous-test job reads")
        until = cut
    moved = {"watermark": until.isoformat()}
    if not captures:
        return NewData(None, folders, moved)
    return NewData(_manifest("traffic", timestamp_col, label_col, since, until, captures=captures, labels=labels),
                   folders, moved)


def files(keys: KeyLister, prefix: str, seen: list[str], timestamp_col: str) -> NewData:
    """The CSV and Parquet files under ``prefix`` (a key prefix) not tested before."""
    known = set(seen)
    new = [k for k in keys.list_keys(prefix) if DATA_FILE.search(k) and k not in known][:MAX_FILES]
    # The folder the files lie in: the prefix itself, or the folder of a prefix that ends mid-name.
    folder = prefix if prefix.endswith("/") else prefix.rsplit("/", 1)[0] + "/"
    moved = {"seen_files": (list(seen) + new)[-MAX_SEEN_FILES:]}
    if not new:
        return NewData(None, [folder], moved)
    return NewData(_manifest("files", timestamp_col, files=new), [folder], moved)


__all__ = ["KIND", "MAX_FILES", "MAX_SEEN_FILES", "NewData", "files", "traffic"]
