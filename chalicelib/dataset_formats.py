"""Checks a dataset file against its task's format and describes it.

Each checker reads the file as a stream (datasets can be large) and raises
:class:`~chalicelib.errors.Unprocessable` with a message that points at what is wrong:
the line, the column, the entry in the archive.
"""
from __future__ import annotations

import csv
import io
import math
from contextlib import contextmanager
from typing import IO, Any, Iterator, Optional

from chalicelib.entities import Task
from chalicelib.errors import FormatError, Unprocessable
from chalicelib.image_archives import ArchiveLimits, check_image_zip

DEFAULT_TARGET = "target"


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


@contextmanager
def _text_lines(fileobj: IO[bytes]) -> Iterator[io.TextIOWrapper]:
    """Text view of a binary file that leaves the file open afterwards (the caller may store it)."""
    wrapper = io.TextIOWrapper(fileobj, encoding="utf-8-sig", newline="")
    try:
        yield wrapper
    finally:
        wrapper.detach()


def check_tabular(fileobj: IO[bytes], task: Task, target_column: Optional[str] = None) -> dict[str, Any]:
    """A CSV with a header; every feature numeric; the target named ``target_column``,
    else ``target``, else the last column; numeric too for regression."""
    with _text_lines(fileobj) as text:
        return _check_tabular_rows(csv.reader(text), task, target_column)


def _check_tabular_rows(reader: Iterator[list[str]], task: Task, target_column: Optional[str]) -> dict[str, Any]:
    try:
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise Unprocessable("the CSV file is empty: it needs a header line and at least one row")
        header = [h.strip() for h in header]
        if len(header) < 2:
            raise Unprocessable("the CSV header has one column; it needs at least one feature and a target")
        if any(not h for h in header):
            raise Unprocessable(f"the CSV header has an empty column name (column {header.index('') + 1})")
        duplicates = sorted({h for h in header if header.count(h) > 1})
        if duplicates:
            raise FormatError(f"the CSV header repeats column names: {', '.join(duplicates)}",
                              "the CSV header repeats column names")
        if target_column is not None and target_column not in header:
            raise FormatError(f"target column {target_column!r} is not in the CSV header ({', '.join(header)})",
                              f"target column {target_column!r} is not in the CSV header")
        target = target_column or (DEFAULT_TARGET if DEFAULT_TARGET in header else header[-1])
        target_index = header.index(target)
        classes: set[str] = set()
        rows = 0
        for line_number, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise Unprocessable(
                    f"line {line_number} has {len(row)} fields but the header has {len(header)}"
                )
            for index, value in enumerate(row):
                value = value.strip()
                if index == target_index:
                    if not value:
                        raise FormatError(f"line {line_number}: the target {target!r} is empty",
                                          f"line {line_number}: the target (column {index + 1}) is empty")
                    if task is Task.TABULAR_REGRESSION and not _is_number(value):
                        raise FormatError(
                            f"line {line_number}: target {target!r} must be a number for "
                            f"{task.value}, got {value!r}",
                            f"line {line_number}: the target (column {index + 1}) must be a number for {task.value}",
                        )
                    if task is Task.TABULAR_CLASSIFICATION:
                        classes.add(value)
                elif not _is_number(value):
                    raise FormatError(
                        f"line {line_number}, column {header[index]!r}: {value!r} is not a number",
                        f"line {line_number}, column {index + 1} is not a number",
                    )
            rows += 1
    except UnicodeDecodeError as e:
        raise Unprocessable(f"the file is not UTF-8 text (byte {e.start} cannot be decoded)") from e
    except csv.Error as e:
        raise FormatError(f"the file is not a valid CSV: {e}", "the file is not a valid CSV") from e
    if rows == 0:
        raise Unprocessable("the CSV file has a header but no data rows")
    stats: dict[str, Any] = {
        "rows": rows,
        "features": [h for h in header if h != target],
        "target_column": target,
    }
    if task is Task.TABULAR_CLASSIFICATION:
        stats["classes"] = len(classes)
    return stats


def _check_images(fileobj: IO[bytes], target_column: Optional[str], limits: ArchiveLimits) -> dict[str, Any]:
    if target_column is not None:
        raise Unprocessable("target_column applies to tabular datasets only")
    return check_image_zip(fileobj, limits)


def check_dataset(fileobj: IO[bytes], task: Task, target_column: Optional[str] = None,
                  archive_limits: ArchiveLimits = ArchiveLimits()) -> dict[str, Any]:
    """Check a seekable binary file against ``task``'s format; returns its stats. Image archives
    are held to ``archive_limits`` (a bomb is refused with the limit it broke)."""
    fileobj.seek(0)
    if task is Task.IMAGE_CLASSIFICATION:
        return _check_images(fileobj, target_column, archive_limits)
    return check_tabular(fileobj, task, target_column)
