"""Models for the model-in-the-loop stress tests: scikit-learn models trained on ``make_frame``
reference data (the clean setups), wrapped in RIME's ``predict_df`` convention the way a careful
model file is (numbers coerced, categories as strings, so a corrupted value is a value the model
has not seen, not a crash), and the faulty models the tests exist for."""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

NUMERIC = ["num_a", "num_b", "num_c", "count"]
CATEGORICAL = ["cat_a", "cat_b", "flag"]


def _prepared(df: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    out = pd.DataFrame({c: pd.to_numeric(df[c], errors="coerce").astype(float) for c in numeric})
    for c in categorical:
        out[c] = df[c].astype(object).where(df[c].notna(), None).map(lambda v: str(v), na_action="ignore")
    return out


def train(ref: pd.DataFrame, task: str = "binary", numeric: Optional[list[str]] = None,
          categorical: Optional[list[str]] = None) -> Callable[[pd.DataFrame], np.ndarray]:
    """A scikit-learn pipeline trained on ``ref``; returns its ``predict_df``."""
    numeric = NUMERIC if numeric is None else numeric
    categorical = CATEGORICAL if categorical is None else categorical
    steps = [("num", make_pipeline(SimpleImputer(), StandardScaler()), numeric)]
    if categorical:
        steps.append(("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                           OneHotEncoder(handle_unknown="ignore")), categorical))
    estimator = Ridge() if task == "regression" else LogisticRegression(max_iter=2000)
    model = make_pipeline(ColumnTransformer(steps), estimator)
    model.fit(_prepared(ref, numeric, categorical), ref["y"])

    def predict_df(df: pd.DataFrame) -> np.ndarray:
        x = _prepared(df, numeric, categorical)
        if task == "regression":
            return model.predict(x)
        proba = model.predict_proba(x)
        return proba[:, 1] if task == "binary" else proba
    return predict_df


def diffuse_frame(n: int, seed: int, task: str = "binary", features: int = 12, weight: float = 0.2) -> pd.DataFrame:
    """Many numeric features with a small effect each: a model that no single feature controls."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, features))
    df = pd.DataFrame(x, columns=[f"x{i}" for i in range(features)])
    signal = weight * x.sum(axis=1)
    if task == "binary":
        df["y"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-signal))).astype(int)
    elif task == "multiclass":
        df["y"] = np.digitize(signal + rng.logistic(0, 1, n), [-1.0, 1.0])
    else:
        df["y"] = signal + rng.normal(0, 0.5, n)
    return df


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))
