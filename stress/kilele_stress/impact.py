"""Prevalence and impact of abnormal rows (STRESS-TESTS.md, "Severity rule").

*Prevalence* is the share of evaluation rows a test flags. For tests whose reference can hold
such rows too (outliers, rare categories, inconsistent pairs) it is the *excess* over the
reference's share: rows as common as in the reference are how the data is, not a fault.

*Impact* is what the flagged rows cost the model, compared with the clean rows:

* labels and predictions: the drop of accuracy (classification), or the rise of the absolute
  error in units of the reference's mean absolute deviation (regression);
* predictions only: the change of the average prediction (binary: probability; multi-class:
  total variation of the mean probabilities; regression: in reference prediction std units);
* no model and no predictions: not measured (prevalence only, the case says so).

Small groups are noisy: impact is only measured on at least ``min_impact_rows`` flagged rows,
and a change within ``z`` standard errors of zero counts as none (the verdict rests on the
effect size, significance only gates it). The same gate applies to an excess prevalence.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from kilele_stress.context import Context
from kilele_stress.core import TestCase

#: Params every prevalence-and-impact test takes (overridable in tests_config).
IMPACT_PARAMS = {"min_impact_rows": 20, "z": 1.96}


def _row_scores(ctx: Context) -> Optional[np.ndarray]:
    """Per evaluation row: how good the model was (higher is better; NaN where unknown)."""
    def build() -> Optional[np.ndarray]:
        if not (ctx.has_labels() and ctx.has_predictions()):
            return None
        pred, y = ctx.eval_pred, ctx.y_eval
        if ctx.is_classification:
            guess = pred.argmax(axis=1) if pred.ndim == 2 else (pred >= 0.5).astype(int)
            known = (y >= 0) & ~(np.isnan(pred).any(axis=1) if pred.ndim == 2 else np.isnan(pred))
            return np.where(known, (guess == y).astype(float), np.nan)
        scale = np.nanmean(np.abs(ctx.y_ref - np.nanmean(ctx.y_ref))) or 1.0
        return -np.abs(y - pred) / scale
    return ctx.cached("impact_row_scores", build)


def _pred_matrix(ctx: Context) -> Optional[np.ndarray]:
    """Evaluation predictions as ``(n, k)`` in comparable units (see the module's docstring)."""
    def build() -> Optional[np.ndarray]:
        if not ctx.has_predictions():
            return None
        pred = ctx.eval_pred
        if pred.ndim == 2:
            return pred
        if ctx.is_classification:
            return pred.reshape(-1, 1)
        scale = np.nanstd(ctx.ref_pred) or 1.0
        return (pred / scale).reshape(-1, 1)
    return ctx.cached("impact_pred_matrix", build)


def _mean_diff(values: np.ndarray, affected: np.ndarray) -> tuple[float, float, int]:
    """(mean of clean − mean of affected, its standard error, affected rows used)."""
    ok = ~np.isnan(values)
    a, c = values[affected & ok], values[~affected & ok]
    if len(a) == 0 or len(c) == 0:
        return float("nan"), float("nan"), len(a)
    binary = np.isin(values[ok], (0.0, 1.0)).all()
    if binary:
        # Agresti–Coull-style variance: a group with 0 errors still has some uncertainty.
        pa, pc = (a.sum() + 1) / (len(a) + 2), (c.sum() + 1) / (len(c) + 2)
        var_a, var_c = pa * (1 - pa), pc * (1 - pc)
    else:
        var_a, var_c = np.var(a, ddof=1) if len(a) > 1 else np.var(c), np.var(c)
    return float(c.mean() - a.mean()), float(np.sqrt(var_a / len(a) + var_c / max(len(c), 1))), len(a)


def impact(ctx: Context, affected: np.ndarray) -> tuple[float, float, str]:
    """(impact graded, point estimate, how it was measured or why not) of the flagged rows."""
    n = int(affected.sum())
    z = float(ctx.params.get("z", IMPACT_PARAMS["z"]))
    minimum = int(ctx.params.get("min_impact_rows", IMPACT_PARAMS["min_impact_rows"]))
    if not ctx.has_predictions():
        why = ctx.model_error or "no model and no predictions"
        return float("nan"), float("nan"), f"prevalence only: {why}"
    if n < minimum:
        return float("nan"), float("nan"), f"prevalence only: impact needs at least {minimum} flagged rows"
    scores = _row_scores(ctx)
    if scores is not None:
        drop, se, used = _mean_diff(scores, affected)
        if used < minimum:
            return float("nan"), float("nan"), f"prevalence only: {used} flagged rows have a label"
        how = "drop of accuracy" if ctx.is_classification else "rise of the absolute error (in mean abs. deviations)"
        graded = drop if drop > z * se else 0.0
        return graded, drop, f"impact: {how} on flagged rows vs clean rows"
    preds = _pred_matrix(ctx)
    diffs = [_mean_diff(preds[:, j], affected) for j in range(preds.shape[1])]
    diffs = [(abs(d), se) for d, se, _ in diffs if np.isfinite(d)]
    if not diffs:
        return float("nan"), float("nan"), "prevalence only: no predictions on flagged rows"
    # Multi-class: total variation distance of the mean probability vectors.
    factor = 0.5 if preds.shape[1] > 1 else 1.0
    point = factor * sum(d for d, _ in diffs)
    significant = any(d > z * se for d, se in diffs)
    return (point if significant else 0.0), point, "impact: change of the average prediction (no labels)"


def excess_share(ctx: Context, eval_share: float, n_eval: int, ref_share: float, n_ref: int) -> float:
    """Evaluation share beyond the reference's; 0 unless it exceeds ``z`` standard errors."""
    z = float(ctx.params.get("z", IMPACT_PARAMS["z"]))
    se = np.sqrt(eval_share * (1 - eval_share) / max(n_eval, 1) + ref_share * (1 - ref_share) / max(n_ref, 1))
    excess = eval_share - ref_share
    return float(excess) if excess > z * float(se) else 0.0


def prevalence_impact_case(ctx: Context, features: Sequence[str], affected: np.ndarray, *,
                           ref_affected: Optional[np.ndarray] = None, details: Optional[Mapping[str, Any]] = None,
                           reason: str = "", extra_metrics: Optional[Mapping[str, float]] = None) -> TestCase:
    """A case graded on prevalence and impact, the higher of the two levels.

    ``affected``: bool mask of flagged evaluation rows. ``ref_affected``: the same rule applied
    to the reference, for tests where the reference can hold such rows (prevalence becomes the
    excess over it, and impact is only measured when there is an excess).
    """
    affected = np.asarray(affected, dtype=bool)
    n_eval = len(affected)
    share = float(affected.mean()) if n_eval else 0.0
    metrics: dict[str, float] = {"prevalence": share, "affected_rows": float(affected.sum())}
    notes = [reason] if reason else []
    measure_impact = affected.any()
    if ref_affected is not None:
        ref_share = float(np.mean(ref_affected)) if len(ref_affected) else 0.0
        metrics["prevalence"] = excess_share(ctx, share, n_eval, ref_share, len(ref_affected))
        metrics.update(eval_share=share, reference_share=ref_share)
        if metrics["prevalence"] == 0 and share > 0:
            notes.append("as common as in the reference (prevalence is the excess over it)")
            measure_impact = False
    if measure_impact:
        value, estimate, how = impact(ctx, affected)
        metrics.update(impact=value, impact_estimate=estimate)
        notes.append(how)
    else:
        metrics.update(impact=float("nan"), impact_estimate=float("nan"))
    metrics.update(extra_metrics or {})
    return ctx.case(features, metrics, grade_on={"prevalence": ctx.thresholds, "impact": ctx.impact_thresholds},
                    reason="; ".join(notes), details=details, affected=affected if affected.any() else None)
