"""Captured traffic as a DataFrame, for the processes that have pandas (the local stack, tests).

The frames are built by ``kilele_stress.capture`` (the worker's image has it: continuous tests of
an app's traffic read it there); which files a window needs is chosen without pandas by
:mod:`chalicelib.capture_window`. :func:`traffic_frame` does both for one app's folders.
"""
from __future__ import annotations

from datetime import datetime
from typing import Callable, Iterable, Optional

import pandas as pd
from kilele_stress.capture import (COLUMNS, CaptureFormatError, Content, capture_frame, ground_truth_frame,
                                   join_labels, traffic_table)

from chalicelib.capture_window import traffic_keys


def traffic_frame(keys: Iterable[str], read: Callable[[str], Content], since: Optional[datetime] = None,
                  until: Optional[datetime] = None) -> pd.DataFrame:
    """An app's captured queries answered in ``[since, until)`` with their labels: ``keys`` are
    the object keys under the app's capture and ground-truth folders (a listing), ``read`` gives
    one object's content. Capture files are read only for the hours in the window; ground-truth
    files for every hour from ``since`` on (a label arrives after its query), oldest first."""
    capture_keys, label_keys = traffic_keys(keys, since, until)
    return traffic_table((read(key) for key in capture_keys), (read(key) for key in label_keys), since, until)


__all__ = ["COLUMNS", "CaptureFormatError", "capture_frame", "ground_truth_frame", "join_labels", "traffic_frame"]
