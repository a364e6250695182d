"""Model Performance (#31–#34 of STRESS-TESTS.md): the model's metrics, reference → evaluation.

* Overall Performance: one case per metric of the task (binary: accuracy, AUC, F1; multi-class:
  accuracy, macro F1; regression: RMSE, MAE), graded on the relative drop (for errors, the
  relative rise) from the reference to the evaluation data.
* Beats Dummy: the normalised gain over a trivial model fitted on the reference (the majority
  class; the mean target), ``(score − dummy) / (perfect − dummy)``; lower is worse.
* Calibration Comparison: the rise of the expected calibration error (10 equal-width bins;
  binary: positive-class probability, multi-class: top-label confidence).
* Average Confidence / ATC: Garg et al.'s average thresholded confidence. A confidence threshold
  fitted on the labelled reference (the share of reference rows above it equals the reference
  accuracy) estimates the evaluation accuracy without its labels; graded on the estimated drop.

A change is graded only when it is significant (one-sided, ``alpha`` Bonferroni over the test's
cases); otherwise the case PASSes and says so: the verdict rests on the effect size, a
standard error only gates it. The helpers here (labelled rows, guesses, confidences, metrics with
standard errors) serve the subset and fairness tests too.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import beta, norm, rankdata

from kilele_stress.context import Context
from kilele_stress.core import Category, register
from kilele_stress.data import ModelTask

CAT = Category.MODEL_PERFORMANCE
#: Metric name → higher is better.
HIGHER_IS_BETTER = {"accuracy": True, "auc": True, "f1": True, "rmse": False, "mae": False}
TASK_METRICS = {ModelTask.BINARY: ["accuracy", "auc", "f1"], ModelTask.MULTICLASS: ["accuracy", "f1"],
                ModelTask.REGRESSION: ["rmse", "mae"]}


# --- shared helpers (subsets, fairness) -----------------------------------------------------------
def known_rows(ctx: Context, which: str) -> np.ndarray:
    """Rows of one frame with a label and a prediction (bool mask)."""
    y, pred = (ctx.y_ref, ctx.ref_pred) if which == "ref" else (ctx.y_eval, ctx.eval_pred)
    bad_pred = np.isnan(pred).any(axis=1) if pred.ndim == 2 else np.isnan(pred)
    known = (y >= 0) if ctx.is_classification else ~np.isnan(y)
    return known & ~bad_pred


def guesses(pred: np.ndarray) -> np.ndarray:
    """Predicted class indices: argmax, or positive when the probability is at least 0.5."""
    return pred.argmax(axis=1) if pred.ndim == 2 else (pred >= 0.5).astype(np.int64)


def confidence(pred: np.ndarray) -> np.ndarray:
    """Top-label confidence: the predicted class's probability."""
    return pred.max(axis=1) if pred.ndim == 2 else np.maximum(pred, 1 - pred)


def one_sided_z(alpha: float, cases: int = 1) -> float:
    """The z a change must exceed to be significant (one-sided, Bonferroni over ``cases``)."""
    return float(norm.isf(float(alpha) / max(int(cases), 1)))


def cp_upper(k: np.ndarray, n: np.ndarray, alpha: float) -> np.ndarray:
    """Clopper–Pearson one-sided upper bound of a binomial share (``k`` of ``n``): exact, so small
    subsets with a skewed count are not flagged on a normal approximation's thin tail."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        ub = beta.ppf(1 - alpha, k + 1, np.maximum(n - k, 1e-12))
    return np.where(k >= n, 1.0, np.nan_to_num(ub, nan=1.0))


def wilson(k: np.ndarray, n: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score bounds ``(lower, upper)`` of a binomial share at ``z``."""
    k, n = np.asarray(k, dtype=float), np.maximum(np.asarray(n, dtype=float), 1)
    share = k / n
    denom = 1 + z ** 2 / n
    centre = (share + z ** 2 / (2 * n)) / denom
    half = z * np.sqrt(share * (1 - share) / n + z ** 2 / (4 * n ** 2)) / denom
    return np.maximum(centre - half, 0.0), np.minimum(centre + half, 1.0)


def _f1(y: np.ndarray, guess: np.ndarray, k: int, binary: bool) -> tuple[float, float]:
    """F1 of the positive class (binary) or macro F1, with a delta-method standard error."""
    n = len(y)
    cm = np.bincount(y * k + guess, minlength=k * k).reshape(k, k).astype(float)
    tp = np.diag(cm)
    wrong = cm.sum(axis=0) + cm.sum(axis=1) - 2 * tp  # false positives + false negatives
    denom = 2 * tp + wrong
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(denom > 0, 2 * tp / denom, 0.0)
        da, db = np.where(denom > 0, 2 * wrong / denom ** 2, 0.0), np.where(denom > 0, -2 * tp / denom ** 2, 0.0)
    pa, pb = tp / max(n, 1), wrong / max(n, 1)
    var = n * (da ** 2 * pa * (1 - pa) + db ** 2 * pb * (1 - pb) - 2 * da * db * pa * pb)
    if binary:
        return float(f1[1]), float(np.sqrt(max(var[1], 0.0)))
    present = cm.sum(axis=1) > 0
    return float(f1[present].mean()), float(np.sqrt(max(var[present].sum(), 0.0)) / max(present.sum(), 1))


def _auc(y: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """ROC AUC (Mann–Whitney) with Hanley & McNeil's standard error; NaN with one class only."""
    pos, neg = int((y == 1).sum()), int((y == 0).sum())
    if pos == 0 or neg == 0:
        return float("nan"), float("nan")
    ranks = rankdata(score)
    auc = (ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg)
    q1, q2 = auc / (2 - auc), 2 * auc ** 2 / (1 + auc)
    var = (auc * (1 - auc) + (pos - 1) * (q1 - auc ** 2) + (neg - 1) * (q2 - auc ** 2)) / (pos * neg)
    return float(auc), float(np.sqrt(max(var, 0.0)))


def metric_values(ctx: Context, which: str, names: list[str]) -> dict[str, tuple[float, float, int]]:
    """``{metric: (value, standard error, rows)}`` of the model on one frame (labelled rows)."""
    keep = known_rows(ctx, which)
    y = (ctx.y_ref if which == "ref" else ctx.y_eval)[keep]
    pred = (ctx.ref_pred if which == "ref" else ctx.eval_pred)[keep]
    n = len(y)
    out: dict[str, tuple[float, float, int]] = {}
    if n == 0:
        return {m: (float("nan"), float("nan"), 0) for m in names}
    if ctx.is_classification:
        guess = guesses(pred)
        for m in names:
            if m == "accuracy":
                a = float(np.mean(guess == y))
                out[m] = (a, float(np.sqrt(a * (1 - a) / n)), n)
            elif m == "f1":
                out[m] = (*_f1(y, guess, len(ctx.classes), pred.ndim == 1), n)
            elif m == "auc" and pred.ndim == 1:
                out[m] = (*_auc(y, pred), n)
        return out
    err = y - pred
    for m in names:
        if m == "mae":
            out[m] = (float(np.mean(np.abs(err))), float(np.std(np.abs(err)) / np.sqrt(n)), n)
        elif m == "rmse":
            mse = float(np.mean(err ** 2))
            rmse = np.sqrt(mse)
            out[m] = (float(rmse), float(np.std(err ** 2) / np.sqrt(n) / (2 * rmse)) if rmse > 0 else 0.0, n)
    return out


def _metrics_param(ctx: Context) -> list[str]:
    wanted = ctx.params.get("metrics", "auto")
    names = TASK_METRICS[ctx.task]
    if wanted in (None, "auto"):
        return names
    wanted = [wanted] if isinstance(wanted, str) else list(wanted)
    unknown = [m for m in wanted if m not in names]
    if unknown:
        raise ValueError(f"tests_config.{ctx.spec.key}.metrics: {unknown} not among {names} for {ctx.task.value}")
    return wanted


# --- #31 -------------------------------------------------------------------------------------------
@register(key="overall_performance", name="Overall Performance", category=CAT, thresholds=[0.05, 0.1, 0.2],
          requires={"labels", "predictions"}, params={"metrics": "auto", "alpha": 0.05})
def overall_performance(ctx: Context):
    """Relative drop of each of the task's metrics from reference to evaluation (one case per metric)."""
    names = _metrics_param(ctx)
    ref, ev = metric_values(ctx, "ref", names), metric_values(ctx, "eval", names)
    z = one_sided_z(float(ctx.params["alpha"]), len(names))
    for m in names:
        if m not in ref or not (np.isfinite(ref[m][0]) and np.isfinite(ev[m][0])):
            yield ctx.skip([], f"{m}: not defined on this data (a single class?)")
            continue
        (r, se_r, n_r), (e, se_e, n_e) = ref[m], ev[m]
        scale = abs(r) if r != 0 else 1.0
        drop = ((r - e) if HIGHER_IS_BETTER[m] else (e - r)) / scale
        se = float(np.hypot(se_r, se_e) / scale)
        # Graded: the drop beyond its confidence bound (as the subset tests grade their gaps), so a
        # drop the data cannot tell from sampling noise is not a finding at any level.
        beyond = max(drop - z * se, 0.0)
        what = "drop" if HIGHER_IS_BETTER[m] else "rise of the error"
        yield ctx.case([], {"relative_drop": beyond, "drop_estimate": drop, f"reference_{m}": r, f"eval_{m}": e,
                            "standard_error": se},
                       reason=f"{m}: relative {what} {drop:.3g}, reference {r:.4g} → evaluation {e:.4g}; graded "
                              f"beyond its confidence bound ({z:.2f} standard errors {se:.3g})",
                       details={"metric": m, "reference": r, "eval": e, "reference_rows": n_r, "eval_rows": n_e,
                                "bars": {"labels": ["reference", "evaluation"], "values": [r, e],
                                         "errors": [se_r, se_e], "title": m}})


# --- #32 -------------------------------------------------------------------------------------------
@register(key="beats_dummy", name="Beats Dummy", category=CAT, thresholds=[0.1, 0.05, 0.0], higher_is_worse=False,
          requires={"labels", "predictions"})
def beats_dummy(ctx: Context):
    """Normalised gain over a majority-class / mean-target model fitted on the reference."""
    keep_r, keep_e = known_rows(ctx, "ref"), known_rows(ctx, "eval")
    y_e, pred = ctx.y_eval[keep_e], ctx.eval_pred[keep_e]
    if ctx.is_classification:
        majority = int(np.bincount(ctx.y_ref[ctx.y_ref >= 0]).argmax())
        score, dummy = float(np.mean(guesses(pred) == y_e)), float(np.mean(y_e == majority))
        perfect, name = 1.0, "accuracy"
    else:
        mean = float(np.mean(ctx.y_ref[keep_r]))
        score = float(np.sqrt(np.mean((y_e - pred) ** 2)))
        dummy, perfect, name = float(np.sqrt(np.mean((y_e - mean) ** 2))), 0.0, "rmse"
    if dummy == perfect:
        yield ctx.skip([], f"the dummy model is perfect on the evaluation data ({name} {dummy:.4g}): nothing to beat")
        return
    gain = (score - dummy) / (perfect - dummy)
    what = f"majority class {ctx.classes[majority]!r}" if ctx.is_classification else f"mean target {mean:.4g}"
    yield ctx.case([], {"gain": gain, f"eval_{name}": score, f"dummy_{name}": dummy},
                   reason=f"{name} {score:.4g} vs {dummy:.4g} for the {what} (gain = share of the gap to perfect)",
                   details={"bars": {"labels": ["model", "dummy"], "values": [score, dummy], "title": name}})


# --- #33 -------------------------------------------------------------------------------------------
def calibration(ctx: Context, which: str, bins: int) -> tuple[float, float, dict]:
    """(debiased ECE, its standard error, per-bin curve) of one frame.

    Binary: the positive-class probability against the positive rate; multi-class: the top-label
    confidence against the accuracy. Each bin's gap ``|observed − predicted|`` is debiased by
    its sampling variance under calibration (``sqrt(max(0, gap² − var))``), so a small frame does
    not look miscalibrated by noise alone.
    """
    keep = known_rows(ctx, which)
    y = (ctx.y_ref if which == "ref" else ctx.y_eval)[keep]
    pred = (ctx.ref_pred if which == "ref" else ctx.eval_pred)[keep]
    if pred.ndim == 1:
        p, hit = pred, (y == 1).astype(float)
    else:
        p, hit = confidence(pred), (guesses(pred) == y).astype(float)
    codes = np.minimum((p * bins).astype(np.int64), bins - 1)
    n_b = np.bincount(codes, minlength=bins).astype(float)
    mean_p = np.bincount(codes, p, minlength=bins) / np.maximum(n_b, 1)
    mean_hit = np.bincount(codes, hit, minlength=bins) / np.maximum(n_b, 1)
    var = np.bincount(codes, p * (1 - p), minlength=bins) / np.maximum(n_b, 1) ** 2
    w = n_b / max(len(p), 1)
    gap = np.sqrt(np.maximum((mean_hit - mean_p) ** 2 - var, 0.0))
    used = n_b > 0
    curve = {"predicted": mean_p[used], "observed": mean_hit[used], "rows": n_b[used]}
    return float((w * gap).sum()), float(np.sqrt((w ** 2 * var).sum())), curve


@register(key="calibration_comparison", name="Calibration Comparison", category=CAT, thresholds=[0.02, 0.06, 0.1],
          requires={"labels", "predictions"}, params={"bins": 10, "alpha": 0.05})
def calibration_comparison(ctx: Context):
    """Rise of the expected calibration error from reference to evaluation (classification)."""
    if not ctx.is_classification:
        yield ctx.skip([], "calibration needs class probabilities: regression has none")
        return
    bins = int(ctx.params["bins"])
    (r, se_r, c_r), (e, se_e, c_e) = calibration(ctx, "ref", bins), calibration(ctx, "eval", bins)
    rise, se = e - r, float(np.hypot(se_r, se_e))
    z = one_sided_z(float(ctx.params["alpha"]))
    kind = "positive-class probability" if ctx.task == ModelTask.BINARY else "top-label confidence"
    # Graded beyond its confidence bound, as Overall Performance: noise alone is not a finding.
    yield ctx.case([], {"ece_increase": max(rise - z * se, 0.0), "increase_estimate": rise, "reference_ece": r,
                        "eval_ece": e, "standard_error": se},
                   reason=f"ECE over {bins} bins of the {kind}: {r:.3g} → {e:.3g}, graded beyond its confidence "
                          f"bound ({z:.2f} standard errors {se:.3g})",
                   details={"calibration": {"kind": kind, "reference": c_r, "eval": c_e}})


# --- #34 -------------------------------------------------------------------------------------------
def _above(scores: np.ndarray, t: float, tie_share: float) -> float:
    return float(np.mean(scores > t) + tie_share * np.mean(scores == t))


@register(key="average_confidence", name="Average Confidence / ATC", category=CAT, thresholds=[0.05, 0.1, 0.2],
          requires={"predictions"}, params={"alpha": 0.05, "bins": 10})
def average_confidence(ctx: Context):
    """Evaluation accuracy estimated without its labels (ATC fitted on the reference): the drop."""
    if not ctx.is_classification:
        yield ctx.skip([], "ATC estimates accuracy from class probabilities: regression has none")
        return
    keep = known_rows(ctx, "ref")
    if keep.sum() == 0:
        yield ctx.skip([], "no labelled reference rows to fit the confidence threshold on")
        return
    s_ref, correct = confidence(ctx.ref_pred[keep]), guesses(ctx.ref_pred[keep]) == ctx.y_ref[keep]
    ev_pred = ctx.eval_pred[~(np.isnan(ctx.eval_pred).any(axis=1) if ctx.eval_pred.ndim == 2
                              else np.isnan(ctx.eval_pred))]
    s_eval = confidence(ev_pred)
    acc = float(correct.mean())
    # The threshold leaves a share `acc` of reference confidences above it (ties split to match).
    t = float(np.quantile(s_ref, 1 - acc, method="lower")) if acc < 1 else float(s_ref.min()) - 1e-12
    ties = float(np.mean(s_ref == t))
    tie_share = (acc - float(np.mean(s_ref > t))) / ties if ties > 0 else 0.0
    est = _above(s_eval, t, min(max(tie_share, 0.0), 1.0))
    drop = acc - est
    se = float(np.sqrt(est * (1 - est) / max(len(s_eval), 1) + acc * (1 - acc) / max(len(s_ref), 1)))
    z = one_sided_z(float(ctx.params["alpha"]))
    suppress = f"not significant (drop {drop:.3g} within {z:.2f} standard errors {se:.3g})" \
        if ctx.thresholds.level(drop) and drop <= z * se else None
    metrics = {"estimated_drop": drop, "reference_accuracy": acc, "estimated_eval_accuracy": est,
               "confidence_threshold": t, "reference_mean_confidence": float(s_ref.mean()),
               "eval_mean_confidence": float(s_eval.mean()) if len(s_eval) else float("nan")}
    if ctx.has_labels():
        k = known_rows(ctx, "eval")
        metrics["eval_accuracy"] = float(np.mean(guesses(ctx.eval_pred[k]) == ctx.y_eval[k]))
    bins = int(ctx.params["bins"])
    low = 1.0 / len(ctx.classes) if ctx.classes else 0.0
    edges = np.linspace(low, 1, bins + 1)
    r_counts = np.histogram(s_ref, edges)[0]
    e_counts = np.histogram(s_eval, edges)[0]
    yield ctx.case([], metrics, suppress=suppress,
                   reason=f"a share {acc:.3f} of reference confidences exceed {t:.4g}; "
                          f"{est:.3f} of the evaluation's do",
                   details={"bins": [f"{a:.2f}–{b:.2f}" for a, b in zip(edges[:-1], edges[1:])],
                            "ref": (r_counts / max(r_counts.sum(), 1)).round(5).tolist(),
                            "eval": (e_counts / max(e_counts.sum(), 1)).round(5).tolist(),
                            "kind": "confidence", "threshold": t})
