"""Logistic regression for TABULAR_CLASSIFICATION: features standardized, then a (multinomial)
logistic regression, with an ONNX export for fast serving.

Dataset: a CSV with a header; the class is the ``target`` column (else the last column), every
other column is a numeric feature.

Query: one list of feature values, in the training CSV's column order (without the target).
Prediction: ``{class_label: probability}`` with the labels as the CSV spells them (strings).

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
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from kilele.model import BaseModel, CategoricalKnob, FloatKnob, IntegerKnob, load_tabular

# Every value of the ``penalty_solver`` knob is a penalty with a solver that supports it, so any
# combination the search proposes is valid. The penalty is given to scikit-learn as ``l1_ratio``
# (its ``penalty`` parameter is deprecated since 1.8).
PENALTY_SOLVERS = {
    "l2-lbfgs": (0.0, "lbfgs"),
    "l2-saga": (0.0, "saga"),
    "l1-saga": (1.0, "saga"),
    "elasticnet-saga": (0.5, "saga"),  # half L1, half L2
}
# ai.onnx 17 / ai.onnx.ml 3: old enough for any recent onnxruntime.
ONNX_OPSET = {"": 17, "ai.onnx.ml": 3}
SCALER_STATE = ("mean_", "var_", "scale_", "n_samples_seen_", "n_features_in_")
CLASSIFIER_STATE = ("classes_", "coef_", "intercept_", "n_iter_", "n_features_in_")


class SkLogisticRegression(BaseModel):
    @staticmethod
    def get_knob_config():
        return {
            "C": FloatKnob(1e-3, 1e2, is_exp=True),  # inverse regularization strength
            "max_iter": IntegerKnob(50, 1000, is_exp=True),
            "penalty_solver": CategoricalKnob(list(PENALTY_SOLVERS)),
        }

    def __init__(self, **knobs):
        super().__init__(**knobs)
        self._pipeline = self._build(**knobs)
        self._trained = False

    @staticmethod
    def _build(C, max_iter, penalty_solver):
        l1_ratio, solver = PENALTY_SOLVERS[penalty_solver]
        classifier = LogisticRegression(C=C, max_iter=max_iter, l1_ratio=l1_ratio, solver=solver, random_state=0)
        return Pipeline([("scaler", StandardScaler()), ("classifier", classifier)])

    def train(self, dataset_path, **train_args):
        data = load_tabular(dataset_path)
        with warnings.catch_warnings():
            # A short max_iter is a legitimate point of the search space, not an error.
            warnings.simplefilter("ignore", ConvergenceWarning)
            self._pipeline.fit(data.features, data.target)
        self._trained = True

    def evaluate(self, dataset_path):
        """Accuracy on the dataset (higher is better)."""
        data = load_tabular(dataset_path)
        return float(np.mean(self._pipeline.predict(data.features) == data.target))

    def predict(self, queries):
        if len(queries) == 0:
            return []
        probabilities = self._pipeline.predict_proba(np.asarray(queries, dtype=np.float64))
        labels = [str(label) for label in self._pipeline.classes_]
        return [dict(zip(labels, row.tolist())) for row in probabilities]

    def dump_parameters(self):
        params = {"sklearn_version": sklearn.__version__}
        for step, names in (("scaler", SCALER_STATE), ("classifier", CLASSIFIER_STATE)):
            estimator = self._pipeline.named_steps[step]
            params.update({f"{step}.{name}": getattr(estimator, name) for name in names})
        return params

    def load_parameters(self, params):
        if params.get("sklearn_version") != sklearn.__version__:
            saved = params.get("sklearn_version")
            warnings.warn(f"parameters saved by scikit-learn {saved}, loaded by {sklearn.__version__}")
        for step, names in (("scaler", SCALER_STATE), ("classifier", CLASSIFIER_STATE)):
            estimator = self._pipeline.named_steps[step]
            for name in names:
                setattr(estimator, name, params[f"{step}.{name}"])
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
