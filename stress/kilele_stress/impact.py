"""Prevalence and impact of abnormal rows (STRESS-TESTS.md, "Severity rule").

*Prevalence* is the share of evaluation rows a test flags. Where data like the reference has such
rows too (outliers, rare categories, inconsistent pairs; values out of the reference's range or
unseen categories, which new rows of the same distribution bring by chance) it is the *excess*
over that expected share: rows as common as that are how the data is, not a fault.

*Impact* is what the flagged rows cost the model, compared with the clean rows:

* labels and predictions: the drop of accuracy (classification), or the rise of the absolute
  error in units of the reference's mean absolute deviation (regression);
* predictions only: the change of the average prediction (binary: probability; multi-class:
  total variation of the mean probabilities; regression: in reference prediction std units);
* no model and no predictions: not measured (prevalence only, the case says so).

Small groups are noisy: impact is only measured on at least ``min_impact_rows`` flagged rows,
and a change that is not significant (``alpha``, Bonferroni over the test's features) counts as
none: the verdict rests on the effect size, significance only gates it. The same gate applies to
an excess prevalence.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np
from scipy.stats import norm

from kilele_stress.context import Context
from kilele_stress.core import Severity, Status, TestCase
from kilele_stress.model import ModelError

#: Params every prevalence-and-impact test takes (overridable in tests_config). ``alpha`` is the
#: significance level of the impact and excess gates, Bonferroni-corrected over the test's features.
IMPACT_PARAMS = {"min_impact_rows": 20, "alpha": 0.05}


def gate_z(ctx: Context, cases: Optional[int] = None) -> float:
    """The z a change must exceed: two-sided ``alpha`` over ``cases`` simultaneous cases (default:
    one per feature), so a test over 50 untouched columns does not flag one by chance."""
    m = max(int(cases if cases is not None else len(ctx.features)), 1)
    return float(norm.isf(float(ctx.params.get("alpha", IMPACT_PARAMS["alpha"])) / (2 * m)))


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
    z = gate_z(ctx)
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


#: Rows a probe sends to a model that failed on the whole evaluation frame.
PROBE_ROWS = 20


def model_fails_on(ctx: Context, affected: np.ndarray) -> Optional[str]:
    """Why the model raises on the flagged rows, when it failed on the evaluation frame as a
    whole but works on clean rows (a model exception caused by abnormal inputs is HIGH); None
    otherwise. Calls the model on at most ``PROBE_ROWS`` clean and ``PROBE_ROWS`` flagged rows
    (the first ones: bounded, no sampling)."""
    if ctx.model is None or ctx.eval_pred is not None or not affected.any():
        return None

    def works(positions: np.ndarray) -> Optional[str]:
        try:
            ctx.predict(ctx.model_input(ctx.eval_raw.iloc[positions]))
        except ModelError as e:
            return str(e)
        return None
    clean_ok = ctx.cached("probe_clean_rows", lambda: works(np.flatnonzero(~affected)[:PROBE_ROWS]) is None)
    if not clean_ok:
        return None  # it fails on clean rows too: not these inputs' doing
    return works(np.flatnonzero(affected)[:PROBE_ROWS])


def nan_predictions(ctx: Context, affected: np.ndarray) -> Optional[str]:
    """Why the model's predictions are missing (NaN) on flagged rows more than on clean ones —
    a model that gives no answer for these inputs fails on them (HIGH); None otherwise."""
    if ctx.eval_pred is None or not affected.any():
        return None
    pred = ctx.eval_pred
    missing = np.isnan(pred).any(axis=1) if pred.ndim == 2 else np.isnan(pred)
    n_bad = int(missing[affected].sum())
    clean_share = float(missing[~affected].mean()) if (~affected).any() else 0.0
    if n_bad and n_bad / affected.sum() - clean_share > 0.01:
        return f"the model returns NaN for {n_bad} of the {int(affected.sum())} flagged rows"
    return None


def excess_share(ctx: Context, eval_share: float, n_eval: int, ref_share: float, n_ref: int,
                 cases: Optional[int] = None) -> float:
    """Evaluation share beyond the reference's; 0 unless significant (:func:`gate_z`)."""
    z = gate_z(ctx, cases)
    se = np.sqrt(eval_share * (1 - eval_share) / max(n_eval, 1) + ref_share * (1 - ref_share) / max(n_ref, 1))
    excess = eval_share - ref_share
    return float(excess) if excess > z * float(se) else 0.0


def prevalence_impact_case(ctx: Context, features: Sequence[str], affected: np.ndarray, *,
                           ref_affected: Optional[np.ndarray] = None, expected_share: Optional[float] = None,
                           expected_rows: int = 0, details: Optional[Mapping[str, Any]] = None,
                           reason: str = "", extra_metrics: Optional[Mapping[str, float]] = None) -> TestCase:
    """A case graded on prevalence and impact, the higher of the two levels.

    ``affected``: bool mask of flagged evaluation rows. Where clean data has such rows too, the
    prevalence is the excess over what is expected (and impact is only measured when there is
    a significant excess): ``ref_affected``, the same rule applied to the reference; or
    ``expected_share`` estimated from ``expected_rows`` reference rows (e.g. 2 / (n + 1) of new
    values fall outside the range of n values from the same distribution).
    """
    affected = np.asarray(affected, dtype=bool)
    n_eval = len(affected)
    share = float(affected.mean()) if n_eval else 0.0
    metrics: dict[str, float] = {"prevalence": share, "affected_rows": float(affected.sum())}
    notes = [reason] if reason else []
    measure_impact = affected.any()
    if ref_affected is not None:
        expected_share = float(np.mean(ref_affected)) if len(ref_affected) else 0.0
        expected_rows = len(ref_affected)
    if expected_share is not None:
        metrics["prevalence"] = excess_share(ctx, share, n_eval, expected_share, expected_rows)
        metrics.update(eval_share=share, expected_share=expected_share)
        if metrics["prevalence"] == 0 and share > 0:
            notes.append("no more common than in data like the reference (prevalence is the excess)")
            measure_impact = False
    if measure_impact:
        value, estimate, how = impact(ctx, affected)
        metrics.update(impact=value, impact_estimate=estimate)
        notes.append(how)
    else:
        metrics.update(impact=float("nan"), impact_estimate=float("nan"))
    metrics.update(extra_metrics or {})
    error = (model_fails_on(ctx, affected) or nan_predictions(ctx, affected)) if measure_impact else None
    if error:
        notes = [n for n in notes if not n.startswith("prevalence only")] + [f"the model fails on these rows: {error}"]
    case = ctx.case(features, metrics, grade_on={"prevalence": ctx.thresholds, "impact": ctx.impact_thresholds},
                    reason="; ".join(notes), details=details, affected=affected if affected.any() else None)
    if error:  # a model exception is HIGH
        case.severity, case.status, case.importance_score = Severity.HIGH, Status.FAIL, 1.0
    return case
