"""Transformations (#40, #41): Substitutions fire on a model that crashes on (or answers nonsense
for) a corrupted value, with the error in the case; Numeric Perturbation Invariance fires on a
sharp threshold placed where many rows sit; both stay PASS for a trained model that handles
corrupted values (binary, multi-class, regression) and call the model in batches."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from stress_gen import make_frame, run
from stress_models import sigmoid, train

from kilele_stress.core import Severity, Status

N = 2000
KEYS = ["substitutions", "numeric_perturbation"]


@pytest.fixture(scope="module")
def setups():
    out = {}
    for task in ("binary", "multiclass", "regression"):
        ref, ev = make_frame(N, seed=61, task=task), make_frame(N, seed=62, task=task)
        out[task] = (ref, ev, train(ref, task))
    return out


def _case(result, key, feature):
    return [c for c in result.cases if c.test_key == key and c.features == [feature]][0]


class Counting:
    """A model that counts its calls and rows."""

    def __init__(self, fn):
        self.fn, self.calls, self.rows = fn, 0, 0

    def __call__(self, df):
        self.calls += 1
        self.rows += len(df)
        return self.fn(df)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_clean_setup_passes(setups, task):
    ref, ev, model = setups[task]
    result = run(ref, ev, tests=KEYS, model=model)
    bad = [c for c in result.cases if c.status != Status.PASS]
    assert bad == [], bad
    subs = _case(result, "substitutions", "cat_a")
    assert set(subs.details["kinds"]["labels"]) == {"null", "unseen_category", "wrong_type", "case_change",
                                                   "empty_string"}
    assert set(_case(result, "substitutions", "num_a").details["kinds"]["labels"]) == {"null", "out_of_range",
                                                                                      "wrong_type"}
    # A null in the model's main feature moves its predictions a lot: information lost, not a fault.
    assert _case(result, "substitutions", "num_a").metrics["prediction_change"] > 0.05
    perturbed = {c.features[0] for c in result.cases if c.test_key == "numeric_perturbation"}
    assert perturbed == {"num_a", "num_b", "num_c", "count"}


def test_one_model_call_per_corruption_kind(setups):
    ref, ev, model = setups["binary"]
    counting = Counting(model)
    run(ref, ev, tests=["substitutions"], model=counting)
    # 2 initial calls (both frames), the clean rows, the envelope, 6 kinds
    assert counting.calls == 2 + 1 + 1 + 6
    assert counting.rows < 2 * N + 100 * (1 + 11 * 8 + 8 * 6)
    assert [s["to_rows"] for s in run(ref, ev, tests=["substitutions"], model=model).samplings] == [100]


def test_a_model_that_crashes_on_nulls_is_high(setups):
    ref, ev, model = setups["binary"]

    def no_nulls(df):
        if pd.to_numeric(df["num_b"], errors="coerce").isna().any():
            raise ValueError("Input contains NaN")
        return model(df)
    result = run(ref, ev, tests=["substitutions"], model=no_nulls)
    case = _case(result, "substitutions", "num_b")
    assert case.severity == Severity.HIGH and case.status == Status.FAIL
    assert "Input contains NaN" in case.reason and "null" in case.details["errors"]
    others = [c for c in result.cases if c is not case and c.status != Status.PASS]
    assert others == [], others


def test_a_model_that_crashes_on_unseen_categories_is_high(setups):
    ref, ev, model = setups["multiclass"]
    known = set(ref["cat_b"])

    def strict(df):
        unknown = set(df["cat_b"].dropna()) - known
        if unknown:
            raise KeyError(f"unknown category {sorted(map(str, unknown))[0]}")
        return model(df)
    case = _case(run(ref, ev, tests=["substitutions"], model=strict), "substitutions", "cat_b")
    assert case.severity == Severity.HIGH
    assert {"unseen_category", "case_change", "empty_string"} <= set(case.details["errors"])
    assert "KeyError" in case.reason


def test_a_model_that_answers_nonsense_for_an_unseen_category(setups):
    ref, ev, _ = setups["binary"]

    def confident(df):
        p = sigmoid(2.0 * df["num_a"].to_numpy() + 0.5 * (df["cat_a"] == "b").to_numpy())
        return np.where(df["cat_a"].isin(["a", "b", "c", "d"]).to_numpy(), p, 1.0)
    case = _case(run(ref, ev, tests=["substitutions"], model=confident), "substitutions", "cat_a")
    assert case.severity == Severity.HIGH and case.metrics["excursion"] > 0.3, case
    assert "accuracy_drop" in case.metrics


def test_nan_predictions_are_a_failure_to_answer(setups):
    ref, ev, _ = setups["regression"]

    def propagates(df):  # a null in, NaN out
        return 6.0 * pd.to_numeric(df["num_a"], errors="coerce").to_numpy()
    case = _case(run(ref, ev, tests=["substitutions"], model=propagates), "substitutions", "num_a")
    assert case.severity == Severity.HIGH and case.metrics["nan_share"] == 1.0


def test_regression_extrapolation_is_not_an_excursion(setups):
    """A linear model continues its trend out of range: allowed; one that explodes is not."""
    ref, ev, model = setups["regression"]
    fine = _case(run(ref, ev, tests=["substitutions"], model=model), "substitutions", "num_a")
    assert fine.status == Status.PASS

    top = float(ref["num_a"].max())

    def explodes(df):  # wild beyond the range it was trained on
        x = pd.to_numeric(df["num_a"], errors="coerce").fillna(0).to_numpy()
        return model(df) + np.where(x > top, 1e3, 0.0)
    case = _case(run(ref, ev, tests=["substitutions"], model=explodes), "substitutions", "num_a")
    assert case.severity == Severity.HIGH and case.details["kinds"]["labels"][
        int(np.argmax(case.details["kinds"]["excursion"]))] == "out_of_range"


def _sharp(df):
    """A threshold right on a value many rows have: count is an integer, and 3 is common."""
    count = pd.to_numeric(df["count"], errors="coerce").to_numpy()
    return np.where(count > 3, 0.9, 0.1) * 0.5 + 0.25 * sigmoid(df["num_a"].to_numpy())


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_numeric_perturbation_fires_on_a_sharp_threshold(setups, task):
    ref, ev, _ = setups[task]
    model = _sharp if task == "binary" else (lambda df: 10 * _sharp(df))
    result = run(ref, ev, tests=["numeric_perturbation"], model=model)
    case = _case(result, "numeric_perturbation", "count")
    assert case.severity == Severity.HIGH and case.metrics["flip_share"] > 0.1, case
    assert case.details["kinds"]["labels"] == ["×1.01", "×0.99", "+1% noise"]
    assert _case(result, "numeric_perturbation", "num_a").status == Status.PASS


def test_numeric_perturbation_model_error_is_high(setups):
    ref, ev, model = setups["binary"]

    def integers_only(df):
        if (np.mod(pd.to_numeric(df["count"], errors="coerce").dropna(), 1) != 0).any():
            raise TypeError("count must be an integer")
        return model(df)
    case = _case(run(ref, ev, tests=["numeric_perturbation"], model=integers_only), "numeric_perturbation", "count")
    assert case.severity == Severity.HIGH and "count must be an integer" in case.reason


def test_without_a_model_both_skip(setups):
    ref, ev, model = setups["binary"]
    cfg = {"run_name": "t", "data_info": {"label_col": "y", "pred_col": "p", "ref_path": "-", "eval_path": "-"}}
    result = run(ref.assign(p=model(ref)), ev.assign(p=model(ev)), tests=KEYS, model=None, cfg=cfg)
    assert {c.status for c in result.cases} == {Status.SKIP}
    assert all("no model" in c.reason for c in result.cases)


def test_stacked_frames_keep_the_types_a_model_would_see():
    """The numeric fast path of ``stacked`` gives the dtypes and values of the object path
    (``infer_objects``): ints stay ints, a NaN or a float makes floats, text makes objects."""
    import pandas as pd

    from kilele_stress.tests.model_batches import stacked

    base = pd.DataFrame({"i": [1, 2, 3], "f": [0.5, 1.5, 2.5], "s": ["a", "b", "c"]})
    parts = [("a", "i", 7), ("b", "i", np.nan), ("c", "f", np.array([1, 2, 3])), ("d", "s", "zz"),
             ("e", "f", "n/a?")]
    big = stacked(base, parts)
    assert len(big) == 15
    assert big["i"].dtype == np.float64 and np.isnan(big["i"].iloc[3]) and big["i"].iloc[0] == 7 and big["i"].iloc[6] == 1
    assert big["f"].dtype == object and big["f"].iloc[12] == "n/a?" and big["f"].iloc[6] == 1
    ints = stacked(base, [("a", "i", 7), ("b", "i", np.array([4, 5, 6]))])
    assert ints["i"].dtype == np.int64 and ints["i"].tolist() == [7, 7, 7, 4, 5, 6]
    assert ints["s"].tolist() == ["a", "b", "c"] * 2
