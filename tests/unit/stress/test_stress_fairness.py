"""Bias & Fairness (#38, #39): both fire on a model biased against a protected group, stay PASS
for an unbiased model, SKIP for regression or without protected features."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from stress_gen import config, make_frame, run
from stress_models import sigmoid

from kilele_stress.core import Severity, Status

N = 3000
KEYS = ["demographic_parity", "equalized_odds"]


def _with_group(df: pd.DataFrame, seed: int) -> pd.DataFrame:
    """A protected attribute independent of everything else, and a numeric one (age)."""
    rng = np.random.default_rng(seed)
    return df.assign(group=rng.choice(["A", "B", "C"], len(df), p=[0.5, 0.3, 0.2]),
                     age=rng.integers(18, 80, len(df)))


@pytest.fixture(scope="module")
def frames():
    return _with_group(make_frame(N, seed=31), 1), _with_group(make_frame(N, seed=32), 2)


def fair(df):
    return sigmoid(2.0 * df["num_a"].to_numpy() + 0.5 * (df["cat_a"] == "b").to_numpy())


def biased(df):
    """Lower scores for group C whatever the features say."""
    return sigmoid(2.0 * df["num_a"].to_numpy() + 0.5 * (df["cat_a"] == "b").to_numpy()
                   - 1.5 * (df["group"] == "C").to_numpy())


CFG = config(protected_features=["group", "age"])


def test_unbiased_model_passes(frames):
    result = run(*frames, tests=KEYS, model=fair, cfg=CFG)
    assert len(result.cases) == 4 and {c.status for c in result.cases} == {Status.PASS}, result.cases


@pytest.mark.parametrize("key,metric", [("demographic_parity", "parity_ratio"), ("equalized_odds", "odds_gap")])
def test_biased_model_fails(frames, key, metric):
    result = run(*frames, tests=[key], model=biased, cfg=CFG)
    by_feature = {c.features[0]: c for c in result.cases}
    case = by_feature["group"]
    assert case.severity == Severity.HIGH, case
    assert by_feature["age"].status == Status.PASS  # the bias is about group only
    if key == "demographic_parity":
        assert case.metrics[metric] < 0.6 and case.thresholds.higher_is_worse is False
        assert case.details["groups"]["labels"] == ["A", "B", "C"]
    else:
        assert case.metrics[metric] >= 0.2
        assert {"tpr", "fpr"} <= set(case.details["groups"])


def test_multiclass_bias_reports_the_worst_class():
    def frame(seed):
        return _with_group(make_frame(N, seed=seed, task="multiclass"), seed)

    def model(df):
        s = 2.0 * df["num_a"].to_numpy() + 0.5 * (df["cat_a"] == "b").to_numpy() - 2.0 * (df["group"] == "B").to_numpy()
        low, high = sigmoid((-1.0 - s) / 0.3), sigmoid((1.0 - s) / 0.3)
        return np.column_stack([low, high - low, 1 - high])
    result = run(frame(41), frame(42), tests=KEYS, model=model, cfg=config(protected_features=["group"]))
    for case in result.cases:
        assert case.severity == Severity.HIGH, case
    parity = [c for c in result.cases if c.test_key == "demographic_parity"][0]
    assert parity.details["groups"]["class"] in ("0", "2")


def test_regression_skips_with_a_reason():
    ref, ev = (_with_group(make_frame(N, seed=s, task="regression"), s) for s in (51, 52))
    result = run(ref, ev, tests=KEYS, model=lambda df: df["num_a"].to_numpy() * 6, cfg=CFG)
    assert {c.status for c in result.cases} == {Status.SKIP}
    assert all("regression" in c.reason for c in result.cases)


def test_no_protected_features_skip(frames):
    result = run(*frames, tests=KEYS, model=fair)
    assert {c.status for c in result.cases} == {Status.SKIP}
    assert all("protected" in c.reason for c in result.cases)


def test_small_groups_are_not_a_finding(frames):
    """A disparity on 120 rows is not significant: PASS, saying so."""
    ref, ev = frames
    case = run(ref, ev.head(120), tests=["demographic_parity"], model=fair,
               cfg=config(protected_features=["group"])).cases[0]
    assert case.status == Status.PASS
    if case.metrics["parity_ratio"] <= 0.9:
        assert "not significant" in case.reason


def test_thresholds_configurable(frames):
    cfg = config(protected_features=["group"])
    cfg["tests_config"] = {"equalized_odds": {"thresholds": [0.5, 0.6, 0.7], "min_group_rows": 30}}
    case = run(*frames, tests=["equalized_odds"], model=biased, cfg=cfg).cases[0]
    assert case.thresholds.as_tuple() == (0.5, 0.6, 0.7) and case.severity < Severity.HIGH
