"""A scikit-learn decision tree for TABULAR_CLASSIFICATION, with a real knob space."""
import base64
import pickle

import numpy as np
from sklearn.tree import DecisionTreeClassifier

from kilele.model import BaseModel, CategoricalKnob, FloatKnob, IntegerKnob, InvalidQuery, load_tabular


class SkDecisionTree(BaseModel):
    @staticmethod
    def get_knob_config():
        return {
            "max_depth": IntegerKnob(1, 32, is_exp=True),
            "min_samples_leaf": IntegerKnob(1, 20),
            "criterion": CategoricalKnob(["gini", "entropy"]),
            "ccp_alpha": FloatKnob(1e-5, 1e-1, is_exp=True),
        }

    def __init__(self, **knobs):
        super().__init__(**knobs)
        self._clf = DecisionTreeClassifier(random_state=0, **knobs)

    def train(self, dataset_path, **train_args):
        data = load_tabular(dataset_path)
        self._clf.fit(data.features, data.target)

    def evaluate(self, dataset_path):
        data = load_tabular(dataset_path)
        return float(np.mean(self._clf.predict(data.features) == data.target))

    def predict(self, queries):
        try:
            features = np.asarray(queries, dtype=np.float64)
        except (TypeError, ValueError) as e:  # strings, ragged lists: the caller's to fix (400)
            raise InvalidQuery(f"queries must be lists of numbers: {e}") from e
        expected = self._clf.n_features_in_
        if features.ndim != 2 or features.shape[1] != expected:
            width = features.shape[-1] if features.ndim else 0
            raise InvalidQuery(f"a query has {width} features; the model was trained on {expected}")
        probabilities = self._clf.predict_proba(features)
        return [dict(zip(self._clf.classes_.tolist(), p.tolist())) for p in probabilities]

    def dump_parameters(self):
        return {"model": base64.b64encode(pickle.dumps(self._clf)).decode()}

    def load_parameters(self, params):
        self._clf = pickle.loads(base64.b64decode(params["model"]))
