"""Abnormal Inputs (#12–#20 of STRESS-TESTS.md): evaluation values unlike any in the reference.

Each case is graded on prevalence and impact (:mod:`kilele_stress.impact`), defaults
``(0.01, 0.05, 0.1)`` for both, the higher level wins. Numeric checks run on the whole numeric
matrix at once; string checks on distinct values.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from kilele_stress.context import Context
from kilele_stress.core import Category, register
from kilele_stress.data import NULL_WORDS, ColumnType, as_text, is_blank, is_text, looks_numeric, null_mask
from kilele_stress.impact import IMPACT_PARAMS, prevalence_impact_case
from kilele_stress.profile import category_codes, distinct_values, numeric_matrix, reference_ranges, value_counts

CAT = Category.ABNORMAL_INPUTS
PREVALENCE = [0.01, 0.05, 0.1]
IMPACT = [0.01, 0.05, 0.1]


def abnormal(key: str, name: str, **params):
    """``register`` with the prevalence-and-impact defaults of this category."""
    return register(key=key, name=name, category=CAT, thresholds=PREVALENCE, impact_thresholds=IMPACT,
                    params={**IMPACT_PARAMS, **params})


def _examples(values: pd.Series, mask: np.ndarray, limit: int = 5) -> list[str]:
    return [str(v) for v in pd.unique(values[mask].head(200))[:limit]]


def _distinct_mask(ctx: Context, which: str, col: str, predicate) -> np.ndarray:
    """Rows of a column whose value satisfies ``predicate`` (a function of the distinct values'
    Series returning a bool array): the test runs once per distinct value, not per row."""
    s = (ctx.ref if which == "ref" else ctx.eval_raw)[col]
    values, _ = distinct_values(ctx, which, col)
    if values.empty:
        return np.zeros(len(s), dtype=bool)
    hits = values[np.asarray(predicate(values), dtype=bool)]
    return s.isin(hits.tolist()).to_numpy(dtype=bool) if len(hits) else np.zeros(len(s), dtype=bool)


def _null_rows(ctx: Context, which: str, col: str) -> np.ndarray:
    """Missing rows of a feature ('NA'-like spellings count in text columns)."""
    def build() -> np.ndarray:
        s = (ctx.ref if which == "ref" else ctx.eval_raw)[col]
        return null_mask(s, distinct_values(ctx, which, col)[0]) if is_text(s) else s.isna().to_numpy(dtype=bool)
    return ctx.cached(("null_rows", which, col), build)


@abnormal("type_check", "Type Check")
def type_check(ctx: Context):
    """Values that are not of the reference's type (must be int / float / bool / string / date)."""
    for col in ctx.features:
        kind, raw = ctx.schema[col], ctx.eval_raw[col]
        bad = ctx.type_violations.get(col, np.zeros(len(raw), dtype=bool)).copy()
        expected = {ColumnType.NUMERIC: "float", ColumnType.BOOLEAN: "bool", ColumnType.TIMESTAMP: "date"}.get(kind)
        if kind == ColumnType.NUMERIC and ctx.cached(("integral", col), lambda: _integral(ctx.ref[col])):
            expected = "int"
            values = ctx.eval[col].to_numpy(dtype=float, na_value=np.nan)
            with np.errstate(invalid="ignore"):
                bad |= ~np.isnan(values) & (np.mod(values, 1) != 0)
        elif kind in (ColumnType.CATEGORICAL, ColumnType.TEXT) and is_text(ctx.ref[col]) \
                and not _distinct_mask(ctx, "ref", col, looks_numeric).any():
            expected = "string"
            bad |= _distinct_mask(ctx, "eval_raw", col, looks_numeric)
        if expected is None:
            continue
        yield prevalence_impact_case(ctx, [col], bad, details={"expected_type": expected,
                                                               "examples": _examples(raw, bad)},
                                     reason=f"must be {expected}")


def _integral(s: pd.Series) -> bool:
    values = s.to_numpy(dtype=float, na_value=np.nan)
    values = values[~np.isnan(values)]
    return bool(len(values)) and bool(np.all(np.mod(values, 1) == 0))


@abnormal("null_check", "Null Check")
def null_check(ctx: Context):
    """Nulls in a feature the reference never had a null in."""
    cols = [c for c in ctx.features if not _null_rows(ctx, "ref", c).any()]
    if not cols:
        yield ctx.skip([], "every feature has nulls in the reference")
        return
    for col in cols:
        yield prevalence_impact_case(ctx, [col], _null_rows(ctx, "eval", col))


@abnormal("out_of_range", "Out of Range")
def out_of_range(ctx: Context):
    """Numeric values outside the reference's [min, max]."""
    cols = ctx.numeric_features
    if not cols:
        yield ctx.skip([], "no numeric features")
        return
    x, rng = numeric_matrix(ctx, "eval"), reference_ranges(ctx)
    with np.errstate(invalid="ignore"):
        outside = (x < rng["min"]) | (x > rng["max"])
    n_ref = numeric_matrix(ctx, "ref").shape[0] - rng["nulls"]
    for j, col in enumerate(cols):
        mask = outside[:, j]
        # A new value from the reference's own distribution falls outside the range of n of its
        # values with probability 2 / (n + 1): that much is chance, not a fault.
        yield prevalence_impact_case(ctx, [col], mask, expected_share=2 / (n_ref[j] + 1),
                                     expected_rows=int(n_ref[j]), details={
            "reference_min": rng["min"][j], "reference_max": rng["max"][j],
            "examples": [float(v) for v in x[mask, j][:5]]})


@abnormal("numeric_outliers", "Numeric Outliers", iqr_factor=3.0)
def numeric_outliers(ctx: Context):
    """Values beyond the reference's far-out fence (quartiles ± 3 IQR; mean ± 3σ if IQR is 0)."""
    cols = ctx.numeric_features
    if not cols:
        yield ctx.skip([], "no numeric features")
        return
    k = float(ctx.params["iqr_factor"])
    rng = reference_ranges(ctx)
    iqr = rng["q3"] - rng["q1"]
    # The IQR fence ignores a few extreme values in the reference; a column mostly of one value
    # has no IQR, and falls back on the mean and standard deviation.
    lo = np.where(iqr > 0, rng["q1"] - k * iqr, rng["mean"] - k * rng["std"])
    hi = np.where(iqr > 0, rng["q3"] + k * iqr, rng["mean"] + k * rng["std"])
    x, ref = numeric_matrix(ctx, "eval"), numeric_matrix(ctx, "ref")
    with np.errstate(invalid="ignore"):
        outside, ref_outside = (x < lo) | (x > hi), (ref < lo) | (ref > hi)
    for j, col in enumerate(cols):
        mask = outside[:, j]
        yield prevalence_impact_case(ctx, [col], mask, ref_affected=ref_outside[:, j],
                                     details={"fence_low": lo[j], "fence_high": hi[j],
                                              "examples": [float(v) for v in x[mask, j][:5]]})


@abnormal("unseen_categorical", "Unseen Categorical")
def unseen_categorical(ctx: Context):
    """Categories the reference never had."""
    cols = ctx.categorical_features
    if not cols:
        yield ctx.skip([], "no categorical features")
        return
    for col in cols:
        codes = category_codes(ctx, col)
        mask = codes.eval == codes.n_codes - 2  # the "(unseen)" code
        counts = value_counts(ctx, "ref", col)
        # Good–Turing: a new row from the reference's distribution brings a value the reference
        # never had with probability (values seen once) / n; a long tail makes that common.
        n_ref = int(counts.sum())
        yield prevalence_impact_case(ctx, [col], mask, expected_share=float((counts == 1).sum()) / max(n_ref, 1),
                                     expected_rows=n_ref, details={"examples": _examples(ctx.eval[col], mask)})


@abnormal("rare_categories", "Rare Categories", rare_share=0.005)
def rare_categories(ctx: Context):
    """Categories whose reference frequency is below rare_share / (number of categories)."""
    cols = ctx.categorical_features
    if not cols:
        yield ctx.skip([], "no categorical features")
        return
    for col in cols:
        counts = value_counts(ctx, "ref", col)
        freq = counts / max(counts.sum(), 1)
        rare = freq.index[freq.to_numpy() < float(ctx.params["rare_share"]) / max(len(freq), 1)].tolist()
        mask = ctx.eval[col].isin(rare).to_numpy(dtype=bool) if rare else np.zeros(len(ctx.eval), bool)
        ref_mask = ctx.ref[col].isin(rare).to_numpy(dtype=bool) if rare else np.zeros(len(ctx.ref), bool)
        yield prevalence_impact_case(ctx, [col], mask, ref_affected=ref_mask,
                                     details={"rare": [str(v) for v in rare[:20]]})


def _string_features(ctx: Context) -> list[str]:
    return [c for c in ctx.features_of(ColumnType.CATEGORICAL, ColumnType.TEXT) if is_text(ctx.ref[c])]


@abnormal("empty_string", "Empty String")
def empty_string(ctx: Context):
    """'' in a text feature whose reference values were never empty."""
    def empty(which: str, col: str) -> np.ndarray:
        return _distinct_mask(ctx, which, col, is_blank)
    cols = [c for c in _string_features(ctx) if c in ctx.eval_raw.columns and not empty("ref", c).any()]
    if not cols:
        yield ctx.skip([], "no text feature without empty strings in the reference")
        return
    for col in cols:
        yield prevalence_impact_case(ctx, [col], empty("eval_raw", col))


@abnormal("inconsistencies", "Inconsistencies", max_features=20, min_expected=20, max_observed_ratio=0.05)
def inconsistencies(ctx: Context):
    """Value pairs of two categorical features that (almost) never occur together in the
    reference although each value is common (expected ≥ min_expected rows, seen ≤ 5 % of that)."""
    cols = ctx.categorical_features[: int(ctx.params["max_features"])]
    if len(cols) < 2:
        yield ctx.skip([], "fewer than two categorical features")
        return
    min_expected, ratio = float(ctx.params["min_expected"]), float(ctx.params["max_observed_ratio"])
    codes = {c: category_codes(ctx, c) for c in cols}
    reported = 0
    for i, a in enumerate(cols):
        for b in cols[i + 1:]:
            ca, cb = codes[a], codes[b]
            ka, kb = ca.n_codes - 3, cb.n_codes - 3  # the reference's top categories only
            ok_ref = (ca.ref < ka) & (cb.ref < kb)
            observed = np.bincount(ca.ref[ok_ref] * kb + cb.ref[ok_ref], minlength=ka * kb).reshape(ka, kb)
            n = observed.sum()
            if n == 0:
                continue
            expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / n
            bad = (expected >= min_expected) & (observed <= ratio * expected)
            if not bad.any():
                continue
            cell_e = np.where((ca.eval < ka) & (cb.eval < kb), ca.eval * kb + cb.eval, -1)
            cell_r = np.where(ok_ref, ca.ref * kb + cb.ref, -1)
            bad_cells = np.flatnonzero(bad.ravel())
            mask, ref_mask = np.isin(cell_e, bad_cells), np.isin(cell_r, bad_cells)
            if not mask.any():
                continue
            pairs = [f"{ca.labels[c // kb]} & {cb.labels[c % kb]}" for c in bad_cells[:10]]
            reported += 1
            yield prevalence_impact_case(ctx, [a, b], mask, ref_affected=ref_mask, details={"pairs": pairs})
    if not reported:
        yield ctx.case(cols, {"prevalence": 0.0, "impact": float("nan")},
                       grade_on={"prevalence": ctx.thresholds}, reason="no value pair rare in the reference occurs")


@abnormal("required_characters", "Required Characters", min_distinct=10)
def required_characters(ctx: Context):
    """A character every reference value has (e.g. '@', '-') missing from evaluation values."""
    found = False
    for col in _string_features(ctx):
        ref_values, _ = distinct_values(ctx, "ref", col)
        ref_values = ref_values[~as_text(ref_values).str.strip().str.lower().isin(NULL_WORDS | {""}).to_numpy()]
        if len(ref_values) < int(ctx.params["min_distinct"]) or col not in ctx.eval_raw.columns:
            continue
        text = as_text(ref_values)
        candidates = {ch for ch in str(text.iloc[0]) if not ch.isalnum() and not ch.isspace()}
        required = sorted(ch for ch in candidates if text.str.contains(ch, regex=False).all())
        if not required:
            continue
        found = True

        def lacking(v: pd.Series) -> np.ndarray:
            t = as_text(v)
            real = ~t.str.strip().str.lower().isin(NULL_WORDS | {""}) & t.notna()
            has_all = np.logical_and.reduce([t.str.contains(ch, regex=False).fillna(False).to_numpy(dtype=bool)
                                             for ch in required])
            return real.to_numpy(dtype=bool) & ~has_all
        mask = _distinct_mask(ctx, "eval_raw", col, lacking)
        yield prevalence_impact_case(ctx, [col], mask, details={"required": required,
                                                                "examples": _examples(ctx.eval_raw[col], mask)},
                                     reason=f"every reference value has {' '.join(map(repr, required))}")
    if not found:
        yield ctx.skip([], "no text feature whose reference values all share a special character")
