"""Checks an IMAGE_CLASSIFICATION archive (a zip with ``images.csv`` and the images it lists)
without letting the archive decide how much memory or time the check takes.

A zip declares its own sizes, and a small one can declare (or hold) gigabytes: deflated zeros,
an index of millions of rows naming one image again and again, an image header announcing
100,000 x 100,000 pixels. Every count and size is bounded by :class:`ArchiveLimits`, in the
order that costs least: the entry count from the end record before the directory is parsed,
the declared sizes and ratios of every entry before any is read, then while streaming each
index row and image header (Python's zipfile never yields more than an entry's declared size,
and fails on a CRC mismatch, so the declared sizes bound what is read). A refusal is a
:class:`~chalicelib.errors.PayloadTooLarge` naming the limit and its setting.
"""
from __future__ import annotations

import csv
import io
import zipfile
import zlib
from dataclasses import dataclass
from typing import IO, Any, Iterator, Optional

from PIL import Image

from chalicelib.errors import FormatError, PayloadTooLarge, Unprocessable

IMAGES_INDEX = "images.csv"
MiB = 1024 * 1024
# Entries smaller than this are not held to the compression ratio: whatever their ratio, they are small.
_RATIO_FLOOR_BYTES = MiB


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds of an image archive; each maps to the ``Settings`` field of the same name."""

    archive_max_entries: int = 200_000
    archive_max_bytes: int = 4096 * MiB  # total uncompressed
    archive_max_entry_bytes: int = 256 * MiB  # one entry, uncompressed
    archive_max_ratio: int = 100  # uncompressed / compressed, for entries over 1 MiB
    image_max_pixels: int = 50_000_000  # one image (Pillow's own guard is at ~179 million)
    images_max_total_pixels: int = 4_000_000_000  # every image together (what a trial decodes)


class ArchiveLimitExceeded(PayloadTooLarge):
    """An archive over one of :class:`ArchiveLimits`; ``blind`` names the limit without the
    archive's own entry names (see :class:`~chalicelib.errors.FormatError`)."""

    def __init__(self, message: str, blind: str):
        super().__init__(message)
        self.blind = blind


def _too_large(what: str, limit: int, setting: str) -> ArchiveLimitExceeded:
    return ArchiveLimitExceeded(f"{what}; the limit is {limit:,} ({setting})",
                                f"the archive is over the limit of {limit:,} ({setting})")


def check_image_zip(fileobj: IO[bytes], limits: ArchiveLimits = ArchiveLimits()) -> dict[str, Any]:
    """Stats of a valid archive: ``images``, ``classes`` and ``image_size`` if all images share one."""
    if not zipfile.is_zipfile(fileobj):
        raise Unprocessable("the file is not a zip archive (IMAGE_CLASSIFICATION takes a .zip)")
    _check_declared_entry_count(fileobj, limits)
    fileobj.seek(0)
    try:
        archive = zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, ValueError, EOFError) as e:
        raise FormatError(f"the zip archive is damaged: {e}", "the zip archive is damaged") from e
    with archive:
        try:
            entries = _check_directory(archive, limits)
            count, classes, sizes = _check_index_and_images(archive, entries, limits)
        except _ARCHIVE_ERRORS as e:
            raise FormatError(f"the zip archive is damaged or uses an unsupported feature: {e}",
                              "the zip archive is damaged or uses an unsupported feature") from e
    stats: dict[str, Any] = {"images": count, "classes": len(classes)}
    if len(sizes) == 1:
        stats["image_size"] = list(next(iter(sizes)))
    return stats


# How reading an entry of a damaged, encrypted or unusually compressed archive fails.
_ARCHIVE_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError)


def _check_declared_entry_count(fileobj: IO[bytes], limits: ArchiveLimits) -> None:
    """The end record's entry count, before ZipFile builds an object per entry."""
    fileobj.seek(0)
    # zipfile's own end-record reader (private, but unchanged since Python 2): [.., entries, ..].
    end = zipfile._EndRecData(fileobj)  # type: ignore[attr-defined]
    if end is None:
        raise Unprocessable("the zip archive is damaged: no end of central directory record")
    declared = end[zipfile._ECD_ENTRIES_TOTAL]  # type: ignore[attr-defined]
    if declared > limits.archive_max_entries:
        raise _too_large(f"the archive has {declared:,} entries", limits.archive_max_entries, "archive_max_entries")


def _check_directory(archive: zipfile.ZipFile, limits: ArchiveLimits) -> dict[str, zipfile.ZipInfo]:
    """Every entry's declared size and ratio, and their total, before any entry is read."""
    infos = archive.infolist()
    if len(infos) > limits.archive_max_entries:
        raise _too_large(f"the archive has {len(infos):,} entries", limits.archive_max_entries, "archive_max_entries")
    total = 0
    for info in infos:
        if info.file_size > limits.archive_max_entry_bytes:
            raise _too_large(f"{info.filename!r} is {info.file_size:,} bytes uncompressed",
                             limits.archive_max_entry_bytes, "archive_max_entry_bytes")
        if info.file_size > _RATIO_FLOOR_BYTES and info.file_size > limits.archive_max_ratio * max(1, info.compress_size):
            raise _too_large(f"{info.filename!r} expands {info.file_size // max(1, info.compress_size):,} times",
                             limits.archive_max_ratio, "archive_max_ratio")
        total += info.file_size
        if total > limits.archive_max_bytes:
            raise _too_large(f"the archive holds more than {limits.archive_max_bytes:,} bytes uncompressed",
                             limits.archive_max_bytes, "archive_max_bytes")
    return {info.filename: info for info in infos}


def _index_rows(archive: zipfile.ZipFile, limits: ArchiveLimits) -> Iterator[tuple[int, list[str]]]:
    """``images.csv``'s rows one at a time (never the whole index in memory), at most one line
    per archive entry: each row names a distinct entry, so more lines than entries is a bomb."""
    with archive.open(IMAGES_INDEX) as index_file:
        text = io.TextIOWrapper(index_file, encoding="utf-8-sig", newline="")
        try:
            for line_number, row in enumerate(csv.reader(text), start=1):
                if line_number > limits.archive_max_entries:
                    raise _too_large(f"{IMAGES_INDEX} has more than {limits.archive_max_entries:,} lines",
                                     limits.archive_max_entries, "archive_max_entries")
                yield line_number, row
        except UnicodeDecodeError as e:
            raise Unprocessable(f"{IMAGES_INDEX} is not UTF-8 text") from e
        except csv.Error as e:
            raise FormatError(f"{IMAGES_INDEX} is not a valid CSV: {e}", f"{IMAGES_INDEX} is not a valid CSV") from e


def _check_index_and_images(
    archive: zipfile.ZipFile, entries: dict[str, zipfile.ZipInfo], limits: ArchiveLimits
) -> tuple[int, set[int], set[tuple[int, int]]]:
    if IMAGES_INDEX not in entries:
        raise Unprocessable(f"the zip archive has no {IMAGES_INDEX} at its top level")
    rows = _index_rows(archive, limits)
    header = next(rows, (1, []))[1]
    if [h.strip() for h in header] != ["path", "class"]:
        raise Unprocessable(f"{IMAGES_INDEX} must start with the header 'path,class'")
    classes: set[int] = set()
    sizes: set[tuple[int, int]] = set()
    seen: set[str] = set()
    total_pixels = 0
    for line_number, row in rows:
        if not row:
            continue
        if len(row) != 2:
            raise Unprocessable(f"{IMAGES_INDEX} line {line_number} has {len(row)} fields, expected 2")
        path, label = row[0].strip(), row[1].strip()
        if not (label.isascii() and label.isdigit() and len(label) <= 18):
            raise FormatError(f"{IMAGES_INDEX} line {line_number}: class {label!r} is not a non-negative integer",
                              f"{IMAGES_INDEX} line {line_number}: the class is not a non-negative integer")
        if path not in entries:
            raise FormatError(f"{IMAGES_INDEX} line {line_number}: {path!r} is not in the archive",
                              f"{IMAGES_INDEX} line {line_number}: the path is not in the archive")
        if path in seen:  # one image listed a million times is a million decodes of one entry
            raise FormatError(f"{IMAGES_INDEX} line {line_number}: {path!r} is listed twice",
                              f"{IMAGES_INDEX} line {line_number}: the path is listed twice")
        seen.add(path)
        width, height = _image_size(archive, path, line_number, limits)
        total_pixels += width * height
        if total_pixels > limits.images_max_total_pixels:
            raise _too_large(f"the images up to line {line_number} have {total_pixels:,} pixels",
                             limits.images_max_total_pixels, "images_max_total_pixels")
        sizes.add((width, height))
        classes.add(int(label))
    if not seen:
        raise Unprocessable(f"{IMAGES_INDEX} lists no images")
    return len(seen), classes, sizes


def _image_size(archive: zipfile.ZipFile, path: str, line_number: int, limits: ArchiveLimits) -> tuple[int, int]:
    """The image's declared size, refused past the limit before its pixels are touched; then
    ``verify()`` reads the file (bounded by its entry's size) without decoding the pixels."""
    over = f"{path!r} (line {line_number}) declares more pixels than allowed"
    try:
        with archive.open(path) as image_file, Image.open(image_file) as image:
            width, height = image.size
            if width * height > limits.image_max_pixels:
                raise _too_large(f"{path!r} (line {line_number}) declares {width:,} x {height:,} pixels",
                                 limits.image_max_pixels, "image_max_pixels")
            image.verify()
    except (ArchiveLimitExceeded, *_ARCHIVE_ERRORS):
        raise
    except Image.DecompressionBombError as e:  # Pillow's own guard, past ~179 million pixels
        raise _too_large(over, limits.image_max_pixels, "image_max_pixels") from e
    except Exception as e:  # noqa: BLE001 - Pillow raises many kinds of errors on malformed images
        raise FormatError(f"{path!r} (line {line_number}) is not a readable image",
                          f"the image of {IMAGES_INDEX} line {line_number} is not readable") from e
    return width, height


__all__ = ["ArchiveLimits", "IMAGES_INDEX", "check_image_zip"]
