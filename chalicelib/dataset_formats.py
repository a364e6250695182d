"""Checks a dataset file against its task's format and describes it.

Each checker reads the file as a stream (datasets can be large) and raises
:class:`~chalicelib.errors.Unprocessable` with a message that points at what is wrong:
the line, the column, the entry in the archive.
"""
from __future__ import annotations

import csv
import io
import math
import zipfile
import zlib
from contextlib import contextmanager
from typing import IO, Any, Callable, Iterator, Optional

from PIL import Image

from chalicelib.entities import Task
from chalicelib.errors import Unprocessable

DEFAULT_TARGET = "target"
IMAGES_INDEX = "images.csv"


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
            raise Unprocessable(f"the CSV header repeats column names: {', '.join(duplicates)}")
        if target_column is not None and target_column not in header:
            raise Unprocessable(
                f"target column {target_column!r} is not in the CSV header ({', '.join(header)})"
            )
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
                        raise Unprocessable(f"line {line_number}: the target {target!r} is empty")
                    if task is Task.TABULAR_REGRESSION and not _is_number(value):
                        raise Unprocessable(
                            f"line {line_number}: target {target!r} must be a number for "
                            f"{task.value}, got {value!r}"
                        )
                    if task is Task.TABULAR_CLASSIFICATION:
                        classes.add(value)
                elif not _is_number(value):
                    raise Unprocessable(
                        f"line {line_number}, column {header[index]!r}: {value!r} is not a number"
                    )
            rows += 1
    except UnicodeDecodeError as e:
        raise Unprocessable(f"the file is not UTF-8 text (byte {e.start} cannot be decoded)") from e
    except csv.Error as e:
        raise Unprocessable(f"the file is not a valid CSV: {e}") from e
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


def check_image_zip(fileobj: IO[bytes], task: Task, target_column: Optional[str] = None) -> dict[str, Any]:
    """A zip holding ``images.csv`` (header ``path,class``, integer classes) and every image it lists."""
    if target_column is not None:
        raise Unprocessable("target_column applies to tabular datasets only")
    if not zipfile.is_zipfile(fileobj):
        raise Unprocessable("the file is not a zip archive (IMAGE_CLASSIFICATION takes a .zip)")
    fileobj.seek(0)
    try:
        archive = zipfile.ZipFile(fileobj)
    except zipfile.BadZipFile as e:
        raise Unprocessable(f"the zip archive is damaged: {e}") from e
    with archive:
        try:
            count, classes, sizes = _check_archive(archive)
        except _ARCHIVE_ERRORS as e:
            raise Unprocessable(f"the zip archive is damaged or uses an unsupported feature: {e}") from e
    stats: dict[str, Any] = {"images": count, "classes": len(classes)}
    if len(sizes) == 1:
        stats["image_size"] = list(next(iter(sizes)))
    return stats


# How reading an entry of a damaged, encrypted or unusually compressed archive fails.
_ARCHIVE_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError)


def _check_archive(archive: zipfile.ZipFile) -> tuple[int, set[int], set[tuple[int, int]]]:
    names = set(archive.namelist())
    if IMAGES_INDEX not in names:
        raise Unprocessable(f"the zip archive has no {IMAGES_INDEX} at its top level")
    with archive.open(IMAGES_INDEX) as index_file:
        try:
            with _text_lines(index_file) as text:
                index = list(csv.reader(text))
        except UnicodeDecodeError as e:
            raise Unprocessable(f"{IMAGES_INDEX} is not UTF-8 text") from e
        except csv.Error as e:
            raise Unprocessable(f"{IMAGES_INDEX} is not a valid CSV: {e}") from e
    if not index or [h.strip() for h in index[0]] != ["path", "class"]:
        raise Unprocessable(f"{IMAGES_INDEX} must start with the header 'path,class'")
    classes: set[int] = set()
    sizes: set[tuple[int, int]] = set()
    count = 0
    for line_number, row in enumerate(index[1:], start=2):
        if not row:
            continue
        if len(row) != 2:
            raise Unprocessable(f"{IMAGES_INDEX} line {line_number} has {len(row)} fields, expected 2")
        path, label = row[0].strip(), row[1].strip()
        if not label.lstrip("-").isdigit() or int(label) < 0:
            raise Unprocessable(
                f"{IMAGES_INDEX} line {line_number}: class {label!r} is not a non-negative integer"
            )
        if path not in names:
            raise Unprocessable(f"{IMAGES_INDEX} line {line_number}: {path!r} is not in the archive")
        try:
            with archive.open(path) as image_file, Image.open(image_file) as image:
                image.verify()
                sizes.add(image.size)
        except _ARCHIVE_ERRORS:
            raise
        except Image.DecompressionBombError as e:
            raise Unprocessable(f"{path!r} (line {line_number}) is too large to decode: {e}") from e
        except Exception as e:  # noqa: BLE001 - Pillow raises many kinds of errors on malformed images
            raise Unprocessable(f"{path!r} (line {line_number}) is not a readable image") from e
        classes.add(int(label))
        count += 1
    if count == 0:
        raise Unprocessable(f"{IMAGES_INDEX} lists no images")
    return count, classes, sizes


CHECKERS: dict[Task, Callable[[IO[bytes], Task, Optional[str]], dict[str, Any]]] = {
    Task.TABULAR_CLASSIFICATION: check_tabular,
    Task.TABULAR_REGRESSION: check_tabular,
    Task.IMAGE_CLASSIFICATION: check_image_zip,
}


def check_dataset(fileobj: IO[bytes], task: Task, target_column: Optional[str] = None) -> dict[str, Any]:
    """Check a seekable binary file against ``task``'s format; returns its stats."""
    fileobj.seek(0)
    return CHECKERS[task](fileobj, task, target_column)
