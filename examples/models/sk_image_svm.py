"""A support vector machine for IMAGE_CLASSIFICATION of small grayscale images (such as 8x8
digits): pixels scaled to [0, 1] and flattened, a scikit-learn ``SVC``, and sigmoid (Platt)
calibration of its scores into class probabilities, with an ONNX export for fast serving.

Dataset: the IMAGE_CLASSIFICATION zip (``images.csv`` with ``path,class`` and the images). Images
are converted to grayscale; they must all have the same size, which becomes the model's input
size (the SVM works on raw pixels, so keep images small: tens by tens of pixels at most).

Query: one image as a 2-D list, ``height`` rows of ``width`` grayscale pixel values from 0
(black) to 255 (white), row by row: what ``numpy.asarray(PIL.Image.open(f).convert("L")).tolist()``
gives, with the training images' height and width.

Prediction: ``{class: probability}`` for every class, with the class numbers as **strings**
(``{"0": 0.01, "1": 0.97, ...}``), as they arrive in JSON anyway and like the tabular samples.

Probabilities: ``CalibratedClassifierCV(SVC(...), ensemble=False)``, what scikit-learn recommends
since ``SVC(probability=True)`` was deprecated in 1.9. Parameters are plain numpy arrays and
numbers (no pickle).

ONNX export (``export_onnx()``): one input ``input``, float32 ``[None, height * width]``: the raw
0..255 pixel values flattened row by row (the scaling to [0, 1] is inside the graph), and two
outputs, in this order:

1. ``label``: the predicted class, an int64 tensor ``[None]``;
2. ``probabilities``: a float32 tensor ``[None, n_classes]``, columns in increasing class order
   (the order of the keys of :meth:`predict`'s dicts).

Dependencies: ``scikit-learn`` and ``Pillow``; ``skl2onnx`` only for the ONNX export (without it,
``export_onnx()`` returns None).
"""
import json
import warnings

import numpy as np
import sklearn
from sklearn.calibration import CalibratedClassifierCV, _CalibratedClassifier, _SigmoidCalibration
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.svm import SVC

from kilele.model import BaseModel, CategoricalKnob, FloatKnob, load_image_classification

CALIBRATION_FOLDS = 3
# ai.onnx 17 / ai.onnx.ml 3: old enough for any recent onnxruntime.
ONNX_OPSET = {"": 17, "ai.onnx.ml": 3}


class SkImageSvm(BaseModel):
    @staticmethod
    def get_knob_config():
        return {
            "C": FloatKnob(1e-2, 1e3, is_exp=True),  # inverse regularization strength
            "gamma": FloatKnob(1e-4, 1.0, is_exp=True),  # kernel coefficient (rbf, poly, sigmoid)
            "kernel": CategoricalKnob(["rbf", "poly", "sigmoid", "linear"]),
        }

    def __init__(self, **knobs):
        super().__init__(**knobs)
        self._svc_args = {"C": knobs["C"], "gamma": knobs["gamma"], "kernel": knobs["kernel"]}
        self._model = None
        self._image_shape = None  # (height, width) of the training images

    def _new_svc(self):
        return SVC(**self._svc_args, random_state=0)

    def train(self, dataset_path, **train_args):
        data = load_image_classification(dataset_path, mode="L")
        self._image_shape = tuple(int(n) for n in data.images.shape[1:3])
        model = CalibratedClassifierCV(self._new_svc(), method="sigmoid", cv=CALIBRATION_FOLDS, ensemble=False)
        model.fit(self._scaler().transform(self._flatten(data.images)), data.classes)
        self._model = model

    def evaluate(self, dataset_path):
        """Accuracy (higher is better)."""
        data = load_image_classification(dataset_path, mode="L")
        probabilities = self._probabilities(self._check_shape(np.asarray(data.images, dtype=np.float64)))
        return float(np.mean(self._model.classes_[probabilities.argmax(axis=1)] == data.classes))

    def predict(self, queries):
        if len(queries) == 0:
            return []
        try:
            images = np.asarray(queries, dtype=np.float64)
        except ValueError as e:  # ragged lists
            raise ValueError(f"{self._query_format()}: {e}") from e
        probabilities = self._probabilities(self._check_shape(images))
        labels = [str(int(c)) for c in self._model.classes_]
        return [dict(zip(labels, row.tolist())) for row in probabilities]

    def _probabilities(self, images):
        return self._model.predict_proba(self._scaler().transform(self._flatten(images)))

    def _scaler(self):
        """Maps pixel values 0..255 to 0..1 (a MinMaxScaler, so the ONNX graph includes it)."""
        pixels = self._image_shape[0] * self._image_shape[1]
        return MinMaxScaler().fit(np.array([[0.0] * pixels, [255.0] * pixels]))

    @staticmethod
    def _flatten(images):
        return images.reshape(len(images), -1).astype(np.float64)

    def _query_format(self):
        height, width = self._image_shape
        return f"each image must be {height}x{width} grayscale pixels: {height} lists of {width} values 0..255"

    def _check_shape(self, images):
        if images.ndim != 3 or images.shape[1:] != self._image_shape:
            raise ValueError(f"{self._query_format()} (got shape {list(images.shape[1:])})")
        if not np.all(np.isfinite(images)):
            raise ValueError(f"{self._query_format()} (got a value that is not a finite number)")
        return images

    def dump_parameters(self):
        [calibrated] = self._model.calibrated_classifiers_
        params = {
            "sklearn_version": sklearn.__version__,
            "image_height": self._image_shape[0],
            "image_width": self._image_shape[1],
            "classes": self._model.classes_,
            "calibrators": len(calibrated.calibrators),
        }
        for i, calibrator in enumerate(calibrated.calibrators):
            params[f"calibrator.{i}.a"] = float(calibrator.a_)
            params[f"calibrator.{i}.b"] = float(calibrator.b_)
        # Everything SVC.fit() set: its attributes but the constructor's parameters. All are numpy
        # arrays or numbers, but for one or more tuples, stored as arrays and listed here.
        svc = calibrated.estimator
        constructor = svc.get_params(deep=False)
        tuples = []
        for name, value in vars(svc).items():
            if name in constructor:
                continue
            if isinstance(value, tuple):
                value = np.asarray(value)
                tuples.append(name)
            params[f"svc.{name}"] = value
        params["svc_tuples"] = json.dumps(tuples)
        return params

    def load_parameters(self, params):
        if params.get("sklearn_version") != sklearn.__version__:
            saved = params.get("sklearn_version")
            warnings.warn(f"parameters saved by scikit-learn {saved}, loaded by {sklearn.__version__}")
        tuples = json.loads(params["svc_tuples"])
        svc = self._new_svc()
        for key, value in params.items():
            if key.startswith("svc."):
                name = key[len("svc."):]
                setattr(svc, name, tuple(value.tolist()) if name in tuples else value)
        calibrators = []
        for i in range(int(params["calibrators"])):
            calibrator = _SigmoidCalibration()
            calibrator.a_, calibrator.b_ = params[f"calibrator.{i}.a"], params[f"calibrator.{i}.b"]
            calibrators.append(calibrator)
        classes = params["classes"]
        model = CalibratedClassifierCV(self._new_svc(), method="sigmoid", cv=CALIBRATION_FOLDS, ensemble=False)
        model.calibrated_classifiers_ = [_CalibratedClassifier(svc, calibrators, classes=classes, method="sigmoid")]
        model.classes_ = classes
        model.n_features_in_ = svc.n_features_in_
        self._image_shape = (int(params["image_height"]), int(params["image_width"]))
        self._model = model

    def onnx_classes(self):
        """Labels of the ONNX graph's probability columns (sorted, as predict() names them)."""
        return [str(int(label)) for label in self._model.classes_]

    def export_onnx(self):
        try:
            from skl2onnx import to_onnx
            from skl2onnx.common.data_types import FloatTensorType
        except ImportError:
            return None
        if self._model is None:
            raise RuntimeError("train() or load_parameters() before export_onnx()")
        pipeline = Pipeline([("pixels", self._scaler()), ("svm", self._model)])
        with warnings.catch_warnings():
            # skl2onnx 1.20 reads SVC.probA_/probB_ (deprecated in scikit-learn 1.9); harmless here.
            warnings.filterwarnings("ignore", message=r"Attribute `prob[AB]_` was deprecated", category=FutureWarning)
            onnx_model = to_onnx(
                pipeline,
                initial_types=[("input", FloatTensorType([None, self._image_shape[0] * self._image_shape[1]]))],
                # Probabilities as a plain float tensor, not a list of {class: probability} maps.
                options={id(self._model): {"zipmap": False}},
                target_opset=ONNX_OPSET,
            )
        return onnx_model.SerializeToString()
