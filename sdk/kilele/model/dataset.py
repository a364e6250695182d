"""Loaders for each task's dataset format, for use inside models."""
from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from typing import Optional

import numpy as np

DEFAULT_TARGET = "target"


@dataclass
class TabularDataset:
    features: np.ndarray  # float64 [rows, features]
    target: np.ndarray  # float64 for regression, str labels for classification
    feature_names: list[str]
    target_column: str

    def __len__(self) -> int:
        return len(self.target)


def load_tabular(path: str, target_column: Optional[str] = None, numeric_target: bool = False) -> TabularDataset:
    """A CSV with a header: features are every column but the target (``target_column``, else
    ``target``, else the last column)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [row for row in csv.reader(f) if row]
    header = [h.strip() for h in rows[0]]
    target = target_column or (DEFAULT_TARGET if DEFAULT_TARGET in header else header[-1])
    index = header.index(target)
    body = rows[1:]
    features = np.array([[float(v) for i, v in enumerate(r) if i != index] for r in body], dtype=np.float64)
    labels = [r[index].strip() for r in body]
    target_values = np.array([float(v) for v in labels]) if numeric_target else np.array(labels)
    return TabularDataset(features, target_values, [h for h in header if h != target], target)


@dataclass
class ImageDataset:
    images: np.ndarray  # uint8 [n, height, width] (grayscale) or [n, height, width, channels]
    classes: np.ndarray  # int64 [n]

    def __len__(self) -> int:
        return len(self.classes)


def load_image_classification(path: str, mode: str = "L", size: Optional[tuple[int, int]] = None) -> ImageDataset:
    """A zip with ``images.csv`` (``path,class``) and the images, converted to ``mode``
    (Pillow's: "L" grayscale, "RGB") and resized to ``size`` (width, height) if given."""
    from PIL import Image

    images, classes = [], []
    with zipfile.ZipFile(path) as archive:
        with archive.open("images.csv") as index_file:
            index = list(csv.reader(io.TextIOWrapper(index_file, encoding="utf-8-sig")))
        for row in index[1:]:
            if not row:
                continue
            with archive.open(row[0].strip()) as image_file, Image.open(image_file) as image:
                image = image.convert(mode)
                if size:
                    image = image.resize(size)
                images.append(np.asarray(image, dtype=np.uint8))
            classes.append(int(row[1]))
    return ImageDataset(np.stack(images), np.array(classes, dtype=np.int64))
