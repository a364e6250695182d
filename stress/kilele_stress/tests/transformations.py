"""Transformations (#40, #41 of STRESS-TESTS.md): the model on corrupted copies of clean rows.

Both tests take up to ``rows`` clean evaluation rows (no null, no value of the wrong type in the
model's features; a seeded sample, recorded, when there are more) and call the model in
batches: one call per corruption kind over every feature and row at once. Only when that call
fails is each feature's part called alone, to name the features the model fails on (a model
error on a corruption is HIGH, the error in the case).

**Substitutions (#40)** put one corruption in one feature of every row: a null, an unseen
category, an out-of-range number, a value of the wrong type, the case changed, an empty
string (an out-of-range value is ``out_of_range_factor`` of the reference range above its
maximum). A corrupted value carries no information, so the model cannot be asked to keep its
prediction; it is asked to answer *as it would for some plausible value*: each row's prediction
under corruption is compared with its predictions for the feature's reference values (``grid``
quantiles of a numeric feature, its ``grid`` most common values otherwise), the *envelope*. The
graded metric is the mean distance by which predictions leave that envelope (probability units;
regression: the span of the reference predictions, 1st to 99th percentile), the higher of the
corruption kinds; a NaN prediction counts as a failure to answer (its share is graded the same
way). An out-of-range value may carry the prediction on as far as the same distance inside the
range does (a linear model extrapolating is fine; one that explodes is not). Also reported: the
plain change of the prediction and, with labels, of the accuracy / absolute error.

**Numeric Perturbation Invariance (#41)**: the share of predictions that flip (class; for
regression a change beyond ``tolerance`` of that span) under ×1.01,
×0.99 and noise of 1% of the feature's reference standard deviation, one numeric feature at a
time; graded at its lower confidence bound (Wilson, one-sided ``alpha`` Bonferroni over the
features and kinds), so a handful of flips among a few hundred rows is not a finding.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np
import pandas as pd

from kilele_stress.context import Context
from kilele_stress.core import Category, register
from kilele_stress.data import ColumnType, is_text
from kilele_stress.profile import numeric_bins, reference_quantiles, reference_ranges, value_counts
from kilele_stress.tests.model_batches import (as_matrix, batched, clean_rows, is_integral, model_features,
                                               prediction_scale, with_error)
from kilele_stress.tests.performance import guesses, one_sided_z

CAT = Category.TRANSFORMATIONS
UNSEEN = "kilele-unseen-value"
WRONG_WORD = "not-a-number"
KINDS = ("null", "unseen_category", "out_of_range", "wrong_type", "case_change", "empty_string")


# --- #40 ---------------------------------------------------------------------------------------------
def _numeric_grid(ctx: Context, size: int) -> np.ndarray:
    """``(size, f)`` reference quantiles 0, 1/(size-1), …, 1 of every numeric feature (one call;
    11 points reuse the drift tests' deciles and the reference range)."""
    def build() -> np.ndarray:
        rng = reference_ranges(ctx)
        if size == 11:
            inner = numeric_bins(ctx, 10).edges
        else:
            inner = reference_quantiles(ctx, tuple(round(float(q), 12) for q in np.linspace(0, 1, size)[1:-1]))
        return np.vstack([rng["min"][None, :], inner.reshape(-1, len(rng["min"])), rng["max"][None, :]])
    return ctx.cached(("transform_grid", int(size)), build)


def grid_values(ctx: Context, col: str, size: int) -> list:
    """Plausible values of a feature: reference quantiles (min and max included), or its most
    common values."""
    if col in ctx.numeric_features:
        q = _numeric_grid(ctx, max(int(size), 2))[:, ctx.numeric_features.index(col)]
        q = np.unique(q[~np.isnan(q)])
        return list(np.unique(np.round(q)) if is_integral(ctx, col) else q)
    return list(value_counts(ctx, "ref", col).index[:size])


def _beyond_range(ctx: Context, col: str, factor: float) -> Optional[tuple[float, float, float]]:
    """(reference max, the value as far inside it, a value ``factor`` of the range above it)."""
    rng = reference_ranges(ctx)
    j = ctx.numeric_features.index(col)
    lo, hi = float(rng["min"][j]), float(rng["max"][j])
    if not np.isfinite(hi):
        return None
    width = hi - lo if hi > lo else max(abs(hi), 1.0)
    outside = float(np.ceil(hi + factor * width)) if is_integral(ctx, col) else hi + factor * width
    return hi, hi - (outside - hi), outside


def _corruptions(ctx: Context, col: str, base: pd.DataFrame, factor: float) -> dict[str, Any]:
    """Corruption kind → the values ``col`` takes in the corrupted copy of the base rows."""
    kind = ctx.schema[col]
    text = kind in (ColumnType.CATEGORICAL, ColumnType.TEXT) and is_text(ctx.ref[col])
    out: dict[str, Any] = {"null": np.nan if kind == ColumnType.NUMERIC else None}
    if kind == ColumnType.NUMERIC:
        beyond = _beyond_range(ctx, col, factor)
        if beyond is not None:
            out["out_of_range"] = beyond[2]
        out["wrong_type"] = WRONG_WORD
    elif kind in (ColumnType.CATEGORICAL, ColumnType.TEXT):
        if text:
            out["unseen_category"] = UNSEEN
            out["wrong_type"] = 12345
            original = base[col].to_numpy(dtype=object)
            swapped = np.array([v.swapcase() if isinstance(v, str) else v for v in original], dtype=object)
            if (swapped != original).any():
                out["case_change"] = swapped
            out["empty_string"] = ""
        else:
            values = pd.to_numeric(ctx.ref[col], errors="coerce")
            out["unseen_category"] = (float(values.max()) if values.notna().any() else 0.0) + 1
            out["wrong_type"] = WRONG_WORD
    elif kind == ColumnType.BOOLEAN:
        out["wrong_type"] = "maybe"
    return out


def _envelope(ctx: Context, base: pd.DataFrame, base_pred: np.ndarray, cols: list[str], size: int, factor: float
              ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per feature: ``(low, high)`` ``(rows, k)`` of the predictions over its plausible values, and
    how far the prediction may go on past the reference maximum: its change over the same
    distance inside the range (the trend continued; zeros for a non-numeric feature)."""
    parts, owners = [], []
    for col in cols:
        values = grid_values(ctx, col, size)
        beyond = _beyond_range(ctx, col, factor) if col in ctx.numeric_features else None
        if beyond is not None:
            values += [beyond[0], beyond[1]]
        for i, value in enumerate(values):
            parts.append((f"{col}\x00{i}", col, value))
            owners.append(col)
    preds, _ = batched(ctx, base, parts)
    bp = as_matrix(base_pred)
    env: dict[str, list[np.ndarray]] = {c: [bp] for c in cols}
    for (name, _, _), col in zip(parts, owners):
        if name in preds:
            env[col].append(as_matrix(preds[name]))
    out = {}
    for col, found in env.items():
        stack = np.stack(found)
        trend = np.zeros_like(bp)
        if col in ctx.numeric_features and len(found) >= 3:  # the last two: the maximum, and inside it
            trend = np.nan_to_num(np.abs(found[-2] - found[-1]))
        out[col] = (np.nanmin(stack, axis=0), np.nanmax(stack, axis=0), trend)
    return out


@register(key="substitutions", name="Substitutions", category=CAT, thresholds=[0.01, 0.05, 0.1],
          requires={"model"}, params={"rows": 100, "grid": 11, "out_of_range_factor": 0.1, "min_clean_rows": 10,
                                      "kinds": list(KINDS)})
def substitutions(ctx: Context):
    """Predictions on clean rows with one corrupted feature, against those for plausible values."""
    p = ctx.params
    cols = model_features(ctx)
    rows = clean_rows(ctx, int(p["rows"]), "substitutions: clean evaluation rows to corrupt")
    if not cols or len(rows) < int(p["min_clean_rows"]):
        yield ctx.skip([], f"fewer than {p['min_clean_rows']} evaluation rows without nulls or wrong-typed values")
        return
    base = ctx.model_input(ctx.eval_raw.iloc[rows]).reset_index(drop=True)
    base_pred = ctx.predict(base)
    scale = prediction_scale(ctx, base_pred)
    factor = float(p["out_of_range_factor"])
    kinds = [k for k in KINDS if k in set(p["kinds"])]
    plans = {c: {k: f for k, f in _corruptions(ctx, c, base, factor).items() if k in kinds} for c in cols}
    env = _envelope(ctx, base, base_pred, cols, int(p["grid"]), factor)
    results: dict[str, dict[str, Any]] = {c: {} for c in cols}
    errors: dict[str, dict[str, str]] = {c: {} for c in cols}
    for kind in kinds:
        parts = [(c, c, plans[c][kind]) for c in cols if kind in plans[c]]
        preds, errs = batched(ctx, base, parts)
        for c, e in errs.items():
            errors[c][kind] = e
        for c, pred in preds.items():
            results[c][kind] = pred
    y = ctx.y_eval[rows] if ctx.has_labels() else None
    for col in cols:
        yield _substitution_case(ctx, col, results[col], errors[col], env[col], base_pred, y, scale)


def _quality(ctx: Context, pred: np.ndarray, y: Optional[np.ndarray]) -> float:
    """Accuracy (classification) or mean absolute error (regression) on labelled rows."""
    if y is None:
        return float("nan")
    known = (y >= 0) if ctx.is_classification else ~np.isnan(y)
    if not known.any():
        return float("nan")
    if ctx.is_classification:
        return float(np.mean(guesses(np.nan_to_num(pred[known])) == y[known]))
    err = np.abs(pred[known] - y[known])
    return float(np.mean(err[~np.isnan(err)])) if (~np.isnan(err)).any() else float("nan")


def _substitution_case(ctx, col, results, errors, envelope, base_pred, y, scale):
    lo, hi, trend = envelope
    graded, kinds, excursions, changes, nan_shares, metric_changes = [], [], [], [], [], []
    base_q = _quality(ctx, base_pred, y)
    bp = as_matrix(base_pred)
    for kind, pred in results.items():
        m = as_matrix(pred)
        nan = np.isnan(m).any(axis=1)
        allowed = trend if kind == "out_of_range" else 0.0
        out = np.maximum(np.maximum(lo - m, m - hi) - allowed, 0.0).max(axis=1) / scale
        kinds.append(kind)
        excursions.append(float(np.mean(out[~nan])) if (~nan).any() else 0.0)
        nan_shares.append(float(nan.mean()))
        changes.append(float(np.mean(np.abs(m - bp).max(axis=1)[~nan]) / scale) if (~nan).any() else float("nan"))
        q = _quality(ctx, pred, y)
        metric_changes.append((base_q - q) if ctx.is_classification else (q - base_q) / scale)
        graded.append(max(excursions[-1], nan_shares[-1]))
    metrics: dict[str, float] = {}
    if graded:
        w = int(np.argmax(graded))
        metrics = {"excursion": graded[w], "prediction_change": changes[w], "nan_share": nan_shares[w]}
        if y is not None:
            metrics["accuracy_drop" if ctx.is_classification else "error_rise"] = metric_changes[w]
        if nan_shares[w] >= excursions[w]:
            reason = f"worst: {kinds[w]} — the model answers NaN for {nan_shares[w]:.0%} of the rows"
        else:
            reason = (f"worst: {kinds[w]} — predictions leave the range of those for plausible values by "
                      f"{excursions[w]:.3g} on average (plain change {changes[w]:.3g})")
    else:
        metrics = {"excursion": float("nan")}
        reason = ""
    failed = [k for k in KINDS if k in errors and k not in results]  # shown too, marked as errors
    case = ctx.case([col], metrics, reason=reason,
                    details={"kinds": {"labels": kinds + failed, "excursion": excursions + [None] * len(failed),
                                       "change": changes + [None] * len(failed),
                                       "nan_share": nan_shares + [None] * len(failed),
                                       "metric_change": metric_changes + [None] * len(failed) if y is not None
                                       else None}})
    return with_error(case, errors)


# --- #41 ---------------------------------------------------------------------------------------------
def wilson_lower(share: np.ndarray, n: int, z: float) -> np.ndarray:
    """Wilson score lower bound of a binomial share."""
    if n == 0:
        return np.zeros_like(share)
    denom = 1 + z ** 2 / n
    centre = share + z ** 2 / (2 * n)
    spread = z * np.sqrt(share * (1 - share) / n + z ** 2 / (4 * n ** 2))
    return np.maximum((centre - spread) / denom, 0.0)


def changed(ctx: Context, base: np.ndarray, pred: np.ndarray, tolerance: float, scale: float) -> np.ndarray:
    """Rows whose prediction flipped (class) or moved beyond ``tolerance`` (regression)."""
    if ctx.is_classification:
        nan = np.isnan(as_matrix(pred)).any(axis=1)
        return (guesses(np.nan_to_num(pred)) != guesses(base)) | nan
    return ~(np.abs(pred - base) <= tolerance * scale)


@register(key="numeric_perturbation", name="Numeric Perturbation Invariance", category=CAT,
          thresholds=[0.01, 0.05, 0.1], requires={"model"},
          params={"rows": 500, "factors": [1.01, 0.99], "noise": 0.01, "tolerance": 0.05, "alpha": 0.05,
                  "min_clean_rows": 10})
def numeric_perturbation(ctx: Context):
    """Share of predictions that flip when one numeric feature is scaled by 1 ± 1% or gets 1% noise."""
    p = ctx.params
    cols = [c for c in model_features(ctx) if c in ctx.numeric_features]
    if not cols:
        yield ctx.skip([], "no numeric features")
        return
    rows = clean_rows(ctx, int(p["rows"]), "numeric perturbation: evaluation rows perturbed")
    if len(rows) < int(p["min_clean_rows"]):
        yield ctx.skip([], f"fewer than {p['min_clean_rows']} evaluation rows without nulls or wrong-typed values")
        return
    base = ctx.model_input(ctx.eval_raw.iloc[rows]).reset_index(drop=True)
    base_pred = ctx.predict(base)
    scale = prediction_scale(ctx, base_pred)
    std = reference_ranges(ctx)["std"]
    values = {c: pd.to_numeric(base[c], errors="coerce").to_numpy(dtype=float) for c in cols}
    kinds: list[tuple[str, Callable[[str], np.ndarray]]] = [
        (f"×{float(f):g}", lambda c, f=float(f): values[c] * f) for f in p["factors"]]
    noise = {c: ctx.rng.normal(0, float(p["noise"]) * float(std[ctx.numeric_features.index(c)]), len(rows))
             for c in cols}
    kinds.append((f"+{float(p['noise']):.0%} noise", lambda c: values[c] + noise[c]))
    flips = {c: {} for c in cols}
    errors: dict[str, dict[str, str]] = {c: {} for c in cols}
    for label, move in kinds:
        preds, errs = batched(ctx, base, [(c, c, move(c)) for c in cols])
        for c, e in errs.items():
            errors[c][label] = e
        for c, pred in preds.items():
            flips[c][label] = float(changed(ctx, base_pred, pred, float(p["tolerance"]), scale).mean())
    z = one_sided_z(float(p["alpha"]), len(cols) * len(kinds))
    what = "class flips" if ctx.is_classification else f"changes beyond {p['tolerance']} of the prediction span"
    for col in cols:
        labels = list(flips[col])
        shares = np.array([flips[col][k] for k in labels])
        if len(shares):
            bound = wilson_lower(shares, len(rows), z)
            w = int(np.argmax(bound))
            metrics = {"flip_share": float(bound[w]), "flip_estimate": float(shares.max()), "rows": float(len(rows))}
            reason = f"{what}: {shares[w]:.1%} under {labels[w]} (judged at its lower bound {bound[w]:.2%})"
        else:
            metrics, reason = {"flip_share": float("nan")}, ""
        case = ctx.case([col], metrics, reason=reason,
                        details={"kinds": {"labels": labels, "flip_share": shares.tolist()}})
        yield with_error(case, errors[col])
