"""Data Cleanliness (#1–#11 of STRESS-TESTS.md), on the evaluation data.

String checks (mixed nulls, mixed types, string mismatch, special characters) work on the distinct
values of a column with their counts, so a categorical column costs a handful of string
operations whatever the number of rows. Duplicates and conflicting labels are measured as the
excess over the reference at the same size: low-cardinality data repeats rows naturally.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from kilele_stress import stats
from kilele_stress.context import Context
from kilele_stress.core import Category, Thresholds, register
from kilele_stress.data import ColumnType, as_text, is_blank, is_null_word, is_text, looks_numeric
from kilele_stress.impact import excess_share
from kilele_stress.profile import (category_codes, correlation, distinct_values, label_mutual_information,
                                   numeric_matrix, value_counts)

CAT = Category.DATA_CLEANLINESS


def _text_columns(ctx: Context) -> list[str]:
    return [c for c in ctx.features if c in ctx.eval_raw.columns and is_text(ctx.eval_raw[c])]


def _distinct_eval(ctx: Context, col: str) -> tuple[pd.Series, np.ndarray]:
    """Distinct raw evaluation values of a column and their row counts (cached)."""
    return distinct_values(ctx, "eval_raw", col)


def _squash(values: pd.Series) -> np.ndarray:
    """Values lower-cased with everything but letters and digits removed ("New York " → "newyork")."""
    return as_text(values).str.lower().str.replace(r"[\W_]+", "", regex=True).to_numpy(dtype=object)


def _row_hashes(ctx: Context, which: str) -> np.ndarray:
    """One 64-bit hash per row of the features (cached; the duplicate and conflict tests share it)."""
    def build() -> np.ndarray:
        frame = ctx.ref if which == "ref" else ctx.eval
        cols = [c for c in ctx.features if c in ctx.ref.columns]
        return pd.util.hash_pandas_object(frame[cols], index=False).to_numpy()
    return ctx.cached(("row_hashes", which), build)


@register(key="required_features", name="Required Features", category=CAT, thresholds=[0, 0, 0], min_rows=0,
          params={"extra_thresholds": [0, None, None]})
def required_features(ctx: Context):
    """Columns of the reference missing from the evaluation data (HIGH) or extra in it (LOW)."""
    expected = list(ctx.schema)
    special = {ctx.label_col, ctx.pred_col, ctx.timestamp_col}
    missing = [c for c in expected if c not in ctx.eval_raw.columns]
    extra = [c for c in ctx.eval_raw.columns if c not in ctx.schema and c not in special]
    reason = "; ".join(filter(None, [f"missing: {missing}" if missing else "",
                                     f"extra: {extra}" if extra else ""]))
    yield ctx.case(missing + extra, {"missing_features": len(missing), "extra_features": len(extra)},
                   grade_on={"missing_features": ctx.thresholds,
                             "extra_features": Thresholds.from_value(ctx.params["extra_thresholds"])},
                   reason=reason, details={"missing": missing, "extra": extra})


@register(key="duplicate_rows", name="Duplicate Rows", category=CAT, thresholds=[0.01, 0.05, 0.2],
          params={"alpha": 0.05})
def duplicate_rows(ctx: Context):
    """Share of evaluation rows that repeat an earlier row (beyond the reference's share)."""
    hashes = {}
    with_label = ctx.y_ref is not None and ctx.y_eval is not None
    for which, y in (("ref", ctx.y_ref), ("eval", ctx.y_eval)):
        h = _row_hashes(ctx, which)
        if with_label:  # the label is part of the row
            h = h * np.uint64(0x9E3779B97F4A7C15) + pd.util.hash_array(np.asarray(y))
        hashes[which] = h
    n = min(len(ctx.ref), len(ctx.eval))
    shares = {}
    for which, h in hashes.items():
        positions = ctx.sample_positions(len(h), n, f"{which} rows compared at the size of the smaller frame")
        shares[which] = float(pd.Series(h if positions is None else h[positions]).duplicated().mean())
    full = pd.Series(hashes["eval"]).duplicated().to_numpy()
    excess = excess_share(ctx, shares["eval"], n, shares["ref"], n, cases=1)
    yield ctx.case([], {"duplicate_share": excess, "eval_duplicate_share": float(full.mean()),
                        "reference_duplicate_share": shares["ref"], "duplicate_rows": float(full.sum())},
                   reason="duplicate share beyond the reference's (same number of rows)", affected=full)


@register(key="single_value_column", name="Single-Value Column", category=CAT,
          thresholds=[1, None, None], higher_is_worse=False)
def single_value_column(ctx: Context):
    """A feature with at most one distinct value in the evaluation data (WARNING)."""
    x = numeric_matrix(ctx, "eval")
    with np.errstate(invalid="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lo, hi = np.nanmin(x, axis=0), np.nanmax(x, axis=0)
    numeric_distinct = {c: (0 if np.isnan(lo[j]) else 1 if lo[j] == hi[j] else 2)
                        for j, c in enumerate(ctx.numeric_features)}
    for col in ctx.features:
        if col in numeric_distinct:
            distinct = numeric_distinct[col]  # 2 stands for "more than one": enough to grade
        else:
            distinct = int(ctx.eval[col].nunique(dropna=True))
        yield ctx.case([col], {"distinct_values": distinct})


@register(key="mixed_nulls", name="Mixed Nulls", category=CAT, thresholds=[2, 3, 4])
def mixed_nulls(ctx: Context):
    """Number of different spellings of "missing" ('', 'NA', 'null', 'None', NaN…) in a column."""
    cols = _text_columns(ctx)
    if not cols:
        yield ctx.skip([], "no text columns in the evaluation data")
        return
    for col in cols:
        values, _ = _distinct_eval(ctx, col)
        spelled = values[is_null_word(values) | is_blank(values)]
        found = [repr(v) for v in spelled] + (["NaN"] if ctx.eval_raw[col].isna().any() else [])
        yield ctx.case([col], {"null_spellings": len(found)}, details={"spellings": found})


@register(key="mixed_data_types", name="Mixed Data Types", category=CAT, thresholds=[0.01, 0.05, 0.1])
def mixed_data_types(ctx: Context):
    """Share of the minority type (numbers vs words) among a text column's values."""
    cols = _text_columns(ctx)
    if not cols:
        yield ctx.skip([], "no text columns in the evaluation data")
        return
    for col in cols:
        values, counts = _distinct_eval(ctx, col)
        real = ~is_null_word(values) & ~is_blank(values)
        number = looks_numeric(values) & real
        n_num, n_text = counts[number].sum(), counts[real & ~number].sum()
        total = n_num + n_text
        minority = float(min(n_num, n_text) / total) if total else 0.0
        yield ctx.case([col], {"minority_type_share": minority, "number_share": n_num / total if total else 0.0},
                       details={"numbers": int(n_num), "words": int(n_text)})


def _string_columns(ctx: Context) -> list[str]:
    """Categorical text columns: spelling variants and symbol-only values are category problems
    (free text has countless spellings by nature, and checking it would cost a pass per row)."""
    return [c for c in _text_columns(ctx) if ctx.schema.get(c) in (ColumnType.CATEGORICAL, ColumnType.BOOLEAN)]


@register(key="string_mismatch", name="String Mismatch", category=CAT, thresholds=[0, 0.01, 0.05])
def string_mismatch(ctx: Context):
    """Rows spelling a value differently (case, spaces, punctuation) from its usual spelling."""
    cols = _string_columns(ctx)
    if not cols:
        yield ctx.skip([], "no text columns in the evaluation data")
        return
    for col in cols:
        values, counts = _distinct_eval(ctx, col)
        ev = pd.Series(counts, index=pd.Index(values))
        ref = value_counts(ctx, "ref", col) if is_text(ctx.ref[col]) else pd.Series(dtype=float)
        # The usual spelling of a value: the reference's most frequent, else the evaluation's.
        both = pd.concat([pd.DataFrame({"n_ref": ref, "n_eval": 0.0}), pd.DataFrame({"n_ref": 0.0, "n_eval": ev})])
        both = both.groupby(level=0).sum()
        keys = pd.Series(both.index, dtype=object)
        is_str = keys.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
        both, keys = both[is_str], keys[is_str]
        both["form"] = _squash(keys.astype("str"))
        both = both[(both["form"] != "") & ~is_null_word(keys.astype("str"))]
        both = both.sort_values(["n_ref", "n_eval"], ascending=False)
        variants = both[both.duplicated("form", keep="first")]
        rows = float(variants["n_eval"].sum())
        n = len(ctx.eval_raw)
        yield ctx.case([col], {"mismatch_share": rows / n if n else 0.0, "mismatch_rows": rows},
                       details={"variants": [str(v) for v in variants.index[variants["n_eval"] > 0][:10]]})


@register(key="special_characters", name="Special Characters", category=CAT, thresholds=[0.001, 0.01, 0.05])
def special_characters(ctx: Context):
    """Share of values made only of symbols ('?', '#', '---')."""
    cols = _string_columns(ctx)
    if not cols:
        yield ctx.skip([], "no text columns in the evaluation data")
        return
    for col in cols:
        values, counts = _distinct_eval(ctx, col)
        stripped = as_text(values).str.strip()
        symbols = ((stripped.str.len() > 0).fillna(False).to_numpy(dtype=bool)
                   & (_squash(values) == "") & stripped.notna().to_numpy())
        rows = float(counts[symbols].sum())
        n = len(ctx.eval_raw)
        yield ctx.case([col], {"special_share": rows / n if n else 0.0, "special_rows": rows},
                       details={"examples": [str(v) for v in values[symbols][:10]]})


def _conflicts(keys: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Rows whose feature hash also occurs with another label."""
    df = pd.DataFrame({"k": keys, "y": labels})
    known = df["y"].to_numpy() >= 0
    n_labels = df[known].groupby("k")["y"].transform("nunique")
    out = np.zeros(len(df), dtype=bool)
    out[np.flatnonzero(known)[n_labels.to_numpy() > 1]] = True
    return out


@register(key="conflicting_labels", name="Conflicting Labels", category=CAT, thresholds=[0, 0.01, 0.05],
          requires={"labels"}, params={"alpha": 0.05})
def conflicting_labels(ctx: Context):
    """Rows with identical features but different labels (beyond the reference's share)."""
    if not ctx.is_classification:
        yield ctx.skip([], "regression: identical rows with different targets are noise, not a conflict")
        return
    n = min(len(ctx.ref), len(ctx.eval))
    shares = {}
    full = None
    for which, y in (("ref", ctx.y_ref), ("eval", ctx.y_eval)):
        h = _row_hashes(ctx, which)
        positions = ctx.sample_positions(len(h), n, f"{which} rows compared at the size of the smaller frame")
        flags = _conflicts(h, y) if positions is None else _conflicts(h[positions], y[positions])
        shares[which] = float(flags.mean())
        if which == "eval":
            full = flags if positions is None else _conflicts(h, y)
    yield ctx.case([], {"conflict_share": excess_share(ctx, shares["eval"], n, shares["ref"], n, cases=1),
                        "eval_conflict_share": float(full.mean()), "reference_conflict_share": shares["ref"]},
                   reason="conflicting share beyond the reference's (same number of rows)", affected=full)


@register(key="label_imbalance", name="Label Imbalance", category=CAT, thresholds=[0.6, 0.75, 0.9],
          requires={"labels"})
def label_imbalance(ctx: Context):
    """Share of the largest class among the evaluation labels."""
    if not ctx.is_classification:
        yield ctx.skip([ctx.label_col], "regression: no classes")
        return
    y = ctx.y_eval[ctx.y_eval >= 0]
    counts = np.bincount(y, minlength=len(ctx.classes))
    ref_counts = np.bincount(ctx.y_ref[ctx.y_ref >= 0], minlength=len(ctx.classes))
    yield ctx.case([ctx.label_col], {"largest_class_share": counts.max() / max(counts.sum(), 1),
                                     "reference_largest_class_share": ref_counts.max() / max(ref_counts.sum(), 1)},
                   details=stats.binned_distribution(ref_counts, counts, ctx.classes))


def _report_pairs(ctx: Context, pairs: list[tuple[str, str, float, str]], metric: str):
    """One case per pair at or above the low threshold (the worst ``max_cases``), else one PASS."""
    flagged = sorted((p for p in pairs if ctx.thresholds.level(p[2]) > 0), key=lambda p: -p[2])
    limit = int(ctx.params["max_cases"])
    for a, b, value, how in flagged[:limit]:
        yield ctx.case([a, b], {metric: value}, reason=how)
    if len(flagged) > limit:
        yield ctx.case([], {metric: flagged[limit][2]}, reason=f"{len(flagged) - limit} more pairs not listed")
    if not flagged:
        worst = max(pairs, key=lambda p: p[2], default=("", "", 0.0, ""))
        yield ctx.case([], {metric: worst[2], "pairs": float(len(pairs))}, reason="every feature pair")


@register(key="high_feature_correlation", name="High Feature Correlation", category=CAT,
          thresholds=[0.7, 0.8, 0.9], params={"max_cases": 20, "max_categorical": 30})
def high_feature_correlation(ctx: Context):
    """|Pearson r| of numeric pairs and Cramér's V of categorical pairs in the evaluation data."""
    pairs: list[tuple[str, str, float, str]] = []
    cols = ctx.numeric_features
    if len(cols) > 1:
        r = np.abs(correlation(ctx, "eval"))
        iu = np.triu_indices(len(cols), 1)
        pairs += [(cols[i], cols[j], float(r[i, j]), "Pearson") for i, j in zip(*iu) if np.isfinite(r[i, j])]
    cats = ctx.categorical_features[: int(ctx.params["max_categorical"])]
    codes = {c: category_codes(ctx, c) for c in cats}
    for i, a in enumerate(cats):
        for b in cats[i + 1:]:
            ka, kb = codes[a].n_codes, codes[b].n_codes
            table = np.bincount(codes[a].eval * kb + codes[b].eval, minlength=ka * kb).reshape(ka, kb)
            pairs.append((a, b, stats.cramers_v(table), "Cramér's V"))
    if not pairs:
        yield ctx.skip([], "fewer than two numeric or two categorical features")
        return
    yield from _report_pairs(ctx, pairs, "correlation")


@register(key="feature_label_leakage", name="Feature-Label Leakage", category=CAT, thresholds=[0.7, 0.8, 0.9],
          requires={"labels"}, params={"bins": 10})
def feature_label_leakage(ctx: Context):
    """Share of the label's entropy a single feature explains (MI / H(label))."""
    bins = int(ctx.params["bins"])
    for col in ctx.numeric_features + ctx.categorical_features:
        mi, _, hy = label_mutual_information(ctx, "eval", col, bins)
        yield ctx.case([col], {"label_entropy_explained": mi / hy if hy > 0 else 0.0, "mutual_information": mi})
