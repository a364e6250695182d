"""Subset Performance (#35–#37): each fires on a model that fails one part of the data, with the
expected severity, and stays PASS with a model trained on data from the same distribution, for
which some subsets are harder than others by nature (rows near the decision boundary)."""
from __future__ import annotations

import numpy as np
import pytest
from stress_gen import make_frame, run
from stress_models import train

from kilele_stress.core import Severity, Status

N = 3000
KEYS = ["subset_performance", "weak_segments", "subset_performance_degradation"]


@pytest.fixture(scope="module")
def setups():
    out = {}
    for task in ("binary", "multiclass", "regression"):
        ref, ev = make_frame(N, seed=21, task=task), make_frame(N, seed=22, task=task)
        out[task] = (ref, ev, train(ref, task))
    return out


def worst(result, key):
    """The case of ``key`` with the largest graded metric (its first)."""
    return max((c for c in result.cases if c.test_key == key), key=lambda c: next(iter(c.metrics.values())))


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_clean_setup_passes(setups, task):
    ref, ev, model = setups[task]
    result = run(ref, ev, tests=KEYS, model=model)
    assert {c.test_key for c in result.cases} == set(KEYS)
    bad = [c for c in result.cases if c.status != Status.PASS]
    assert bad == [], bad
    # Some subsets are much harder than others (num_a near the boundary), and that is no finding.
    num_a = [c for c in result.cases if c.test_key == "subset_performance" and c.features == ["num_a"]][0]
    if task != "regression":
        metric = num_a.details["subsets"]["metric"]
        assert max(metric) - min(metric) > 0.15


def _wrong_on(mask_of, task="binary"):
    """A model that is right everywhere but confidently wrong where ``mask_of(df)`` holds."""
    def wrap(model):
        def predict(df):
            p = model(df)
            mask = mask_of(df)
            if task == "binary":
                return np.where(mask, 1 - p, p)
            if task == "multiclass":
                return np.where(mask[:, None], p[:, ::-1], p)
            return np.where(mask, p + 8.0, p)
        return predict
    return wrap


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_subset_performance_fires_on_a_model_wrong_on_one_category(setups, task):
    ref, ev, model = setups[task]
    faulty = _wrong_on(lambda df: (df["cat_b"] == "z").to_numpy(), task)(model)
    result = run(ref, ev, tests=["subset_performance"], model=faulty)
    case = worst(result, "subset_performance")
    assert case.features == ["cat_b"] and case.severity == Severity.HIGH, case
    assert case.details["subsets"]["worst"] == "z"
    assert case.thresholds.as_tuple() == (0.001, 0.02, 0.1)


def test_weak_segments_fire_on_a_two_feature_segment(setups):
    ref, ev, model = setups["binary"]
    faulty = _wrong_on(lambda df: ((df["cat_b"] == "y") & (df["num_c"].to_numpy() > 6.7)).to_numpy())(model)
    case = run(ref, ev, tests=["weak_segments"], model=faulty).cases[0]
    assert sorted(case.features) == ["cat_b", "num_c"] and case.severity == Severity.HIGH, case
    assert case.metrics["segment_ratio"] < 0.6 and case.thresholds.higher_is_worse is False
    assert len(case.details["segments"]["labels"]) >= 1 and case.metrics["pairs_tested"] <= 28


def test_weak_segments_regression(setups):
    ref, ev, model = setups["regression"]
    faulty = _wrong_on(lambda df: ((df["cat_a"] == "a") & (df["flag"].astype(bool))).to_numpy(), "regression")(model)
    case = run(ref, ev, tests=["weak_segments"], model=faulty).cases[0]
    assert sorted(case.features) == ["cat_a", "flag"] and case.severity == Severity.HIGH, case


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_degradation_fires_when_one_subset_changes(setups, task):
    """The labels of one category move on the evaluation data: that subset degrades."""
    ref, ev, model = setups[task]
    ev = ev.copy()
    rows = (ev["cat_a"] == "c").to_numpy()
    ev.loc[rows, "y"] = 1 - ev.loc[rows, "y"] if task == "binary" else ev.loc[rows, "y"] + 6
    case = worst(run(ref, ev, tests=["subset_performance_degradation"], model=model), "subset_performance_degradation")
    assert case.features == ["cat_a"] and case.severity == Severity.HIGH, case
    assert case.details["subsets"]["worst"] == "c"
    assert case.metrics["reference_subset_" + ("accuracy" if task == "binary" else "mae")] > 0


def test_a_drop_every_subset_shares_is_not_a_subset_finding(setups):
    """Labels flipped on a random 15% of all rows: accuracy falls everywhere alike. That is
    Overall Performance's finding; no subset degrades beyond the whole data's drop."""
    ref, ev, model = setups["binary"]
    ev = ev.copy()
    rows = np.random.default_rng(5).random(len(ev)) < 0.15
    ev.loc[rows, "y"] = 1 - ev.loc[rows, "y"]
    result = run(ref, ev, tests=["subset_performance_degradation", "overall_performance"], model=model)
    assert any(c.status != Status.PASS for c in result.cases if c.test_key == "overall_performance")
    cases = [c for c in result.cases if c.test_key == "subset_performance_degradation"]
    assert cases and all(c.status == Status.PASS for c in cases), [(c.features, c.metrics) for c in cases]
    assert all(c.metrics["overall_drop"] > 0.05 for c in cases)


def test_small_subsets_do_not_fail_by_chance(setups):
    """200 evaluation rows, many small subsets: a clean model stays PASS."""
    ref, ev, model = setups["binary"]
    result = run(ref, ev.head(200), tests=KEYS, model=model)
    assert {c.status for c in result.cases} <= {Status.PASS, Status.SKIP}


def test_params_are_configurable(setups):
    ref, ev, model = setups["binary"]
    cfg = {"run_name": "t", "data_info": {"label_col": "y", "ref_path": "-", "eval_path": "-"},
           "tests_config": {"subset_performance": {"bins": 3, "min_subset_rows": 50},
                            "weak_segments": {"max_features": 3, "thresholds": [0.99, 0.98, 0.97]}}}
    result = run(ref, ev, tests=["subset_performance", "weak_segments"], model=model, cfg=cfg)
    num = [c for c in result.cases if c.features == ["num_a"]][0]
    assert len(num.details["subsets"]["labels"]) == 3
    weak = [c for c in result.cases if c.test_key == "weak_segments"][0]
    assert weak.metrics["pairs_tested"] == 3 and weak.thresholds.as_tuple() == (0.99, 0.98, 0.97)
