"""Bias & Fairness (#38, #39 of STRESS-TESTS.md) over ``data_info.protected_features``.

Groups are the values of a protected feature (its ``max_categories`` most common, the rest
pooled as "(other)") or a numeric one's reference quantile bins, each with at least
``min_group_rows`` (20) evaluation rows. A positive is the predicted class (binary: probability
≥ 0.5); a multi-class model is judged one class against the rest, each class in turn, and the
worst class is reported. Regression has no positive class: both tests SKIP.

A disparity is graded only when it is significant: the two groups that define it differ by a
two-proportion test at ``alpha`` (Bonferroni over the features and classes examined); otherwise
the case PASSes and says so, so small groups do not fail by chance.
"""
from __future__ import annotations

from typing import Iterator, Optional

import numpy as np

from kilele_stress import stats
from kilele_stress.context import Context
from kilele_stress.core import MIN_SUBSET_ROWS, Category, register
from kilele_stress.tests.performance import guesses, known_rows
from kilele_stress.tests.subsets import _labels, subset_codes

CAT = Category.BIAS_AND_FAIRNESS
PARAMS = {"bins": 5, "max_categories": 20, "min_group_rows": MIN_SUBSET_ROWS, "alpha": 0.05}


def _protected(ctx: Context) -> Iterator[tuple[str, Optional[str]]]:
    """(feature, why it cannot be used or None) for each protected feature."""
    for col in ctx.protected_features:
        if col not in ctx.eval.columns:
            yield col, "not in the evaluation data"
        elif col not in ctx.numeric_features and col not in ctx.categorical_features:
            yield col, "a text feature: no groups to compare"
        else:
            yield col, None


def _classes(ctx: Context) -> list[int]:
    return [1] if ctx.eval_pred.ndim == 1 else list(range(len(ctx.classes)))


def _gate(ctx: Context, hi: tuple[float, float], lo: tuple[float, float], cases: int) -> Optional[str]:
    """Why a disparity between two groups' (positives, rows) is not significant, or None."""
    p = float(stats.two_proportion_p(hi[0], hi[1], lo[0], lo[1]))
    alpha = stats.corrected_alpha(float(ctx.params["alpha"]), cases)
    return None if p < alpha else f"not significant (two-proportion p = {p:.3g}, alpha {alpha:.3g} after Bonferroni)"


@register(key="demographic_parity", name="Demographic Parity", category=CAT, thresholds=[0.9, 0.8, 0.6],
          higher_is_worse=False, requires={"predictions", "protected"}, params=PARAMS)
def demographic_parity(ctx: Context):
    """Lowest over highest positive-prediction rate among a protected feature's groups."""
    if not ctx.is_classification:
        yield ctx.skip(ctx.protected_features, "fairness tests compare positive predictions: regression has none")
        return
    p = ctx.params
    ok_rows = ~(np.isnan(ctx.eval_pred).any(axis=1) if ctx.eval_pred.ndim == 2 else np.isnan(ctx.eval_pred))
    guess = guesses(np.nan_to_num(ctx.eval_pred))
    usable = [c for c, why in _protected(ctx) if why is None]
    cases = max(len(usable) * len(_classes(ctx)), 1)
    for col, why in _protected(ctx):
        if why:
            yield ctx.skip([col], why)
            continue
        sc = subset_codes(ctx, col, int(p["bins"]), int(p["max_categories"]))
        codes, k = sc.eval, sc.k
        n = np.bincount(codes[ok_rows], minlength=k)
        groups = np.flatnonzero(n >= int(p["min_group_rows"]))
        if len(groups) < 2:
            yield ctx.skip([col], f"fewer than two groups with at least {p['min_group_rows']} rows")
            continue
        worst = None
        for c in _classes(ctx):
            pos = np.bincount(codes[ok_rows], (guess[ok_rows] == c).astype(float), minlength=k)
            rate = pos[groups] / n[groups]
            lo, hi = int(np.argmin(rate)), int(np.argmax(rate))
            ratio = float(rate[lo] / rate[hi]) if rate[hi] > 0 else 1.0
            if worst is None or ratio < worst[0]:
                worst = (ratio, c, rate, lo, hi, pos)
        ratio, c, rate, lo, hi, pos = worst
        g_lo, g_hi = groups[lo], groups[hi]
        labels = _labels(ctx, col, int(p["bins"]), int(p["max_categories"]))
        suppress = _gate(ctx, (pos[g_hi], n[g_hi]), (pos[g_lo], n[g_lo]), cases) \
            if ctx.thresholds.level(ratio) else None
        cls = f" of class {ctx.classes[c]!r}" if ctx.eval_pred.ndim == 2 else ""
        yield ctx.case([col], {"parity_ratio": ratio, "min_positive_rate": float(rate[lo]),
                               "max_positive_rate": float(rate[hi]), "groups": float(len(groups))},
                       reason=f"positive rate{cls}: {rate[lo]:.3f} for {col} {labels[g_lo]} (n={int(n[g_lo])}) "
                              f"vs {rate[hi]:.3f} for {labels[g_hi]} (n={int(n[g_hi])})", suppress=suppress,
                       details={"groups": {"labels": [labels[g] for g in groups], "positive_rate": rate,
                                           "rows": n[groups], "class": str(ctx.classes[c])}})


@register(key="equalized_odds", name="Equalized Odds", category=CAT, thresholds=[0.05, 0.1, 0.2],
          requires={"labels", "predictions", "protected"}, params=PARAMS)
def equalized_odds(ctx: Context):
    """Largest gap of true-positive or false-positive rate between a protected feature's groups."""
    if not ctx.is_classification:
        yield ctx.skip(ctx.protected_features, "fairness tests compare positive predictions: regression has none")
        return
    p = ctx.params
    keep = known_rows(ctx, "eval")
    y, guess = ctx.y_eval[keep], guesses(ctx.eval_pred[keep])
    usable = [c for c, why in _protected(ctx) if why is None]
    cases = max(2 * len(usable) * len(_classes(ctx)), 1)
    minimum = int(p["min_group_rows"])
    for col, why in _protected(ctx):
        if why:
            yield ctx.skip([col], why)
            continue
        sc = subset_codes(ctx, col, int(p["bins"]), int(p["max_categories"]))
        codes_all, k = sc.eval, sc.k
        codes = codes_all[keep]
        worst = None  # (gap, rate name, class, groups, rates, lo, hi, positives, rows)
        for c in _classes(ctx):
            for name, members in (("TPR", y == c), ("FPR", y != c)):
                n = np.bincount(codes[members], minlength=k)
                pos = np.bincount(codes[members], (guess[members] == c).astype(float), minlength=k)
                groups = np.flatnonzero(n >= minimum)
                if len(groups) < 2:
                    continue
                rate = pos[groups] / n[groups]
                lo, hi = int(np.argmin(rate)), int(np.argmax(rate))
                gap = float(rate[hi] - rate[lo])
                if worst is None or gap > worst[0]:
                    worst = (gap, name, c, groups, rate, lo, hi, pos, n)
        if worst is None:
            yield ctx.skip([col], f"fewer than two groups with at least {minimum} rows of each label")
            continue
        gap, name, c, groups, rate, lo, hi, pos, n = worst
        g_lo, g_hi = groups[lo], groups[hi]
        labels = _labels(ctx, col, int(p["bins"]), int(p["max_categories"]))
        suppress = _gate(ctx, (pos[g_hi], n[g_hi]), (pos[g_lo], n[g_lo]), cases) if ctx.thresholds.level(gap) else None
        cls = f" (class {ctx.classes[c]!r} against the rest)" if ctx.eval_pred.ndim == 2 else ""
        yield ctx.case([col], {"odds_gap": gap, "min_rate": float(rate[lo]), "max_rate": float(rate[hi]),
                               "groups": float(len(groups))},
                       reason=f"{name}{cls}: {rate[hi]:.3f} for {col} {labels[g_hi]} vs {rate[lo]:.3f} for "
                              f"{labels[g_lo]}", suppress=suppress,
                       details={"groups": _rates_by_group(codes, k, y == c, guess == c, minimum, labels)
                                | {"rate": name, "class": str(ctx.classes[c])}})


def _rates_by_group(codes: np.ndarray, k: int, actual: np.ndarray, predicted: np.ndarray, minimum: int,
                    labels: list[str]) -> dict:
    """TPR and FPR per group with enough rows of either label (None where too few), for a plot."""
    out: dict = {"labels": [], "tpr": [], "fpr": [], "rows": []}
    n_pos, n_neg = np.bincount(codes[actual], minlength=k), np.bincount(codes[~actual], minlength=k)
    tp = np.bincount(codes[actual & predicted], minlength=k)
    fp = np.bincount(codes[~actual & predicted], minlength=k)
    for g in np.flatnonzero((n_pos >= minimum) | (n_neg >= minimum)):
        out["labels"].append(labels[g])
        out["tpr"].append(float(tp[g] / n_pos[g]) if n_pos[g] >= minimum else None)
        out["fpr"].append(float(fp[g] / n_neg[g]) if n_neg[g] >= minimum else None)
        out["rows"].append(int(n_pos[g] + n_neg[g]))
    return out
