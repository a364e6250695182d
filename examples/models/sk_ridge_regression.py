"""Ridge regression for TABULAR_REGRESSION: features standardized, then an L2-regularized
linear model, with an ONNX export for fast serving.

Dataset: a CSV with a header; the numeric target is the ``target`` column (else the last
column), every other column is a numeric feature.

Score: ``evaluate()`` returns the **negative** mean squared error on the dataset, so that higher
is better as the platform expects (0 would be a perfect fit).

Query: one list of feature values, in the training CSV's column order (without the target).
Prediction: the predicted target value, a float.

Parameters are plain numpy arrays and numbers (no pickle).

ONNX export (``export_onnx()``): one input ``input``, float32 ``[None, n_features]`` (raw feature
values; the standardization is inside the graph), and one output ``variable``, float32
``[None, 1]``: the predicted target values.

Dependencies: ``scikit-learn``; ``skl2onnx`` only for the ONNX export (without it,
``export_onnx()`` returns None).
"""
import warnings

import numpy as np
import sklearn
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from kilele.model import BaseModel, CategoricalKnob, FloatKnob, load_tabular

# ai.onnx 17 / ai.onnx.ml 3: old enough for any recent onnxruntime.
ONNX_OPSET = {"": 17, "ai.onnx.ml": 3}
SCALER_STATE = ("mean_", "var_", "scale_", "n_samples_seen_", "n_features_in_")
REGRESSOR_STATE = ("coef_", "intercept_", "n_features_in_")


class SkRidgeRegression(BaseModel):
    @staticmethod
    def get_knob_config():
        return {
            "alpha": FloatKnob(1e-4, 1e3, is_exp=True),  # L2 regularization strength
            "fit_intercept": CategoricalKnob([True, False]),
        }

    def __init__(self, **knobs):
        super().__init__(**knobs)
        regressor = Ridge(alpha=knobs["alpha"], fit_intercept=knobs["fit_intercept"])
        self._pipeline = Pipeline([("scaler", StandardScaler()), ("regressor", regressor)])
        self._trained = False

    def train(self, dataset_path, **train_args):
        data = load_tabular(dataset_path, numeric_target=True)
        self._pipeline.fit(data.features, data.target)
        self._trained = True

    def evaluate(self, dataset_path):
        """Negative mean squared error (higher is better)."""
        data = load_tabular(dataset_path, numeric_target=True)
        errors = self._pipeline.predict(data.features) - data.target
        return -float(np.mean(errors**2))

    def predict(self, queries):
        if len(queries) == 0:
            return []
        return [float(y) for y in self._pipeline.predict(np.asarray(queries, dtype=np.float64))]

    def dump_parameters(self):
        params = {"sklearn_version": sklearn.__version__}
        for step, names in (("scaler", SCALER_STATE), ("regressor", REGRESSOR_STATE)):
            estimator = self._pipeline.named_steps[step]
            params.update({f"{step}.{name}": getattr(estimator, name) for name in names})
        return params

    def load_parameters(self, params):
        if params.get("sklearn_version") != sklearn.__version__:
            saved = params.get("sklearn_version")
            warnings.warn(f"parameters saved by scikit-learn {saved}, loaded by {sklearn.__version__}")
        for step, names in (("scaler", SCALER_STATE), ("regressor", REGRESSOR_STATE)):
            estimator = self._pipeline.named_steps[step]
            for name in names:
                setattr(estimator, name, params[f"{step}.{name}"])
        self._trained = True

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
            target_opset=ONNX_OPSET,
        )
        return onnx_model.SerializeToString()
