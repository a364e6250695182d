"""The sample models in examples/models/ pass the model contract on the sample datasets, score
sensibly, and their ONNX exports give the same answers as predict()."""
from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

pytest.importorskip("sklearn")

from kilele.model import (  # noqa: E402
    BaseModel,
    deserialize_params,
    load_image_classification,
    load_model_class,
    load_tabular,
    serialize_params,
    test_model_class,
)
from kilele.model.dev import sample_knob  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
MODELS = ROOT / "examples" / "models"
DATASETS = ROOT / "examples" / "datasets"
QUERIES = 5


def tabular_features(dataset: str) -> np.ndarray:
    return load_tabular(str(DATASETS / f"{dataset}_val.csv")).features


def digit_images(dataset: str) -> np.ndarray:
    return load_image_classification(str(DATASETS / f"{dataset}_val.zip")).images


@dataclass(frozen=True)
class Sample:
    file: str
    cls: str
    task: str
    dataset: str
    knobs: dict[str, Any]
    inputs: Callable[[str], np.ndarray]  # the validation inputs, as predict() takes them (as arrays)
    ext: str = "csv"

    @property
    def id(self) -> str:
        return f"{self.cls}-{self.dataset}"

    def path(self, split: str) -> str:
        return str(DATASETS / f"{self.dataset}_{split}.{self.ext}")

    def run_contract(self, knobs: dict[str, Any]) -> BaseModel:
        queries = self.inputs(self.dataset)[:QUERIES].tolist()
        return test_model_class(
            str(MODELS / self.file), self.cls, self.task, None, self.path("train"), self.path("val"),
            queries=queries, knobs=knobs, log=lambda line: None,
        )


LOGISTIC = dict(file="sk_logistic_regression.py", cls="SkLogisticRegression", task="TABULAR_CLASSIFICATION")
MLP = dict(file="sk_mlp.py", cls="SkMlp", task="TABULAR_CLASSIFICATION")
LOGISTIC_KNOBS = {"C": 1.0, "max_iter": 200, "penalty_solver": "l2-lbfgs"}
MLP_KNOBS = {
    "hidden_layer_units": 32, "activation": "relu", "alpha": 1e-4, "learning_rate_init": 1e-2, "max_iter": 300,
    "early_stop": False, "quick_eval": False,
}
TABULAR_DATASETS = ("iris", "wine", "breast_cancer")
CLASSIFIERS = [
    *(Sample(**LOGISTIC, dataset=d, knobs=LOGISTIC_KNOBS, inputs=tabular_features) for d in TABULAR_DATASETS),
    *(Sample(**MLP, dataset=d, knobs=MLP_KNOBS, inputs=tabular_features) for d in TABULAR_DATASETS),
]
RIDGE = Sample(
    "sk_ridge_regression.py", "SkRidgeRegression", "TABULAR_REGRESSION", "diabetes",
    {"alpha": 1.0, "fit_intercept": True}, tabular_features,
)
IMAGE_SVM = Sample(
    "sk_image_svm.py", "SkImageSvm", "IMAGE_CLASSIFICATION", "digits",
    {"C": 10.0, "gamma": 0.02, "kernel": "rbf"}, digit_images, ext="zip",
)
ALL = [*CLASSIFIERS, RIDGE, IMAGE_SVM]
# One sample per model file.
ONE_PER_MODEL = [CLASSIFIERS[0], CLASSIFIERS[3], RIDGE, IMAGE_SVM]

_trained: dict[str, BaseModel] = {}


def trained(sample: Sample) -> BaseModel:
    """The sample's model after test_model_class with its fixed knobs (trained once per session)."""
    if sample.id not in _trained:
        _trained[sample.id] = sample.run_contract(sample.knobs)
    return _trained[sample.id]


def restored(sample: Sample) -> BaseModel:
    """A fresh instance loaded with the trained model's parameters, through the platform's format."""
    model = trained(sample)
    fresh = type(model)(**sample.knobs)
    fresh.load_parameters(deserialize_params(serialize_params(model.dump_parameters())))
    return fresh


@pytest.mark.parametrize("sample", [s for s in ALL if s is not RIDGE], ids=lambda s: s.id)
def test_classifier_passes_the_contract_with_a_good_accuracy(sample):
    model = trained(sample)
    accuracy = model.evaluate(sample.path("val"))
    assert accuracy > (0.85 if sample is IMAGE_SVM else 0.8)


def test_ridge_passes_the_contract_and_beats_predicting_the_mean():
    model = trained(RIDGE)
    score = model.evaluate(RIDGE.path("val"))
    train = load_tabular(RIDGE.path("train"), numeric_target=True)
    val = load_tabular(RIDGE.path("val"), numeric_target=True)
    mean_mse = float(np.mean((val.target - train.target.mean()) ** 2))
    assert score < 0  # negative MSE
    assert score > -mean_mse
    predictions = model.predict(val.features[:QUERIES].tolist())
    assert all(type(p) is float for p in predictions)
    assert -score == pytest.approx(np.mean((np.array(model.predict(val.features.tolist())) - val.target) ** 2))


@pytest.mark.parametrize("sample", CLASSIFIERS, ids=lambda s: s.id)
def test_tabular_predictions_are_probabilities_keyed_by_the_csv_labels(sample):
    model = trained(sample)
    labels = sorted(set(load_tabular(sample.path("train")).target.tolist()))
    for prediction in model.predict(tabular_features(sample.dataset)[:QUERIES].tolist()):
        assert list(prediction) == labels
        assert all(isinstance(p, float) and 0 <= p <= 1 for p in prediction.values())
        assert sum(prediction.values()) == pytest.approx(1)


def test_image_predictions_are_probabilities_keyed_by_class_strings():
    model = trained(IMAGE_SVM)
    images = digit_images("digits")
    predictions = model.predict(images[:QUERIES].tolist())
    for prediction in predictions:
        assert list(prediction) == [str(c) for c in range(10)]
        assert sum(prediction.values()) == pytest.approx(1)
    expected = load_image_classification(IMAGE_SVM.path("val")).classes[:QUERIES]
    assert [int(max(p, key=p.get)) for p in predictions] == expected.tolist()


def test_image_queries_of_the_wrong_shape_are_refused_clearly():
    model = trained(IMAGE_SVM)
    with pytest.raises(ValueError, match="must be 8x8"):
        model.predict([[[0] * 8] * 7])  # 7 rows
    with pytest.raises(ValueError, match="must be 8x8"):
        model.predict([[0] * 64])  # flattened
    with pytest.raises(ValueError, match="must be 8x8"):
        model.predict([[[0] * 8] * 7 + [[0] * 3]])  # ragged


@pytest.mark.parametrize("sample", ONE_PER_MODEL, ids=lambda s: s.id)
def test_no_queries_no_predictions(sample):
    assert trained(sample).predict([]) == []


def test_mlp_early_stop_trains_briefly_and_quick_eval_scores_half_the_rows():
    sample = CLASSIFIERS[5]  # SkMlp on breast_cancer
    full = trained(sample)
    quick = sample.run_contract({**sample.knobs, "early_stop": True, "quick_eval": True})
    assert int(full.dump_parameters()["classifier.n_iter_"]) > 20
    assert int(quick.dump_parameters()["classifier.n_iter_"]) <= 20

    val = load_tabular(sample.path("val"))
    predicted = [max(p, key=p.get) for p in quick.predict(val.features[::2].tolist())]
    assert quick.evaluate(sample.path("val")) == pytest.approx(np.mean(np.array(predicted) == val.target[::2]))


@pytest.mark.parametrize("sample", ONE_PER_MODEL, ids=lambda s: s.id)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_knobs_from_the_config_pass_the_contract(sample, seed):
    config = load_model_class(str(MODELS / sample.file), sample.cls).get_knob_config()
    rng = random.Random(seed)
    knobs = {name: sample_knob(knob, rng) for name, knob in config.items()}
    model = sample.run_contract(knobs)
    assert isinstance(model.evaluate(sample.path("val")), float)


def onnx_outputs(onnx_bytes: bytes, inputs: np.ndarray) -> list[np.ndarray]:
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    flat = inputs.reshape(len(inputs), -1).astype(np.float32)
    return session.run(None, {"input": flat})


@pytest.mark.parametrize("sample", [s for s in ALL if s is not RIDGE], ids=lambda s: s.id)
@pytest.mark.parametrize("source", ["trained", "restored"])
def test_onnx_probabilities_match_predict(sample, source):
    pytest.importorskip("skl2onnx")
    model = trained(sample) if source == "trained" else restored(sample)
    inputs = sample.inputs(sample.dataset)
    predictions = model.predict(inputs.tolist())
    expected = np.array([list(p.values()) for p in predictions])
    labels, probabilities = onnx_outputs(model.export_onnx(), inputs)
    assert probabilities.dtype == np.float32 and probabilities.shape == expected.shape
    np.testing.assert_allclose(probabilities, expected, atol=1e-4, rtol=0)
    assert [str(label) for label in labels] == [max(p, key=p.get) for p in predictions]


@pytest.mark.parametrize("source", ["trained", "restored"])
def test_onnx_regression_matches_predict(source):
    pytest.importorskip("skl2onnx")
    model = trained(RIDGE) if source == "trained" else restored(RIDGE)
    inputs = tabular_features(RIDGE.dataset)
    [values] = onnx_outputs(model.export_onnx(), inputs)
    assert values.shape == (len(inputs), 1)
    np.testing.assert_allclose(values[:, 0], model.predict(inputs.tolist()), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("sample", ONE_PER_MODEL, ids=lambda s: s.id)
def test_export_onnx_is_none_without_skl2onnx(sample, monkeypatch):
    model = trained(sample)
    for name in [m for m in sys.modules if m == "skl2onnx" or m.startswith("skl2onnx.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "skl2onnx", None)  # makes `import skl2onnx` raise ImportError
    assert model.export_onnx() is None
