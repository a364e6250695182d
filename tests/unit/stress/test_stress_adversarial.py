"""Adversarial (#42): the Bounded Single-Feature Attack fires on a model with a sharp threshold on
one feature and stays PASS for a model that no single feature controls (binary, multi-class,
regression); all moves go to the model in one batched call."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from stress_gen import config, make_frame, run
from stress_models import diffuse_frame, sigmoid, train

from kilele_stress.core import Severity, Status

KEY = "bounded_single_feature_attack"
N = 1500


class Counting:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, df):
        self.calls += 1
        return self.fn(df)


@pytest.fixture(scope="module")
def diffuse():
    out = {}
    for task in ("binary", "multiclass", "regression"):
        ref, ev = diffuse_frame(N, 71, task), diffuse_frame(N, 72, task)
        cols = [c for c in ref.columns if c != "y"]
        out[task] = (ref, ev, train(ref, task, numeric=cols, categorical=[]))
    return out


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_a_model_no_single_feature_controls_passes(diffuse, task):
    ref, ev, model = diffuse[task]
    result = run(ref, ev, tests=[KEY], model=model)
    assert len(result.cases) == 12
    assert {c.status for c in result.cases} == {Status.PASS}, [c for c in result.cases if c.status != Status.PASS]
    assert all(0 < c.metrics["prediction_change"] < 0.05 for c in result.cases)


def test_all_moves_in_one_batched_call(diffuse):
    ref, ev, model = diffuse["binary"]
    counting = Counting(model)
    result = run(ref, ev, tests=[KEY], model=counting)
    assert counting.calls == 2 + 1 + 1  # both frames, the attacked rows, every move of every feature
    assert result.samplings == [{"test_key": KEY, "reason": "bounded attack: evaluation rows attacked",
                                 "from_rows": N, "to_rows": 100, "seed": 42}]
    steps = result.cases[0].details["steps"]
    assert steps["fraction"] == pytest.approx([-0.1, -0.075, -0.05, -0.025, 0.025, 0.05, 0.075, 0.1])


@pytest.fixture(scope="module")
def frames():
    return make_frame(N, seed=81), make_frame(N, seed=82)


def sharp(df):
    """A step on num_a at 0 (most rows are within 10% of its range of it); num_b barely matters."""
    a = pd.to_numeric(df["num_a"], errors="coerce").to_numpy()
    b = pd.to_numeric(df["num_b"], errors="coerce").to_numpy()
    return np.where(a > 0, 0.95, 0.05) * 0.9 + 0.1 * sigmoid(0.1 * b)


def test_a_sharp_threshold_is_high(frames):
    result = run(*frames, tests=[KEY], model=sharp)
    by_feature = {c.features[0]: c for c in result.cases}
    case = by_feature["num_a"]
    assert case.severity == Severity.HIGH and case.status == Status.FAIL, case
    assert case.metrics["max_change"] > 0.8 and case.metrics["flipped_share"] > 0.3
    assert by_feature["num_b"].status == Status.PASS and by_feature["num_c"].status == Status.PASS
    assert case.thresholds.as_tuple() == (0.05, 0.15, 0.25)


def test_regression_step(frames):
    ref, ev = (f.assign(y=f["num_a"] * 3) for f in frames)
    case = [c for c in run(ref, ev, tests=[KEY], model=lambda df: 10 * sharp(df)).cases if c.features == ["num_a"]][0]
    assert case.severity == Severity.HIGH and "flipped_share" not in case.metrics


def test_aggregate_and_bound_are_configurable(frames):
    cfg = config()
    cfg["tests_config"] = {KEY: {"bound": 0.01, "aggregate": "max", "rows": 500}}
    result = run(*frames, tests=[KEY], model=sharp, cfg=cfg)
    case = [c for c in result.cases if c.features == ["num_a"]][0]
    assert case.metrics["prediction_change"] == case.metrics["max_change"]
    assert case.metrics["rows"] == 100  # the catalogue's ceiling
    assert max(abs(f) for f in case.details["steps"]["fraction"]) == pytest.approx(0.01)


def test_a_model_that_raises_on_moved_values_is_high(frames):
    def picky(df):
        if (pd.to_numeric(df["num_c"], errors="coerce") > 10).any():
            raise ValueError("num_c must be at most 10")
        return sharp(df)
    case = [c for c in run(*frames, tests=[KEY], model=picky).cases if c.features == ["num_c"]][0]
    assert case.severity == Severity.HIGH and "num_c must be at most 10" in case.reason
    assert case.metrics["prediction_change"] < 0.05  # the moves down were evaluated


def test_categorical_only_data_skips():
    df = make_frame(300, seed=1)[["cat_a", "cat_b", "y"]]
    result = run(df, df, tests=[KEY], model=lambda d: np.full(len(d), 0.5))
    assert result.cases[0].status == Status.SKIP and "no numeric features" in result.cases[0].reason
