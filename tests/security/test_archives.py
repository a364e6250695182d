"""Archive bombs through an IMAGE_CLASSIFICATION dataset (issue 9, finding 3): a 51 KB upload
held an API thread 95 s and was accepted with 2.9 million "images". Each bomb here is refused
in under a second with a 413 that names the limit it broke (the API status test is in
tests/api/test_datasets.py); each test says which bound stopped it."""
from __future__ import annotations

import io
import struct
import time
import zipfile
import zlib
from typing import Callable

import pytest
from PIL import Image

from chalicelib.dataset_formats import check_dataset
from chalicelib.entities import Task
from chalicelib.errors import PayloadTooLarge, Unprocessable
from chalicelib.image_archives import ArchiveLimits

MiB = 1024 * 1024


def small_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 7).save(buffer, format="PNG")
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` pixels, with one tiny data chunk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def archive(build: Callable[[zipfile.ZipFile], None]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        build(zf)
    return buffer.getvalue()


def refused_quickly(data: bytes, limits: ArchiveLimits = ArchiveLimits()) -> str:
    started = time.monotonic()
    with pytest.raises(PayloadTooLarge) as caught:
        check_dataset(io.BytesIO(data), task=Task.IMAGE_CLASSIFICATION, archive_limits=limits)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"took {elapsed:.2f} s"
    return caught.value.message


def test_deflated_zeros_are_refused_by_the_ratio_bound():
    def build(zf: zipfile.ZipFile) -> None:
        zf.writestr("images.csv", "path,class\nimages/0.png,0\n")
        with zf.open("images/0.png", "w", force_zip64=True) as entry:
            zero = bytes(MiB)
            for _ in range(200):  # 200 MiB of zeros, ~200 KB compressed
                entry.write(zero)

    data = archive(build)
    assert len(data) < 300_000
    message = refused_quickly(data)
    assert "'images/0.png' expands" in message and "(archive_max_ratio)" in message


def test_zeros_over_the_total_are_refused_before_reading():
    """Many entries each under the ratio and size bounds, together over the total."""
    def build(zf: zipfile.ZipFile) -> None:
        zf.writestr("images.csv", "path,class\n")
        for number in range(5):
            zf.writestr(f"blob{number}", bytes(MiB))  # 1 MiB: under the ratio floor

    limits = ArchiveLimits(archive_max_bytes=3 * MiB)
    message = refused_quickly(archive(build), limits)
    assert "the limit is 3,145,728 (archive_max_bytes)" in message


def test_an_entry_over_the_entry_bound():
    def build(zf: zipfile.ZipFile) -> None:
        zf.writestr("images.csv", "path,class\n")
        zf.writestr("big.bin", bytes(2 * MiB))

    message = refused_quickly(archive(build), ArchiveLimits(archive_max_entry_bytes=MiB, archive_max_ratio=10**6))
    assert "'big.bin' is 2,097,152 bytes uncompressed; the limit is 1,048,576 (archive_max_entry_bytes)" in message


MILLIONS_OF_ROWS = "path,class\n" + "images/0.png,0\n" * 3_000_000


def index_bomb() -> bytes:
    def build(zf: zipfile.ZipFile) -> None:
        zf.writestr("images.csv", MILLIONS_OF_ROWS)
        zf.writestr("images/0.png", small_png())

    return archive(build)


def test_an_index_of_millions_of_rows_is_refused_by_the_ratio_bound():
    data = index_bomb()
    assert len(data) < 200_000
    assert "'images.csv' expands" in refused_quickly(data)


def test_an_index_of_millions_of_rows_is_stopped_while_streaming():
    """With the ratio bound out of the way, reading the index row by row stops at the first row
    that names an image already checked (a bomb cannot make one image count a million times)."""
    started = time.monotonic()
    with pytest.raises(Unprocessable) as caught:
        check_dataset(io.BytesIO(index_bomb()), task=Task.IMAGE_CLASSIFICATION,
                      archive_limits=ArchiveLimits(archive_max_ratio=10**9))
    assert time.monotonic() - started < 1.0
    assert "line 3: 'images/0.png' is listed twice" in caught.value.message


def test_an_index_with_more_lines_than_the_archive_may_have_entries():
    def build(zf: zipfile.ZipFile) -> None:
        zf.writestr("images.csv", "path,class\n" + "\n" * 1_000_000)

    message = refused_quickly(archive(build), ArchiveLimits(archive_max_entries=1000, archive_max_ratio=10**9))
    assert "images.csv has more than 1,000 lines; the limit is 1,000 (archive_max_entries)" in message


def test_too_many_entries_are_refused_from_the_end_record():
    def build(zf: zipfile.ZipFile) -> None:
        zf.writestr("images.csv", "path,class\n")
        for number in range(50):
            zf.writestr(f"e{number}", b"")

    message = refused_quickly(archive(build), ArchiveLimits(archive_max_entries=10))
    assert "the archive has 51 entries; the limit is 10 (archive_max_entries)" in message


@pytest.mark.parametrize("width, height", [(100_000, 100_000), (20_000, 20_000), (8_000, 8_000)])
def test_an_image_declaring_huge_dimensions(width, height):
    """100,000² and 20,000² trip Pillow's own decompression-bomb guard, 8,000² (64 million
    pixels, under Pillow's guard) only the platform's; both read as the platform's limit."""
    def build(zf: zipfile.ZipFile) -> None:
        zf.writestr("images.csv", "path,class\nhuge.png,0\n")
        zf.writestr("huge.png", png_declaring(width, height))

    message = refused_quickly(archive(build))
    assert "'huge.png' (line 2) declares" in message and "the limit is 50,000,000 (image_max_pixels)" in message


def test_many_images_over_the_total_pixels():
    def build(zf: zipfile.ZipFile) -> None:
        zf.writestr("images.csv", "path,class\n" + "".join(f"{n}.png,0\n" for n in range(10)))
        for number in range(10):
            zf.writestr(f"{number}.png", small_png())

    message = refused_quickly(archive(build), ArchiveLimits(images_max_total_pixels=300))
    assert "the images up to line 6 have 320 pixels; the limit is 300 (images_max_total_pixels)" in message


def test_a_good_archive_passes_the_default_bounds():
    def build(zf: zipfile.ZipFile) -> None:
        zf.writestr("images.csv", "path,class\n" + "".join(f"{n}.png,{n % 2}\n" for n in range(20)))
        for number in range(20):
            zf.writestr(f"{number}.png", small_png())

    stats = check_dataset(io.BytesIO(archive(build)), task=Task.IMAGE_CLASSIFICATION)
    assert stats == {"images": 20, "classes": 2, "image_size": [8, 8]}
