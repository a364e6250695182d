"""Which captured-traffic files hold an app's queries of a time window, from their keys alone.

Pure and pandas-free (the API and schedule Lambdas use it on AWS, where pandas is not shipped):
a listing of the app's capture and ground-truth folders in, the keys to read out. Reading them
is the worker's (``kilele_stress.capture.traffic_table``, in a continuous test's job) or, where
pandas is at hand, :func:`chalicelib.capture_reader.traffic_frame`.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Iterable, Optional

from chalicelib.capture_format import GROUND_TRUTH_PREFIX, partition_hour


def _hour_in(hour: Optional[datetime], start: Optional[datetime], end: Optional[datetime]) -> bool:
    if hour is None:
        return False
    return (start is None or hour + timedelta(hours=1) > start) and (end is None or hour < end)


def traffic_keys(keys: Iterable[str], since: Optional[datetime] = None,
                 until: Optional[datetime] = None) -> tuple[list[str], list[str]]:
    """(capture keys, ground-truth keys) to read for the queries answered in ``[since, until)``:
    the capture files of the hours in the window, and the ground-truth files of every hour from
    ``since`` on (a label arrives after its query), oldest hour first. A capture file of an hour
    the window only touches may hold queries outside it: the reader filters them by time."""
    capture_keys, label_keys = [], []
    for key in keys:
        hour = partition_hour(key)
        if f"/{GROUND_TRUTH_PREFIX}/" in f"/{key}":
            if _hour_in(hour, since, None):
                label_keys.append((hour, key))
        elif _hour_in(hour, since, until):
            capture_keys.append(key)
    return capture_keys, [key for _, key in sorted(label_keys)]


__all__ = ["traffic_keys"]
