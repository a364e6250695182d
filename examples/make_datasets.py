"""Writes the sample datasets in examples/datasets/ from scikit-learn's bundled data (offline).

Run: python examples/make_datasets.py   (needs scikit-learn and Pillow; the files are committed)
"""
from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn import datasets
from sklearn.model_selection import train_test_split

OUT = Path(__file__).parent / "datasets"
SEED = 0


def write_csv(path: Path, features: np.ndarray, target: np.ndarray, names: list[str]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*names, "target"])
        for row, label in zip(features, target):
            writer.writerow([f"{v:.6g}" for v in row] + [label])


def tabular(name: str, bunch, stratify: bool) -> None:
    x_train, x_val, y_train, y_val = train_test_split(
        bunch.data, bunch.target, test_size=0.3, random_state=SEED, stratify=bunch.target if stratify else None
    )
    names = [str(n).replace(" ", "_").replace("(", "").replace(")", "") for n in bunch.feature_names]
    write_csv(OUT / f"{name}_train.csv", x_train, y_train, names)
    write_csv(OUT / f"{name}_val.csv", x_val, y_val, names)


def images(name: str, bunch) -> None:
    x_train, x_val, y_train, y_val = train_test_split(
        bunch.images, bunch.target, test_size=0.3, random_state=SEED, stratify=bunch.target
    )
    for split, xs, ys in (("train", x_train, y_train), ("val", x_val, y_val)):
        with zipfile.ZipFile(OUT / f"{name}_{split}.zip", "w", zipfile.ZIP_DEFLATED) as archive:
            index = io.StringIO()
            index.write("path,class\n")
            for i, (image, label) in enumerate(zip(xs, ys)):
                pixels = (image * (255.0 / 16.0)).round().astype(np.uint8)  # digits are 0..16
                buffer = io.BytesIO()
                Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
                path = f"images/{i:05d}.png"
                archive.writestr(path, buffer.getvalue())
                index.write(f"{path},{label}\n")
            archive.writestr("images.csv", index.getvalue())


def main() -> None:
    OUT.mkdir(exist_ok=True)
    tabular("iris", datasets.load_iris(), stratify=True)
    tabular("wine", datasets.load_wine(), stratify=True)
    tabular("breast_cancer", datasets.load_breast_cancer(), stratify=True)
    tabular("diabetes", datasets.load_diabetes(), stratify=False)
    images("digits", datasets.load_digits())


if __name__ == "__main__":
    main()
