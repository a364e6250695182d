"""Model Performance (#31–#34): each fires on the fault it exists for, with the expected severity,
and stays PASS with a model trained on data from the same distribution (binary, multi-class,
regression)."""
from __future__ import annotations

import numpy as np
import pytest
from stress_gen import config, make_frame, run
from stress_models import sigmoid, train

from kilele_stress.core import Severity, Status

N = 3000
KEYS = ["overall_performance", "beats_dummy", "calibration_comparison", "average_confidence"]


@pytest.fixture(scope="module")
def setups():
    """Per task: reference, evaluation (same distribution) and a model trained on the reference."""
    out = {}
    for task in ("binary", "multiclass", "regression"):
        ref, ev = make_frame(N, seed=11, task=task), make_frame(N, seed=12, task=task)
        out[task] = (ref, ev, train(ref, task))
    return out


def _by_key(result, key):
    return [c for c in result.cases if c.test_key == key]


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_clean_setup_passes(setups, task):
    ref, ev, model = setups[task]
    result = run(ref, ev, tests=KEYS, model=model)
    for case in result.cases:
        if case.status == Status.SKIP:
            assert task == "regression" and case.test_key in ("calibration_comparison", "average_confidence")
            assert "regression" in case.reason
            continue
        assert case.status == Status.PASS, case
    expected = {"binary": {"accuracy", "auc", "f1"}, "multiclass": {"accuracy", "f1"}, "regression": {"rmse", "mae"}}
    assert {c.details["metric"] for c in _by_key(result, "overall_performance")} == expected[task]


def _flip_labels(ev, share, seed=5):
    ev = ev.copy()
    idx = np.random.default_rng(seed).choice(len(ev), int(share * len(ev)), replace=False)
    ev.loc[idx, "y"] = 1 - ev.loc[idx, "y"]
    return ev


def test_overall_performance_fires_when_the_model_is_worse_on_eval(setups):
    ref, ev, model = setups["binary"]
    result = run(ref, _flip_labels(ev, 0.3), tests=["overall_performance"], model=model)
    by_metric = {c.details["metric"]: c for c in result.cases}
    accuracy = by_metric["accuracy"]
    assert accuracy.severity >= Severity.MEDIUM and accuracy.metrics["drop_estimate"] >= 0.2
    # graded beyond its confidence bound: the estimate less z standard errors
    assert 0 < accuracy.metrics["relative_drop"] < accuracy.metrics["drop_estimate"]
    assert by_metric["auc"].severity >= Severity.MEDIUM
    assert by_metric["accuracy"].thresholds.as_tuple() == (0.05, 0.1, 0.2)


def test_overall_performance_regression_error_rise(setups):
    ref, ev, model = setups["regression"]
    noisy = ev.assign(y=ev["y"] + np.random.default_rng(1).normal(0, 4, len(ev)))
    result = run(ref, noisy, tests=["overall_performance"], model=model)
    assert {c.details["metric"]: c.severity for c in result.cases} == {"rmse": Severity.HIGH, "mae": Severity.HIGH}


def test_overall_performance_small_noise_is_not_significant(setups):
    """A drop above the threshold on 150 rows is within noise: graded beyond its confidence bound,
    it is PASS, and the reason says how it was graded."""
    ref, ev, model = setups["binary"]
    small = _flip_labels(ev.head(150), 0.1)  # 15 of 150 labels flipped
    case = [c for c in run(ref, small, tests=["overall_performance"], model=model).cases
            if c.details["metric"] == "accuracy"][0]
    assert case.metrics["drop_estimate"] >= 0.05, case  # above the low threshold as an estimate…
    assert case.status == Status.PASS and case.metrics["relative_drop"] < 0.05  # …but not beyond its bound
    assert "confidence bound" in case.reason


def test_overall_performance_thresholds_and_metrics_configurable(setups):
    ref, ev, model = setups["binary"]
    cfg = config()
    cfg["tests_config"] = {"overall_performance": {"thresholds": [0.01, 0.02, 0.03], "metrics": ["accuracy"]}}
    result = run(ref, _flip_labels(ev, 0.05), tests=["overall_performance"], model=model, cfg=cfg)
    assert [c.details["metric"] for c in result.cases] == ["accuracy"]
    assert result.cases[0].thresholds.as_tuple() == (0.01, 0.02, 0.03)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_beats_dummy_fires_on_a_useless_model(setups, task):
    ref, ev, _ = setups[task]
    k = {"binary": None, "multiclass": 3, "regression": None}[task]
    rng = np.random.default_rng(0)

    def useless(df):
        if task == "binary":
            return rng.uniform(size=len(df))
        if task == "multiclass":
            return rng.dirichlet(np.ones(k), len(df))
        return rng.normal(float(ref["y"].mean()), float(ref["y"].std()), len(df))
    case = run(ref, ev, tests=["beats_dummy"], model=useless).cases[0]
    assert case.severity == Severity.HIGH and case.metrics["gain"] <= 0, case
    assert case.thresholds.higher_is_worse is False


def test_calibration_comparison_fires_when_eval_labels_are_noisier(setups):
    ref, _, model = setups["binary"]
    ev = make_frame(N, seed=12, task="binary", strength=0.6)  # the model is now overconfident
    case = run(ref, ev, tests=["calibration_comparison"], model=model).cases[0]
    assert case.severity >= Severity.MEDIUM and case.metrics["ece_increase"] >= 0.06, case
    curve = case.details["calibration"]
    assert set(curve) == {"kind", "reference", "eval"} and len(curve["eval"]["predicted"]) > 3


def test_calibration_of_an_overconfident_multiclass_model(setups):
    ref, ev, model = setups["multiclass"]

    def sharpened(df):  # overconfident on both frames alike
        p = model(df) ** 4
        return p / p.sum(axis=1, keepdims=True)
    both = run(ref, ev, tests=["calibration_comparison"], model=sharpened).cases[0]
    assert both.status == Status.PASS  # equally miscalibrated on both frames: no change
    assert both.metrics["reference_ece"] > 0.05


def test_atc_fires_when_eval_moves_to_the_uncertain_region(setups):
    ref, ev, model = setups["binary"]
    shifted = ev.assign(num_a=ev["num_a"] * 0.2).drop(columns=["y"])  # no labels needed
    case = run(ref, shifted, tests=["average_confidence"], model=model).cases[0]
    assert case.severity == Severity.HIGH and case.metrics["estimated_drop"] >= 0.2, case
    assert "eval_accuracy" not in case.metrics
    assert case.details["kind"] == "confidence" and len(case.details["bins"]) == 10


def test_atc_tracks_the_true_accuracy(setups):
    """Covariate shift (the label still follows the features as before): ATC's estimate is close
    to the accuracy the labels show."""
    ref, ev, model = setups["multiclass"]
    rng = np.random.default_rng(3)
    shifted = ev.assign(num_a=ev["num_a"] * 0.5)
    signal = 2.0 * shifted["num_a"].to_numpy() + 0.5 * (shifted["cat_a"] == "b").to_numpy()
    shifted["y"] = np.digitize(signal + rng.normal(0, 0.5, len(ev)), [-1.0, 1.0])
    case = run(ref, shifted, tests=["average_confidence"], model=model).cases[0]
    assert case.severity >= Severity.LOW
    assert abs(case.metrics["estimated_eval_accuracy"] - case.metrics["eval_accuracy"]) < 0.03


def test_true_probabilities_are_calibrated(setups):
    """The true model of make_frame's label: no calibration change, no estimated drop."""
    ref, ev, _ = setups["binary"]

    def truth(df):
        return sigmoid(2.0 * df["num_a"].to_numpy() + 0.5 * (df["cat_a"] == "b").to_numpy())
    result = run(ref, ev, tests=["calibration_comparison", "average_confidence"], model=truth)
    assert {c.status for c in result.cases} == {Status.PASS}
    assert all(abs(c.metrics.get("reference_ece", 0)) < 0.03 for c in result.cases)
