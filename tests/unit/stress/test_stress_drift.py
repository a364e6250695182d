"""Drift tests (#21–#30): each fires on the shift it exists for, with the expected severity, and
leaves the untouched columns alone."""
from __future__ import annotations

import numpy as np
import pytest
from stress_gen import N, config, make_frame, predict_binary, rows, run, worst

from kilele_stress.core import Severity, Status


@pytest.fixture(scope="module")
def ref():
    return make_frame(N, seed=1)


@pytest.fixture(scope="module")
def base():
    return make_frame(N, seed=2)


def _nulls(cols, frac):
    def fault(ev):
        ev = ev.copy()
        idx = rows(N, frac)
        for col in cols:
            ev.loc[idx, col] = np.nan
        return ev
    return fault


def _joint(ev):
    """num_c reordered to follow num_a: both marginals unchanged, the joint distribution not."""
    ev = ev.copy()
    order = np.argsort(np.argsort(ev["num_a"].to_numpy()))
    ev["num_c"] = np.sort(ev["num_c"].to_numpy())[order]
    return ev


def rng() -> np.random.Generator:
    return np.random.default_rng(3)  # a fresh one per fault: no dependence on the order tests run in


FAULTS = [
    ("1 sigma shift", "numeric_drift", lambda ev: ev.assign(num_a=ev["num_a"] + 1), Severity.HIGH, ["num_a"]),
    ("categories reversed", "categorical_drift",
     lambda ev: ev.assign(cat_a=rng().choice(["a", "b", "c", "d"], N, p=[0.1, 0.2, 0.3, 0.4])), Severity.HIGH, ["cat_a"]),
    ("predictions follow a shift", "prediction_drift", lambda ev: ev.assign(num_a=ev["num_a"] + 1), Severity.HIGH, []),
    ("90% positives", "label_drift", lambda ev: ev.assign(y=(rng().uniform(size=N) < 0.9).astype(int)), Severity.HIGH,
     ["y"]),
    ("8% new nulls", "null_drift", _nulls(["num_b"], 0.08), Severity.MEDIUM, ["num_b"]),
    ("20% rows with 2 nulls", "nulls_per_row_drift", _nulls(["num_b", "cat_b"], 0.2), Severity.HIGH, []),
    ("new feature correlation", "correlation_drift",
     lambda ev: ev.assign(num_c=ev["num_b"] * 3 + rng().normal(0, 0.3, N)), Severity.HIGH, ["num_b", "num_c"]),
    ("label no longer follows num_a", "mutual_information_drift",
     lambda ev: ev.assign(y=rng().permutation(ev["y"].to_numpy())), Severity.HIGH, ["num_a"]),
    ("joint change, same marginals", "multivariate_drift", _joint, Severity.HIGH, []),
    ("4 of 7 features drift", "dataset_drift_share",
     lambda ev: ev.assign(num_a=ev["num_a"] + 1, num_b=ev["num_b"] * 2, num_c=ev["num_c"] + 3,
                          count=ev["count"] + 3), Severity.HIGH, ["num_a", "num_b", "num_c", "count"]),
]


@pytest.mark.parametrize("key,fault,severity,features", [f[1:] for f in FAULTS], ids=[f[0] for f in FAULTS])
def test_fires_on_its_fault(ref, base, key, fault, severity, features):
    result = run(ref, fault(base), tests=[key])
    case = worst(result, key)
    assert (case.severity, case.features) == (severity, features), case
    flagged = [c for c in result.cases if c.status not in (Status.PASS, Status.SKIP)]
    if key in ("numeric_drift", "categorical_drift", "null_drift", "correlation_drift", "mutual_information_drift"):
        assert flagged == [case], flagged  # one feature touched, one flagged


def test_numeric_drift_severity_follows_the_shift(ref, base):
    """PSI and the Wasserstein distance grow with the shift: 1 sigma is HIGH on both, 0.5 sigma
    MEDIUM by PSI (in [0.2, 0.6)) and HIGH by the distance (past 0.25 sigma)."""
    case = worst(run(ref, base.assign(num_a=base["num_a"] + 0.5), tests=["numeric_drift"]), "numeric_drift")
    assert case.severity == Severity.HIGH and 0.2 <= case.metrics["psi"] < 0.6 and case.metrics["p_value"] < 1e-6
    assert 0.4 < case.metrics["wasserstein"] < 0.6 and case.extra_thresholds["wasserstein"].as_tuple() == (0.05, 0.1, 0.25)
    assert len(case.details["bins"]) == 10 and sum(case.details["ref"]) == pytest.approx(1, abs=1e-3)
    case = worst(run(ref, base.assign(num_a=base["num_a"] + 1.0), tests=["numeric_drift"]), "numeric_drift")
    assert case.severity == Severity.HIGH and case.metrics["psi"] >= 0.6


def test_a_shift_smaller_than_a_decile_is_seen_by_the_distance(ref, base):
    """0.15 sigma moves decile PSI by almost nothing (< 0.1, PASS); the Wasserstein distance
    (0.15 reference standard deviations) makes it MEDIUM, the other columns stay PASS."""
    result = run(ref, base.assign(num_a=base["num_a"] + 0.15), tests=["numeric_drift"])
    case = worst(result, "numeric_drift")
    assert case.features == ["num_a"] and case.severity == Severity.MEDIUM
    assert case.metrics["psi"] < 0.1 and 0.1 <= case.metrics["wasserstein"] < 0.25
    assert all(c.status == Status.PASS for c in result.cases if c.features != ["num_a"])


def test_a_few_values_far_out_of_range_are_seen_by_the_distance(ref, base):
    """2% of num_c (uniform 0-10) set to 15-25: they fall in the last decile bin whatever their
    distance, so PSI stays small; the distance they moved does not."""
    ev = base.copy()
    idx = np.arange(0, N, 50)
    ev.loc[idx, "num_c"] = 10 + 10 * np.linspace(0.5, 1.5, len(idx))
    case = worst(run(ref, ev, tests=["numeric_drift"]), "numeric_drift")
    assert case.features == ["num_c"] and case.severity == Severity.MEDIUM
    assert case.metrics["psi"] < 0.1 and case.metrics["wasserstein"] >= 0.1 and case.metrics["p_value"] < 0.01


def test_the_distance_is_gated_on_small_data():
    """On 150 rows a heavy-tailed column's distance is large by chance alone: the t/KS gate keeps
    untouched columns PASS, with the reason."""
    small_ref, small_ev = make_frame(150, seed=11), make_frame(150, seed=12)
    result = run(small_ref, small_ev, tests=["numeric_drift"])
    assert all(c.status == Status.PASS for c in result.cases), [(c.features, c.metrics) for c in result.cases]
    gated = [c for c in result.cases if c.metrics["wasserstein"] >= 0.05]
    assert gated and all("not significant" in c.reason for c in gated)


def test_multivariate_drift_sees_what_marginals_do_not(ref, base):
    result = run(ref, _joint(base), tests=["numeric_drift", "multivariate_drift"])
    assert all(c.status == Status.PASS for c in result.cases if c.test_key == "numeric_drift")
    case = worst(result, "multivariate_drift")
    assert case.metrics["domain_classifier_score"] >= 0.5 and case.metrics["sample_rows"] == 5000


def test_regression_label_drift_uses_ks():
    ref, ev = make_frame(N, 1, "regression"), make_frame(N, 2, "regression")
    case = worst(run(ref, ev.assign(y=ev["y"] + 20), tests=["label_drift"], model=None), "label_drift")
    assert case.severity == Severity.HIGH and case.metrics["ks_statistic"] >= 0.6
    assert "psi" not in case.metrics


def test_prediction_drift_from_a_pred_col(ref, base):
    ev = base.assign(num_a=base["num_a"] + 1)
    result = run(ref.assign(p=predict_binary(ref)), ev.assign(p=predict_binary(ev)), tests=["prediction_drift"],
                 model=None, cfg=config(pred_col="p"))
    assert worst(result, "prediction_drift").severity == Severity.HIGH


def test_a_small_psi_is_not_significant_on_little_data():
    """150 rows: PSI is noisy; the KS gate keeps an untouched column from failing by chance."""
    ref, ev = make_frame(150, 1), make_frame(150, 2)
    result = run(ref, ev, tests=["numeric_drift"])
    assert all(c.status == Status.PASS for c in result.cases)


def test_type_errors_are_not_counted_as_null_drift(ref, base):
    ev = base.copy()
    ev["num_c"] = ev["num_c"].astype(object)
    ev.loc[rows(N, 0.08), "num_c"] = "abc"
    result = run(ref, ev, tests=["null_drift", "type_check"])
    assert all(c.status == Status.PASS for c in result.cases if c.test_key == "null_drift")
    assert worst(result, "type_check").features == ["num_c"]
