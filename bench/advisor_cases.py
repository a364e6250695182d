"""The models and data sets of the advisor bench (bench/advisor_quality.py).

Reported data sets (the bench's results; no advisor setting was ever chosen on them):
breast_cancer and wine (examples/datasets), digits (scikit-learn's bundled 8x8 digits as 64
pixel features) and diabetes (examples/datasets, the disease-progression target binarised at the
training set's median: a binary tabular task). Development data sets (``--dev``: where advisor
settings may be compared): iris (examples/datasets), a synthetic classification set, and four
more from ``sklearn.datasets.make_*`` (moons, hastie, quantiles, imbalanced). Every set
is written as ``<name>_train.csv`` / ``<name>_val.csv`` (header, ``target`` column) into a work
directory, so the models read them with the kit's ``load_tabular`` as the platform's would.

The development sets beyond iris are drawn with fixed seeds, so advisor settings are compared on
several kinds of problem (curved and noisy boundaries, nested classes, an imbalanced binary task,
many uninformative features) without touching the reported ones.
"""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
from sklearn import datasets
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from kilele.model import BaseModel, CategoricalKnob, FixedKnob, FloatKnob, IntegerKnob, load_model_class, load_tabular

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples/datasets"
REPORTED = ("breast_cancer", "wine", "digits", "diabetes")
DEVELOPMENT = ("iris", "synthetic", "moons", "hastie", "quantiles", "imbalanced")
SPLIT_SEED = 0  # the split of examples/make_datasets.py


class _Sklearn(BaseModel):
    """Shared train / evaluate (accuracy) / predict for the bench's scikit-learn models."""

    _clf = None

    def train(self, dataset_path, **train_args):
        data = load_tabular(dataset_path)
        self._clf.fit(data.features, data.target)

    def evaluate(self, dataset_path):
        data = load_tabular(dataset_path)
        return float(np.mean(self._clf.predict(data.features) == data.target))

    def predict(self, queries):
        return self._clf.predict(np.asarray(queries, dtype=np.float64)).tolist()

    def dump_parameters(self):
        return {}

    def load_parameters(self, params):
        pass


class BenchMLP(_Sklearn):
    """A one-hidden-layer MLP on standardised features, trained briefly (max_iter 25), so the
    learning rate and regularisation matter."""

    @staticmethod
    def get_knob_config():
        return {
            "hidden_units": IntegerKnob(2, 256, is_exp=True),
            "alpha": FloatKnob(1e-6, 1.0, is_exp=True),
            "learning_rate_init": FloatKnob(1e-5, 1e-1, is_exp=True),
            "activation": CategoricalKnob(["relu", "tanh", "logistic"]),
            "max_iter": FixedKnob(25),
        }

    def __init__(self, **knobs):
        super().__init__(**knobs)
        self._clf = make_pipeline(
            StandardScaler(),
            MLPClassifier(
                hidden_layer_sizes=(knobs["hidden_units"],), alpha=knobs["alpha"],
                learning_rate_init=knobs["learning_rate_init"], activation=knobs["activation"],
                max_iter=knobs["max_iter"], random_state=0,
            ),
        )


class BenchSVM(_Sklearn):
    """An SVM on standardised features: C and the RBF width over wide log ranges (where most of
    the space is poor), and class weighting."""

    @staticmethod
    def get_knob_config():
        return {
            "C": FloatKnob(1e-3, 1e3, is_exp=True),
            "gamma": FloatKnob(1e-5, 10.0, is_exp=True),
            "class_weight": CategoricalKnob(["none", "balanced"]),
        }

    def __init__(self, **knobs):
        super().__init__(**knobs)
        weight = None if knobs["class_weight"] == "none" else knobs["class_weight"]
        self._clf = make_pipeline(StandardScaler(), SVC(C=knobs["C"], gamma=knobs["gamma"], class_weight=weight))


def models() -> dict[str, type[BaseModel]]:
    """The bench's models by display name: the sample decision tree and two defined here."""
    tree = load_model_class(str(REPO / "examples/models/sk_decision_tree.py"), "SkDecisionTree")
    return {"decision tree (sample)": tree, "MLP (bench)": BenchMLP, "SVM (bench)": BenchSVM}


def _write(path: Path, features: np.ndarray, target: np.ndarray) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([f"f{i}" for i in range(features.shape[1])] + ["target"])
        for row, label in zip(features, target):
            writer.writerow([f"{v:.6g}" for v in row] + [label])


def _split(workdir: Path, name: str, x: np.ndarray, y: np.ndarray) -> None:
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.3, random_state=SPLIT_SEED, stratify=y)
    _write(workdir / f"{name}_train.csv", x_train, y_train)
    _write(workdir / f"{name}_val.csv", x_val, y_val)


def prepare(names: tuple[str, ...], workdir: Path) -> dict[str, tuple[str, str, int]]:
    """Write the data sets into ``workdir``; ``{name: (train csv, val csv, validation rows)}``."""
    out = {}
    for name in names:
        if name in ("breast_cancer", "wine", "iris"):
            for split in ("train", "val"):
                shutil.copy(EXAMPLES / f"{name}_{split}.csv", workdir / f"{name}_{split}.csv")
        elif name == "digits":
            bunch = datasets.load_digits()
            _split(workdir, name, bunch.data, bunch.target)
        elif name == "diabetes":  # regression target -> "progression above the training median"
            train, val = (load_tabular(str(EXAMPLES / f"diabetes_{s}.csv"), numeric_target=True) for s in ("train", "val"))
            median = float(np.median(train.target))
            _write(workdir / "diabetes_train.csv", train.features, (train.target > median).astype(int))
            _write(workdir / "diabetes_val.csv", val.features, (val.target > median).astype(int))
        elif name == "synthetic":  # development only: 20 features, 8 informative, 3 classes
            x, y = datasets.make_classification(
                n_samples=600, n_features=20, n_informative=8, n_redundant=4, n_classes=3, flip_y=0.05,
                random_state=12345,
            )
            _split(workdir, name, x, y)
        elif name == "moons":  # development only: two interleaved half-moons among 8 noise features
            x, y = datasets.make_moons(n_samples=500, noise=0.3, random_state=2024)
            noise = np.random.default_rng(2024).normal(size=(len(x), 8))
            _split(workdir, name, np.hstack([x, noise]), y)
        elif name == "hastie":  # development only: 10 features, label by a sphere's radius (binary)
            x, y = datasets.make_hastie_10_2(n_samples=600, random_state=7)
            _split(workdir, name, x, (y > 0).astype(int))
        elif name == "quantiles":  # development only: 3 classes as nested Gaussian shells, 6 features
            x, y = datasets.make_gaussian_quantiles(n_samples=600, n_features=6, n_classes=3, random_state=11)
            _split(workdir, name, x, y)
        elif name == "imbalanced":  # development only: 30 features, 6 informative, classes 75:25
            x, y = datasets.make_classification(
                n_samples=700, n_features=30, n_informative=6, n_redundant=2, n_classes=2, weights=[0.75, 0.25],
                class_sep=1.2, flip_y=0.02, random_state=99,
            )
            _split(workdir, name, x, y)
        else:
            raise ValueError(f"unknown bench data set {name!r}")
        val_rows = sum(1 for _ in open(workdir / f"{name}_val.csv")) - 1
        out[name] = (str(workdir / f"{name}_train.csv"), str(workdir / f"{name}_val.csv"), val_rows)
    return out
