"""A one-hidden-layer perceptron (scikit-learn ``MLPClassifier``) for TABULAR_CLASSIFICATION:
features standardized, then the network, with an ONNX export for fast serving.

Dataset: a CSV with a header; the class is the ``target`` column (else the last column), every
other column is a numeric feature.

Query: one list of feature values, in the training CSV's column order (without the target).
Prediction: ``{class_label: probability}`` with the labels as the CSV spells them (strings).

Policies (the platform switches them on to screen configurations cheaply):

- ``early_stop`` (``EARLY_STOP``): train for at most ``EARLY_STOP_ITERATIONS`` epochs instead
  of ``max_iter``;
- ``quick_eval`` (``QUICK_EVAL``): evaluate on every other row of the validation set (the same
  half every time).

Parameters are plain numpy arrays and numbers (no pickle).

ONNX export (``export_onnx()``): one input ``input``, float32 ``[None, n_features]`` (raw feature
values; the standardization is inside the graph), and two outputs, in this order:

1. ``label``: the predicted class label, a string tensor ``[None]``;
2. ``probabilities``: a float32 tensor ``[None, n_classes]``, columns in the order of the sorted
   class labels (the order of the keys of :meth:`predict`'s dicts).

Dependencies: ``scikit-learn``; ``skl2onnx`` only for the ONNX export (without it,
``export_onnx()`` returns None).
"""
import warnings

import numpy as np
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelBinarizer, StandardScaler

from kilele.model import BaseModel, CategoricalKnob, FloatKnob, IntegerKnob, PolicyKnob, load_tabular

EARLY_STOP_ITERATIONS = 20
# ai.onnx 17 / ai.onnx.ml 3: old enough for any recent onnxruntime.
ONNX_OPSET = {"": 17, "ai.onnx.ml": 3}
SCALER_STATE = ("mean_", "var_", "scale_", "n_samples_seen_", "n_features_in_")
CLASSIFIER_STATE = ("classes_", "n_layers_", "n_outputs_", "out_activation_", "n_iter_", "n_features_in_")


class SkMlp(BaseModel):
    @staticmethod
    def get_knob_config():
        return {
            "hidden_layer_units": IntegerKnob(8, 128, is_exp=True),
            "activation": CategoricalKnob(["relu", "tanh"]),
            "alpha": FloatKnob(1e-6, 1e-1, is_exp=True),  # L2 regularization
            "learning_rate_init": FloatKnob(1e-4, 1e-1, is_exp=True),
            "max_iter": IntegerKnob(50, 500),  # epochs
            "early_stop": PolicyKnob("EARLY_STOP"),
            "quick_eval": PolicyKnob("QUICK_EVAL"),
        }

    def __init__(self, **knobs):
        super().__init__(**knobs)
        max_iter = min(knobs["max_iter"], EARLY_STOP_ITERATIONS) if knobs["early_stop"] else knobs["max_iter"]
        classifier = MLPClassifier(
            hidden_layer_sizes=(knobs["hidden_layer_units"],),
            activation=knobs["activation"],
            alpha=knobs["alpha"],
            learning_rate_init=knobs["learning_rate_init"],
            max_iter=max_iter,
            random_state=0,
        )
        self._pipeline = Pipeline([("scaler", StandardScaler()), ("classifier", classifier)])
        self._quick_eval = knobs["quick_eval"]
        self._trained = False

    def train(self, dataset_path, **train_args):
        data = load_tabular(dataset_path)
        with warnings.catch_warnings():
            # Stopping before convergence is what max_iter and EARLY_STOP are for.
            warnings.simplefilter("ignore", ConvergenceWarning)
            self._pipeline.fit(data.features, data.target)
        self._trained = True

    def evaluate(self, dataset_path):
        """Accuracy (higher is better); with ``quick_eval``, on every other row only."""
        data = load_tabular(dataset_path)
        features, target = data.features, data.target
        if self._quick_eval:
            features, target = features[::2], target[::2]
        return float(np.mean(self._pipeline.predict(features) == target))

    def predict(self, queries):
        if len(queries) == 0:
            return []
        probabilities = self._pipeline.predict_proba(np.asarray(queries, dtype=np.float64))
        labels = [str(label) for label in self._pipeline.classes_]
        return [dict(zip(labels, row.tolist())) for row in probabilities]

    def dump_parameters(self):
        scaler = self._pipeline.named_steps["scaler"]
        classifier = self._pipeline.named_steps["classifier"]
        params = {"sklearn_version": sklearn.__version__, "layers": len(classifier.coefs_)}
        params.update({f"scaler.{name}": getattr(scaler, name) for name in SCALER_STATE})
        params.update({f"classifier.{name}": getattr(classifier, name) for name in CLASSIFIER_STATE})
        for i, (weights, biases) in enumerate(zip(classifier.coefs_, classifier.intercepts_)):
            params[f"classifier.coefs_.{i}"] = weights
            params[f"classifier.intercepts_.{i}"] = biases
        return params

    def load_parameters(self, params):
        if params.get("sklearn_version") != sklearn.__version__:
            saved = params.get("sklearn_version")
            warnings.warn(f"parameters saved by scikit-learn {saved}, loaded by {sklearn.__version__}")
        scaler = self._pipeline.named_steps["scaler"]
        classifier = self._pipeline.named_steps["classifier"]
        for name in SCALER_STATE:
            setattr(scaler, name, params[f"scaler.{name}"])
        for name in CLASSIFIER_STATE:
            setattr(classifier, name, params[f"classifier.{name}"])
        layers = range(int(params["layers"]))
        classifier.coefs_ = [params[f"classifier.coefs_.{i}"] for i in layers]
        classifier.intercepts_ = [params[f"classifier.intercepts_.{i}"] for i in layers]
        # predict() maps outputs back to labels through this; it is fully determined by the classes.
        classifier._label_binarizer = LabelBinarizer().fit(classifier.classes_)
        self._trained = True

    def onnx_classes(self):
        """Labels of the ONNX graph's probability columns (sorted, as predict() names them)."""
        return [str(label) for label in self._pipeline.classes_]

    def export_onnx(self):
        try:
            from skl2onnx import to_onnx
            from skl2onnx.common.data_types import FloatTensorType
        except ImportError:
            return None
        if not self._trained:
            raise RuntimeError("train() or load_parameters() before export_onnx()")
        n_features = int(self._pipeline.named_steps["scaler"].n_features_in_)
        onnx_model = to_onnx(
            self._pipeline,
            initial_types=[("input", FloatTensorType([None, n_features]))],
            # Probabilities as a plain float tensor, not a list of {label: probability} maps.
            options={id(self._pipeline.named_steps["classifier"]): {"zipmap": False}},
            target_opset=ONNX_OPSET,
        )
        return onnx_model.SerializeToString()
