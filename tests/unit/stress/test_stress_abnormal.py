"""Abnormal Inputs (#12–#20): each fires on its fault with the expected severity, graded on
prevalence and impact (the higher level); prevalence only without a model or predictions."""
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


def _set(col, value, frac, astype=None):
    def fault(ev):
        ev = ev.copy()
        if astype is not None:
            ev[col] = ev[col].astype(astype)
        ev.loc[rows(N, frac), col] = value
        return ev
    return fault


def _scale(col, factor, frac):
    def fault(ev):
        ev = ev.copy()
        ev.loc[rows(N, frac), col] *= factor
        return ev
    return fault


def _forbidden_pair(ev):
    ev = ev.copy()
    idx = rows(N, 0.06)
    ev.loc[idx, "cat_a"], ev.loc[idx, "cat_b"] = "a", "z"  # never together in the reference
    return ev


def _no_at(ev):
    ev = ev.copy()
    idx = rows(N, 0.08)
    ev.loc[idx, "email"] = ev.loc[idx, "email"].str.replace("@", " at ")
    return ev


# Prevalence thresholds (0.01, 0.05, 0.1): 3 % → LOW, 6–8 % → MEDIUM. The model only reads
# num_a and cat_a, so faults elsewhere have no impact and the prevalence decides.
FAULTS = [
    ("6% words in a float column", "type_check", _set("num_c", "abc", 0.06, object), Severity.MEDIUM, ["num_c"]),
    ("3% fractions in an int column", "type_check", _set("count", 2.5, 0.03, float), Severity.LOW, ["count"]),
    ("3% numbers in a text column", "type_check", _set("email", 12345, 0.03, object), Severity.LOW, ["email"]),
    ("8% beyond the max", "out_of_range", _set("num_c", 50.0, 0.08), Severity.MEDIUM, ["num_c"]),
    ("6% values x100", "numeric_outliers", _scale("num_b", 100, 0.06), Severity.MEDIUM, ["num_b"]),
    ("6% unseen category", "unseen_categorical", _set("cat_b", "zzz", 0.06), Severity.MEDIUM, ["cat_b"]),
    ("7% empty strings", "empty_string", _set("cat_b", "", 0.07), Severity.MEDIUM, ["cat_b"]),
    ("6% forbidden pair", "inconsistencies", _forbidden_pair, Severity.MEDIUM, ["cat_a", "cat_b"]),
    ("8% emails without @", "required_characters", _no_at, Severity.MEDIUM, ["email"]),
]


@pytest.mark.parametrize("key,fault,severity,features", [f[1:] for f in FAULTS], ids=[f[0] for f in FAULTS])
def test_fires_on_its_fault(ref, base, key, fault, severity, features):
    result = run(ref, fault(base), tests=[key])
    case = worst(result, key)
    assert (case.severity, case.features) == (severity, features), case
    assert case.status == (Status.WARNING if severity == Severity.LOW else Status.FAIL)
    assert case.metrics["prevalence"] > 0 and case.thresholds.as_tuple() == (0.01, 0.05, 0.1)
    others = [c for c in result.cases if c is not case and c.status != Status.PASS and c.status != Status.SKIP]
    assert others == [], others  # the untouched columns stay clean


def test_rare_categories_fire_beyond_their_reference_share(ref, base):
    ref = ref.copy()
    ref.loc[[5, 50], "cat_a"] = "rare"  # 0.05 % of the reference: below 0.005 / 5 categories
    clean = base.copy()
    clean.loc[[7, 70], "cat_a"] = "rare"
    assert {c.status for c in run(ref, clean, tests=["rare_categories"]).cases} == {Status.PASS}
    faulty = clean.copy()
    faulty.loc[rows(N, 0.06), "cat_a"] = "rare"
    case = worst(run(ref, faulty, tests=["rare_categories"]), "rare_categories")
    assert (case.severity, case.features) == (Severity.MEDIUM, ["cat_a"])
    assert case.metrics["expected_share"] == pytest.approx(2 / N)


def test_impact_decides_when_the_model_suffers(ref, base):
    """3 % nulls in the feature the model lives on: LOW prevalence, HIGH impact → HIGH."""
    ev = _set("num_a", np.nan, 0.03)(base)
    case = worst(run(ref, ev, tests=["null_check"]), "null_check")
    assert case.features == ["num_a"] and case.severity == Severity.HIGH
    assert case.metrics["prevalence"] == pytest.approx(0.03) and case.metrics["impact"] > 0.1
    assert case.extra_thresholds["impact"].as_tuple() == (0.01, 0.05, 0.1)
    assert "drop of accuracy" in case.reason


def test_prevalence_only_without_model_or_predictions(ref, base):
    ev = _set("num_a", np.nan, 0.03)(base)
    case = worst(run(ref, ev, tests=["null_check"], model=None), "null_check")
    assert case.severity == Severity.LOW and np.isnan(case.metrics["impact"])
    assert "prevalence only: no model and no predictions" in case.reason


def test_impact_without_labels_is_the_change_of_average_prediction(ref, base):
    ev = _set("num_a", 10.0, 0.03)(base).drop(columns=["y"])  # the model answers ~1 on those rows
    case = worst(run(ref, ev, tests=["out_of_range"]), "out_of_range")
    assert case.severity == Severity.HIGH and case.metrics["impact"] > 0.3
    assert "change of the average prediction" in case.reason


def test_impact_from_a_pred_col(ref, base):
    ev = _set("num_a", np.nan, 0.03)(base)
    ev = ev.assign(p=predict_binary(ev))
    case = worst(run(ref.assign(p=predict_binary(ref)), ev, tests=["null_check"], model=None,
                     cfg=config(pred_col="p")), "null_check")
    assert case.severity == Severity.HIGH


def test_a_few_flagged_rows_are_prevalence_only(ref, base):
    ev = _set("num_a", np.nan, 0.002)(base)  # 8 rows: too few to measure an impact
    case = worst(run(ref, ev, tests=["null_check"]), "null_check")
    assert case.severity == Severity.NONE and "at least 20 flagged rows" in case.reason


def test_failing_inputs_are_counted_once(ref, base):
    ev = _set("num_c", 50.0, 0.08)(base)
    result = run(ref, ev, tests=["out_of_range", "numeric_outliers"])
    assert result.num_failing_inputs == int(round(N * 0.08))


def test_a_model_without_an_answer_for_abnormal_rows_is_high(ref, base):
    """A model that returns NaN for rows with a null fails on them: HIGH, whatever the prevalence."""
    def nan_model(df):
        return 1 / (1 + np.exp(-2.0 * df["num_a"].to_numpy(dtype=float)))  # NaN in, NaN out
    ev = _set("num_a", np.nan, 0.03)(base)
    case = worst(run(ref, ev, tests=["null_check"], model=nan_model), "null_check")
    assert case.severity == Severity.HIGH and "returns NaN for 120 of the 120 flagged rows" in case.reason


def test_a_model_that_raises_on_abnormal_rows_is_high(ref, base):
    def strict_model(df):
        x = df["num_a"].to_numpy(dtype=float)
        if np.isnan(x).any():
            raise ValueError("Input contains NaN")
        return 1 / (1 + np.exp(-2.0 * x))
    ev = _set("num_a", np.nan, 0.03)(base)
    result = run(ref, ev, tests=["null_check", "out_of_range"], model=strict_model)
    case = worst(result, "null_check")
    assert case.severity == Severity.HIGH and "the model fails on these rows" in case.reason
    assert "Input contains NaN" in result.model_error
    assert all(c.status == Status.PASS for c in result.cases if c.test_key == "out_of_range")
