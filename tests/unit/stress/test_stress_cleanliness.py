"""Data Cleanliness tests (#1–#11): each fires on its fault with the expected severity.
(Clean controls for every test are in test_stress_clean.py.)"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from stress_gen import N, make_frame, rows, run, worst

from kilele_stress.core import Severity, Status


@pytest.fixture(scope="module")
def ref():
    return make_frame(N, seed=1)


@pytest.fixture(scope="module")
def base():
    return make_frame(N, seed=2)


def _duplicates(ev):
    ev = ev.copy()
    ev.iloc[rows(N, 0.1)] = ev.iloc[rows(N, 0.1, seed=5)].to_numpy()
    return ev


def _mixed_nulls(ev):
    ev = ev.copy()
    ev["cat_a"] = ev["cat_a"].astype(object)
    ev.loc[rows(N, 0.02, 1), "cat_a"] = "NA"
    ev.loc[rows(N, 0.02, 2), "cat_a"] = "null"
    ev.loc[rows(N, 0.02, 3), "cat_a"] = np.nan
    return ev


def _set(col, value, frac, seed=99):
    def fault(ev):
        ev = ev.copy()
        ev.loc[rows(N, frac, seed), col] = value
        return ev
    return fault


def _case_variants(ev):
    ev = ev.copy()
    hit = ev.index.isin(rows(N, 0.1)) & (ev["cat_a"] == "a").to_numpy()  # 4 % of rows: "a" → "A "
    ev.loc[hit, "cat_a"] = "A "
    return ev


def _conflicts(ev):
    ev = ev.copy()
    src, dst = rows(N, 0.08, 1), rows(N, 0.08, 2)
    ev.iloc[dst] = ev.iloc[src].to_numpy()
    ev.loc[dst, "y"] = 1 - ev.loc[src, "y"].to_numpy()
    return ev


FAULTS = [
    # (id, test key, fault, expected status, expected severity, features of the worst case)
    ("missing column", "required_features", lambda ev: ev.drop(columns=["num_c"]), Status.FAIL, Severity.HIGH,
     ["num_c"]),
    ("extra column", "required_features", lambda ev: ev.assign(extra=1), Status.WARNING, Severity.LOW, ["extra"]),
    ("10% duplicated rows", "duplicate_rows", _duplicates, Status.FAIL, Severity.MEDIUM, []),
    ("constant column", "single_value_column", lambda ev: ev.assign(cat_b="x"), Status.WARNING, Severity.LOW,
     ["cat_b"]),
    ("NA, null and NaN", "mixed_nulls", _mixed_nulls, Status.FAIL, Severity.MEDIUM, ["cat_a"]),
    ("7% numbers among words", "mixed_data_types", _set("cat_a", "123", 0.07), Status.FAIL, Severity.MEDIUM,
     ["cat_a"]),
    ("4% 'A ' for 'a'", "string_mismatch", _case_variants, Status.FAIL, Severity.MEDIUM, ["cat_a"]),
    ("2% '?'", "special_characters", _set("cat_b", "?", 0.02), Status.FAIL, Severity.MEDIUM, ["cat_b"]),
    ("same rows, flipped labels", "conflicting_labels", _conflicts, Status.FAIL, Severity.HIGH, []),
    ("95% one class", "label_imbalance",
     lambda ev: ev.assign(y=(np.random.default_rng(3).uniform(size=N) < 0.95).astype(int)), Status.FAIL,
     Severity.HIGH, ["y"]),
    ("numeric copy", "high_feature_correlation",
     lambda ev: ev.assign(num_b=ev["num_a"] * 2 + np.random.default_rng(3).normal(0, 0.05, N)), Status.FAIL,
     Severity.HIGH, ["num_a", "num_b"]),
    ("categorical copy", "high_feature_correlation",
     lambda ev: ev.assign(cat_b=ev["cat_a"].map({"a": "x", "b": "y", "c": "z", "d": "z"})), Status.FAIL,
     Severity.HIGH, ["cat_a", "cat_b"]),
    ("label copied into a feature", "feature_label_leakage",
     lambda ev: ev.assign(num_c=ev["y"] * 5 + np.random.default_rng(3).uniform(0, 1, N)), Status.FAIL,
     Severity.HIGH, ["num_c"]),
]


@pytest.mark.parametrize("key,fault,status,severity,features", [f[1:] for f in FAULTS], ids=[f[0] for f in FAULTS])
def test_fires_on_its_fault(ref, base, key, fault, status, severity, features):
    case = worst(run(ref, fault(base), tests=[key]), key)
    assert (case.status, case.severity, case.features) == (status, severity, features), case


def test_untouched_columns_stay_clean_next_to_a_fault(ref, base):
    result = run(ref, _set("cat_b", "?", 0.02)(base), tests=["special_characters", "mixed_data_types"])
    flagged = {(c.test_key, tuple(c.features)) for c in result.cases if c.status != Status.PASS}
    assert flagged == {("special_characters", ("cat_b",))}


def test_duplicates_and_conflicts_natural_to_the_data_do_not_count():
    """Few distinct rows repeat by nature: only the excess over the reference is a fault."""
    def coarse(seed):
        r = np.random.default_rng(seed)
        df = pd.DataFrame({"a": r.integers(0, 3, N), "b": r.choice(["u", "v"], N)})
        return df.assign(y=(r.uniform(size=N) < 0.3 + 0.2 * df["a"]).astype(int))
    result = run(coarse(1), coarse(2), tests=["duplicate_rows", "conflicting_labels"], model=None)
    assert all(c.status == Status.PASS for c in result.cases), result.cases
    assert all(c.metrics.get("eval_duplicate_share", 1) > 0.9 for c in result.cases
               if c.test_key == "duplicate_rows")


def test_label_tests_skip_for_regression():
    result = run(make_frame(500, 1, "regression"), make_frame(500, 2, "regression"),
                 tests=["label_imbalance", "conflicting_labels"], model=None)
    assert [c.status for c in result.cases] == [Status.SKIP, Status.SKIP]
    assert all("regression" in c.reason for c in result.cases)
