"""Bundles for the inference server tests: sample models trained once per session."""
from __future__ import annotations

import pytest

from inference_harness import LOGREG, RIDGE, TREE, train, write_bundle


@pytest.fixture(scope="session")
def iris_tree():
    return train(TREE, "iris")


@pytest.fixture(scope="session")
def iris_logreg():
    return train(LOGREG, "iris")


@pytest.fixture(scope="session")
def diabetes_ridge():
    return train(RIDGE, "diabetes")


@pytest.fixture(scope="session")
def iris_bundle(tmp_path_factory, iris_tree, iris_logreg):
    """TABULAR_CLASSIFICATION: a decision tree (served by predict) and a logistic regression (ONNX)."""
    return write_bundle(tmp_path_factory.mktemp("iris") / "bundle", "TABULAR_CLASSIFICATION",
                        [iris_tree, iris_logreg], app="iris_app")


@pytest.fixture(scope="session")
def tree_bundle(tmp_path_factory, iris_tree):
    """A decision tree alone: every query goes through the model's own predict()."""
    return write_bundle(tmp_path_factory.mktemp("tree") / "bundle", "TABULAR_CLASSIFICATION", [iris_tree])


@pytest.fixture(scope="session")
def ridge_bundle(tmp_path_factory, diabetes_ridge):
    return write_bundle(tmp_path_factory.mktemp("ridge") / "bundle", "TABULAR_REGRESSION", [diabetes_ridge],
                        app="diabetes_app")
