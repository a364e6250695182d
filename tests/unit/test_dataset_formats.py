"""Dataset format checks: what a good file yields, and what the message says about a bad one."""
from __future__ import annotations

import io
import zipfile
from typing import Optional

import pytest
from PIL import Image

from chalicelib.dataset_formats import check_dataset
from chalicelib.entities import Task
from chalicelib.errors import PayloadTooLarge, Unprocessable
from chalicelib.image_archives import ArchiveLimits

CLASSIFICATION = Task.TABULAR_CLASSIFICATION
REGRESSION = Task.TABULAR_REGRESSION
IMAGES = Task.IMAGE_CLASSIFICATION


def check(data: bytes, task: Task, target_column: Optional[str] = None) -> dict:
    return check_dataset(io.BytesIO(data), task=task, target_column=target_column)


def refused(data: bytes, task: Task, target_column: Optional[str] = None) -> str:
    """The message of the Unprocessable error the check raises."""
    with pytest.raises(Unprocessable) as caught:
        check(data, task, target_column)
    return caught.value.message


# --- tabular ---------------------------------------------------------------------------------

def test_classification_csv_stats():
    stats = check(b"x1,x2,target\n1,2,cat\n3,4.5,dog\n-1e3,0,cat\n", CLASSIFICATION)
    assert stats == {"rows": 3, "features": ["x1", "x2"], "target_column": "target", "classes": 2}


def test_regression_csv_stats_have_no_classes():
    stats = check(b"a,b,target\n1,2,0.5\n3,4,-2\n", REGRESSION)
    assert stats == {"rows": 2, "features": ["a", "b"], "target_column": "target"}


def test_default_target_is_the_column_named_target_wherever_it_is():
    stats = check(b"target,x1,x2\nyes,1,2\nno,3,4\n", CLASSIFICATION)
    assert stats["target_column"] == "target"
    assert stats["features"] == ["x1", "x2"]


def test_without_a_target_column_the_last_column_is_the_target():
    stats = check(b"x1,x2,label\n1,2,a\n3,4,b\n", CLASSIFICATION)
    assert stats["target_column"] == "label"
    assert stats["features"] == ["x1", "x2"]


def test_named_target_column_wins_over_target_and_last_column():
    stats = check(b"y,x1,target\n1.5,2,3\n2.5,4,5\n", REGRESSION, target_column="y")
    assert stats["target_column"] == "y"
    assert stats["features"] == ["x1", "target"]


def test_byte_order_mark_blank_lines_and_crlf_are_accepted():
    stats = check(b"\xef\xbb\xbfx,target\r\n1,a\r\n\r\n2,b\r\n", CLASSIFICATION)
    assert stats["rows"] == 2 and stats["features"] == ["x"]


def test_check_leaves_the_file_open_for_the_caller():
    file = io.BytesIO(b"x,target\n1,a\n")
    check_dataset(file, task=CLASSIFICATION)
    assert not file.closed


def test_empty_file():
    assert "empty" in refused(b"", CLASSIFICATION)


def test_blank_header_is_empty():
    assert "empty" in refused(b" , \n1,2\n", CLASSIFICATION)


def test_header_only():
    assert "header but no data rows" in refused(b"x1,x2,target\n", CLASSIFICATION)


def test_one_column_header():
    assert "one column" in refused(b"target\na\nb\n", CLASSIFICATION)


def test_empty_column_name_gives_its_position():
    assert "empty column name (column 2)" in refused(b"x1,,target\n1,2,a\n", CLASSIFICATION)


def test_ragged_row_names_its_line():
    message = refused(b"x1,x2,target\n1,2,a\n3,b\n", CLASSIFICATION)
    assert message == "line 3 has 2 fields but the header has 3"


def test_non_numeric_feature_names_line_column_and_value():
    message = refused(b"x1,x2,target\n1,2,a\n3,abc,b\n", CLASSIFICATION)
    assert message == "line 3, column 'x2': 'abc' is not a number"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", ""])
def test_non_finite_or_empty_feature_is_not_a_number(value):
    assert f"{value!r} is not a number" in refused(f"x1,target\n{value},a\n".encode(), CLASSIFICATION)


def test_non_numeric_regression_target():
    message = refused(b"x1,target\n1,0.5\n2,high\n", REGRESSION)
    assert "line 3" in message and "'target' must be a number" in message and "'high'" in message


def test_non_numeric_classification_target_is_fine():
    assert check(b"x1,target\n1,high\n", CLASSIFICATION)["classes"] == 1


def test_empty_target_value():
    assert "line 2: the target 'target' is empty" in refused(b"x1,target\n1, \n", CLASSIFICATION)


def test_missing_named_target_column_lists_the_header():
    message = refused(b"x1,x2,target\n1,2,a\n", CLASSIFICATION, target_column="label")
    assert "target column 'label' is not in the CSV header" in message
    assert "x1, x2, target" in message


def test_non_utf8_file():
    message = refused(b"x1,target\n1,caf\xe9\n", CLASSIFICATION)
    assert "not UTF-8" in message


def test_duplicate_header_names_the_repeated_columns():
    message = refused(b"x1,x1,x2,x2,target\n1,2,3,4,a\n", CLASSIFICATION)
    assert message == "the CSV header repeats column names: x1, x2"


def test_csv_module_errors_become_unprocessable():
    huge_field = b"a" * 200_000  # above the csv module's field size limit
    message = refused(b"x1,target\n1," + huge_field + b"\n", CLASSIFICATION)
    assert "not a valid CSV" in message and "field larger than field limit" in message


# --- image classification --------------------------------------------------------------------

def png(size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def make_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def image_archive(index: str, images: Optional[dict[str, bytes]] = None) -> bytes:
    images = {"img/a.png": png(), "img/b.png": png(), "img/c.png": png()} if images is None else images
    return make_zip({"images.csv": index.encode(), **images})


GOOD_INDEX = "path,class\nimg/a.png,0\nimg/b.png,1\nimg/c.png,1\n"


def test_good_image_zip_stats():
    assert check(image_archive(GOOD_INDEX), IMAGES) == {"images": 3, "classes": 2, "image_size": [8, 8]}


def test_images_of_several_sizes_have_no_single_image_size():
    images = {"img/a.png": png((8, 8)), "img/b.png": png((4, 6)), "img/c.png": png()}
    stats = check(image_archive(GOOD_INDEX, images), IMAGES)
    assert stats == {"images": 3, "classes": 2}


def test_not_a_zip():
    assert "not a zip archive" in refused(b"x1,target\n1,a\n", IMAGES)


def test_missing_images_csv():
    message = refused(make_zip({"img/a.png": png()}), IMAGES)
    assert "no images.csv" in message


def test_images_csv_in_a_subfolder_does_not_count():
    assert "no images.csv" in refused(make_zip({"data/images.csv": GOOD_INDEX.encode()}), IMAGES)


def test_wrong_header():
    message = refused(image_archive("file,label\nimg/a.png,0\n"), IMAGES)
    assert "header 'path,class'" in message


def test_path_missing_from_archive():
    message = refused(image_archive("path,class\nimg/a.png,0\nimg/missing.png,1\n"), IMAGES)
    assert message == "images.csv line 3: 'img/missing.png' is not in the archive"


def test_corrupt_image_bytes():
    images = {"img/a.png": png(), "img/b.png": b"\x89PNG not really", "img/c.png": png()}
    message = refused(image_archive(GOOD_INDEX, images), IMAGES)
    assert "'img/b.png' (line 3) is not a readable image" in message


@pytest.mark.parametrize("label", ["cat", "1.5", "-1", ""])
def test_class_must_be_a_non_negative_integer(label):
    message = refused(image_archive(f"path,class\nimg/a.png,{label}\n"), IMAGES)
    assert f"images.csv line 2: class {label!r} is not a non-negative integer" in message


def test_row_with_wrong_field_count():
    message = refused(image_archive("path,class\nimg/a.png,0,extra\n"), IMAGES)
    assert "images.csv line 2 has 3 fields, expected 2" in message


def test_index_that_lists_no_images():
    assert "lists no images" in refused(image_archive("path,class\n"), IMAGES)


def test_non_utf8_index():
    message = refused(make_zip({"images.csv": b"path,class\nimg/\xe9.png,0\n"}), IMAGES)
    assert "images.csv is not UTF-8" in message


def test_target_column_is_refused_for_images():
    message = refused(image_archive(GOOD_INDEX), IMAGES, target_column="class")
    assert "target_column applies to tabular datasets only" in message


# Damaged or hostile archives: every failure is a 422 with a message, never an unhandled error.

def test_image_over_the_pixel_limit():
    limits = ArchiveLimits(image_max_pixels=16)  # 8x8 = 64 pixels
    with pytest.raises(PayloadTooLarge) as caught:
        check_dataset(io.BytesIO(image_archive(GOOD_INDEX)), task=IMAGES, archive_limits=limits)
    assert "'img/a.png' (line 2) declares 8 x 8 pixels; the limit is 16 (image_max_pixels)" in caught.value.message


def _flip_first(data: bytes, marker: bytes, offset: int, mask: int) -> bytes:
    position = data.index(marker) + offset
    return data[:position] + bytes([data[position] ^ mask]) + data[position + 1:]


def test_corrupt_compressed_entry():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("images.csv", GOOD_INDEX * 50)
    damaged = _flip_first(buffer.getvalue(), b"images.csv", len("images.csv") + 5, 0xFF)
    assert "the zip archive is damaged" in refused(damaged, IMAGES)


def test_encrypted_entry():
    # Set the "encrypted" flag of the first central directory entry (images.csv).
    data = _flip_first(image_archive(GOOD_INDEX), b"PK\x01\x02", 8, 0x01)
    message = refused(data, IMAGES)
    assert "the zip archive is damaged or uses an unsupported feature" in message
    assert "encrypted" in message


def test_index_with_a_huge_field():
    message = refused(make_zip({"images.csv": b"path,class\n" + b"a" * 200_000 + b",0\n"}), IMAGES)
    assert "images.csv is not a valid CSV" in message
