"""The engine end to end on scikit-learn's bundled data sets, with a trained scikit-learn model
wrapped in RIME's ``predict_df`` convention: binary, multi-class and regression."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import datasets
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from kilele_stress import run_stress_test
from kilele_stress.core import Category, Severity, Status, registry

CASES = {
    "breast_cancer": (datasets.load_breast_cancer, "Binary Classification", ("accuracy", 0.9)),
    "wine": (datasets.load_wine, "Multi-class Classification", ("accuracy", 0.85)),
    "diabetes": (datasets.load_diabetes, "Regression", ("r2", 0.3)),
}


def _setup(name: str):
    loader, task, _ = CASES[name]
    df = loader(as_frame=True).frame
    feats = [c for c in df.columns if c != "target"]
    if len(df) >= 400:
        ref, ev = train_test_split(df, test_size=0.5, random_state=0,
                                   stratify=None if task == "Regression" else df["target"])
    else:
        # wine has 178 rows: both frames need 100, so evaluation is the data again with a little
        # noise (integer columns stay integers: a fraction there would be a Type Check finding).
        ref, ev = df, df.copy()
        noise = np.random.default_rng(0).normal(0, 0.05, (len(df), len(feats))) * df[feats].std().to_numpy()
        ev[feats] = ev[feats] + noise
        ints = [c for c in feats if np.all(np.mod(df[c], 1) == 0)]
        ev[ints] = ev[ints].round()
    estimator = Ridge() if task == "Regression" else LogisticRegression(max_iter=5000)
    model = make_pipeline(StandardScaler(), estimator).fit(ref[feats], ref["target"])

    def predict_df(frame: pd.DataFrame) -> np.ndarray:
        if task == "Regression":
            return model.predict(frame[feats])
        proba = model.predict_proba(frame[feats])
        return proba[:, 1] if task == "Binary Classification" else proba
    return ref, ev, feats, predict_df


def _config(name):
    return {"run_name": name, "data_info": {"label_col": "target", "ref_path": "-", "eval_path": "-"}}


@pytest.mark.parametrize("name", list(CASES))
def test_clean_split(name):
    ref, ev, feats, predict_df = _setup(name)
    result = run_stress_test(_config(name), model=predict_df, ref=ref, eval=ev)
    _, task, (metric, floor) = CASES[name]
    assert result.model_task == task
    assert {c.test_key for c in result.cases} == set(registry())
    assert not [c for c in result.cases if "raised" in c.reason or "model failed" in c.reason]
    assert result.model_performance["evaluation"][metric] > floor
    noisy = [c for c in result.cases if c.category in (Category.DRIFT, Category.ABNORMAL_INPUTS)
             and c.status != Status.PASS and c.status != Status.SKIP]
    assert noisy == [], noisy
    cases_df, run_df = result.test_cases_df(), result.test_run_df()
    assert len(cases_df) == run_df.loc[0, "summary_counts.total"] == len(result.cases)
    assert run_df.loc[0, "num_inputs"] == len(ev)


@pytest.mark.parametrize("name", list(CASES))
def test_shifted_evaluation(name):
    ref, ev, feats, predict_df = _setup(name)
    top = feats[0]
    ev = ev.copy()
    ev[top] = ev[top] + ref[top].std()
    ev.loc[ev.index[:30], feats[1]] = np.nan
    result = run_stress_test(_config(name), model=predict_df, ref=ref, eval=ev,
                             tests=["numeric_drift", "null_check", "multivariate_drift"])
    drift = [c for c in result.cases if c.test_key == "numeric_drift" and c.features == [top]][0]
    assert drift.severity == Severity.HIGH
    # scikit-learn's models raise on NaN: a model exception caused by these rows is HIGH.
    nulls = [c for c in result.cases if c.test_key == "null_check" and c.features == [feats[1]]][0]
    assert nulls.severity == Severity.HIGH and "the model fails on these rows" in nulls.reason
    assert "NaN" in result.model_error
    assert [c for c in result.cases if c.test_key == "multivariate_drift"][0].severity >= Severity.MEDIUM
