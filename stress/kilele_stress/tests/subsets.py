"""Subset Performance (#35–#37 of STRESS-TESTS.md): where in the data the model does worse.

Subsets are the reference's quantile bins of a numeric feature (``bins``, nulls a subset of
their own) and the values of a categorical one; a subset needs ``min_subset_rows`` (20) rows.

*Expected performance.* Some subsets are hard by nature (rows near the decision boundary): a
model that is right there as often as it says it is has nothing wrong with it. For
classification, a subset's accuracy is therefore compared with the accuracy the model's own
confidence implies there (the mean top-label probability; equal to the accuracy for a calibrated
model, whatever the subset): the *shortfall* is ``(expected − accuracy)`` of the subset minus
that of the whole data. Regression has no such expectation: its subsets compare their mean
absolute error with the overall one (relative rise). Degradation (#37) compares each subset
with itself on the reference, plain accuracy or MAE, and counts the drop beyond the whole data's
own drop (when the whole data dropped): a drop shared by every subset is Overall Performance's
finding (#31), and when the reference is the model's training data, its in-sample optimism
would otherwise come back as a "degraded" subset wherever chance adds to it.

Every subset of a test is judged at once: a gap counts only beyond ``z`` standard errors
(one-sided ``alpha``, Bonferroni over every subset examined), and what is graded is the gap
beyond that confidence bound, so untouched data does not fail by chance on small subsets.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from kilele_stress import stats
from kilele_stress.context import Context
from kilele_stress.core import MIN_SUBSET_ROWS, Category, register
from kilele_stress.profile import category_codes, numeric_bins
from kilele_stress.tests.performance import confidence, cp_upper, guesses, known_rows, one_sided_z, wilson

CAT = Category.SUBSET_PERFORMANCE
PARAMS = {"bins": 5, "max_categories": 50, "min_subset_rows": MIN_SUBSET_ROWS, "alpha": 0.05}


@dataclass(frozen=True)
class RowScores:
    """Per labelled row of one frame: the score (1 = right, or the absolute error) and the score
    expected by the model (its confidence; NaN for regression)."""
    rows: np.ndarray      # positions in the frame
    score: np.ndarray
    expected: np.ndarray


def row_scores(ctx: Context, which: str) -> RowScores:
    def build() -> RowScores:
        keep = known_rows(ctx, which)
        y = (ctx.y_ref if which == "ref" else ctx.y_eval)[keep]
        pred = (ctx.ref_pred if which == "ref" else ctx.eval_pred)[keep]
        if ctx.is_classification:
            conf = confidence(pred)
            return RowScores(np.flatnonzero(keep), (guesses(pred) == y).astype(float), conf)
        err = np.abs(y - pred)
        return RowScores(np.flatnonzero(keep), err, np.full(len(err), np.nan))
    return ctx.cached(("subset_row_scores", which), build)


#: The binning the drift tests compute anyway (reference deciles, 50 categories): coarser codes
#: are derived from it rather than computed again.
SHARED_BINS, SHARED_CATEGORIES = 10, 50


@dataclass(frozen=True)
class Codes:
    ref: np.ndarray
    eval: np.ndarray
    k: int
    labels: list[str]


def _interval_labels(edges: np.ndarray) -> list[str]:
    e = [f"{v:.4g}" for v in edges]
    if not e:
        return ["all", "(null)"]
    return [f"≤ {e[0]}"] + [f"({a}, {b}]" for a, b in zip(e[:-1], e[1:])] + [f"> {e[-1]}", "(null)"]


def subset_codes(ctx: Context, col: str, bins: int, max_categories: int) -> Codes:
    """A feature's subsets in both frames: reference quantile bins (+ null) of a numeric feature,
    the ``max_categories`` most common values (+ other, unseen, null) of a categorical one."""
    def build() -> Codes:
        if col in ctx.numeric_features:
            step = SHARED_BINS // bins if SHARED_BINS % bins == 0 else 0
            nb = numeric_bins(ctx, SHARED_BINS if step else bins)
            j = nb.features.index(col)
            step = step or 1  # deciles // step: quintiles…; the null code (10) lands on `bins`
            edges = nb.edges[step - 1::step, j] if step > 1 else nb.edges[:, j]
            return Codes(nb.ref_codes[:, j].astype(np.int64) // step, nb.eval_codes[:, j].astype(np.int64) // step,
                         bins + 1, _interval_labels(edges))
        cc = category_codes(ctx, col, max(max_categories, SHARED_CATEGORIES))
        top = cc.n_codes - 3
        if max_categories >= top:
            return Codes(cc.ref, cc.eval, cc.n_codes, list(cc.labels))
        lut = np.r_[np.arange(max_categories), np.full(top - max_categories + 1, max_categories),
                    max_categories + 1, max_categories + 2]
        return Codes(lut[cc.ref], lut[cc.eval], max_categories + 3,
                     list(cc.labels[:max_categories]) + ["(other)", "(unseen)", "(null)"])
    return ctx.cached(("subset_codes", col, int(bins), int(max_categories)), build)


def _labels(ctx: Context, col: str, bins: int, max_categories: int) -> list[str]:
    return subset_codes(ctx, col, bins, max_categories).labels


def _features(ctx: Context) -> list[str]:
    return ctx.numeric_features + ctx.categorical_features


def _sums(codes: np.ndarray, k: int, *values: np.ndarray) -> list[np.ndarray]:
    return [np.bincount(codes, v, minlength=k) for v in values]


def _worst(beyond: np.ndarray, ok: np.ndarray) -> tuple[int, float]:
    """(subset with the largest gap beyond its confidence bound, that excess floored at 0)."""
    beyond = np.where(ok, beyond, -np.inf)
    j = int(np.argmax(beyond))
    return j, max(float(beyond[j]), 0.0)


def _n_subsets(ctx: Context, which: tuple[str, ...]) -> int:
    """Subsets of every feature with enough rows in each of ``which`` frames (the Bonferroni m)."""
    p = ctx.params
    total = 0
    for col in _features(ctx):
        c = subset_codes(ctx, col, int(p["bins"]), int(p["max_categories"]))
        codes, k = (c.ref, c.eval), c.k
        ok = np.ones(k, dtype=bool)
        for w in which:
            rs = row_scores(ctx, w)
            ok &= np.bincount(codes[0 if w == "ref" else 1][rs.rows], minlength=k) >= int(p["min_subset_rows"])
        total += int(ok.sum())
    return max(total, 1)


@register(key="subset_performance", name="Subset Performance", category=CAT, thresholds=[0.001, 0.02, 0.1],
          requires={"labels", "predictions"}, params=PARAMS)
def subset_performance(ctx: Context):
    """Worst subset of a feature minus the whole data, beyond its confidence interval (one case per feature)."""
    p = ctx.params
    rs = row_scores(ctx, "eval")
    if not _features(ctx) or len(rs.rows) == 0:
        yield ctx.skip([], "no numeric or categorical features, or no labelled rows")
        return
    m = _n_subsets(ctx, ("eval",))
    alpha = float(p["alpha"]) / m
    z = one_sided_z(float(p["alpha"]), m)
    cls = ctx.is_classification
    overall = float(rs.score.mean())
    overall_exp = float(rs.expected.mean()) if cls else float("nan")
    name = "accuracy" if cls else "mae"
    for col in _features(ctx):
        c = subset_codes(ctx, col, int(p["bins"]), int(p["max_categories"]))
        codes_e, k = c.eval, c.k
        codes = codes_e[rs.rows]
        n, s, e, sq = _sums(codes, k, np.ones(len(codes)), rs.score, np.nan_to_num(rs.expected), rs.score ** 2)
        ok = n >= int(p["min_subset_rows"])
        sub = s / np.maximum(n, 1)
        if cls:
            # The accuracy the subset should have: its confidence, less the whole data's overconfidence;
            # judged against the subset accuracy's exact upper bound.
            exp = e / np.maximum(n, 1)
            target = exp - (overall_exp - overall)
            gap, beyond = target - sub, target - cp_upper(s, n, alpha)
        else:
            gap = sub / overall - 1 if overall > 0 else np.zeros(k)
            se = np.sqrt(np.maximum(sq / np.maximum(n, 1) - sub ** 2, 0) / np.maximum(n, 1)) / (overall or 1.0)
            exp, beyond = np.full(k, np.nan), gap - z * se
        if not ok.any():
            yield ctx.skip([col], f"no subset with at least {p['min_subset_rows']} labelled rows")
            continue
        j, excess = _worst(beyond, ok)
        labels = _labels(ctx, col, int(p["bins"]), int(p["max_categories"]))
        shown = np.flatnonzero(ok)
        what = (f"accuracy {sub[j]:.3f} where the model's confidence implies {exp[j]:.3f} "
                f"(overall {overall:.3f}, implied {overall_exp:.3f})") if cls else \
            f"MAE {sub[j]:.4g} vs {overall:.4g} overall"
        bound = f"alpha {alpha:.2g} exact bound" if cls else f"{z:.2f} standard errors"
        yield ctx.case([col], {"performance_gap": excess, "gap_estimate": float(gap[j]), "subset_rows": float(n[j]),
                               f"subset_{name}": float(sub[j]), f"overall_{name}": overall},
                       reason=f"worst subset {col} {labels[j]} (n={int(n[j])}): {what}; "
                              f"gap counted beyond its confidence bound ({bound}, {m} subsets)",
                       details={"subsets": {"labels": [labels[i] for i in shown], "metric": sub[shown],
                                            "expected": exp[shown] if cls else None, "rows": n[shown],
                                            "overall": overall, "name": name, "worst": labels[j]}})


@register(key="subset_performance_degradation", name="Subset Performance Degradation", category=CAT,
          thresholds=[0.001, 0.02, 0.1], requires={"labels", "predictions"}, params=PARAMS)
def subset_performance_degradation(ctx: Context):
    """Per-subset drop from reference to evaluation (accuracy; relative MAE rise), worst subset per feature."""
    p = ctx.params
    rr, re_ = row_scores(ctx, "ref"), row_scores(ctx, "eval")
    if not _features(ctx) or len(rr.rows) == 0 or len(re_.rows) == 0:
        yield ctx.skip([], "no numeric or categorical features, or no labelled rows")
        return
    m = _n_subsets(ctx, ("ref", "eval"))
    z = one_sided_z(float(p["alpha"]), m)
    cls = ctx.is_classification
    name = "accuracy" if cls else "mae"
    minimum = int(p["min_subset_rows"])
    overall_r, overall_e = float(rr.score.mean()), float(re_.score.mean())
    if cls:
        overall_drop = max(overall_r - overall_e, 0.0)
    else:
        overall_drop = max((overall_e - overall_r) / overall_r, 0.0) if overall_r > 0 else 0.0
    for col in _features(ctx):
        c = subset_codes(ctx, col, int(p["bins"]), int(p["max_categories"]))
        codes_r, codes_e, k = c.ref, c.eval, c.k
        stat = []
        for scores, codes in ((rr, codes_r[rr.rows]), (re_, codes_e[re_.rows])):
            stat.append(_sums(codes, k, np.ones(len(codes)), scores.score, scores.score ** 2))
        (n_r, s_r, q_r), (n_e, s_e, q_e) = stat
        m_r, m_e = s_r / np.maximum(n_r, 1), s_e / np.maximum(n_e, 1)
        ok = (n_r >= minimum) & (n_e >= minimum)
        if not ok.any():
            yield ctx.skip([col], f"no subset with at least {minimum} labelled rows in both frames")
            continue
        if cls:  # Newcombe's interval of a difference of two shares (Wilson bounds of each)
            (l_r, _), (_, u_e) = wilson(s_r, n_r, z), wilson(s_e, n_e, z)
            drop = m_r - m_e
            beyond = drop - overall_drop - np.sqrt((m_r - l_r) ** 2 + (u_e - m_e) ** 2)
        else:  # relative rise of the MAE; the variance pooled (no change is the null)
            base = np.where(m_r > 0, m_r, 1.0)
            nt = np.maximum(n_r + n_e, 1)
            pooled = np.maximum((q_r + q_e) / nt - ((s_r + s_e) / nt) ** 2, 0)
            drop = (m_e - m_r) / base
            beyond = drop - overall_drop - z * np.sqrt(pooled * (1 / np.maximum(n_r, 1) + 1 / np.maximum(n_e, 1))) / base
        j, excess = _worst(beyond, ok)
        labels = _labels(ctx, col, int(p["bins"]), int(p["max_categories"]))
        shown = np.flatnonzero(ok)
        yield ctx.case([col], {"performance_drop": excess, "drop_estimate": float(drop[j]),
                               "overall_drop": overall_drop,
                               f"reference_subset_{name}": float(m_r[j]), f"eval_subset_{name}": float(m_e[j]),
                               "subset_rows": float(n_e[j])},
                       reason=f"worst subset {col} {labels[j]}: {name} {m_r[j]:.4g} → {m_e[j]:.4g} "
                              f"(n={int(n_r[j])} → {int(n_e[j])}); drop counted beyond the whole data's "
                              f"({overall_drop:.3g}) and its confidence bound "
                              f"({z:.2f} standard errors, Bonferroni over {m} subsets)",
                       details={"subsets": {"labels": [labels[i] for i in shown], "metric": m_e[shown],
                                            "reference": m_r[shown], "rows": n_e[shown], "name": name,
                                            "worst": labels[j]}})


# --- #36 -------------------------------------------------------------------------------------------
def _ranked_features(ctx: Context, limit: int) -> list[str]:
    """Features ranked by mutual information with the model's evaluation predictions (what the
    model leans on), the first ``limit``: a bounded number of pairs, no sampling."""
    cols = _features(ctx)
    pred = ctx.eval_pred
    if pred.ndim == 2:
        pcodes, kp = guesses(pred), pred.shape[1]
    else:
        clean = np.where(np.isnan(pred), np.nanmedian(pred), pred)
        edges = np.unique(np.quantile(clean, np.linspace(0, 1, 11)[1:-1]))
        pcodes, kp = np.searchsorted(edges, clean, side="left"), len(edges) + 1
    scores = []
    for col in cols:
        c = subset_codes(ctx, col, 5, SHARED_CATEGORIES)
        codes, k = c.eval, c.k
        scores.append(stats.mutual_information(codes, pcodes, k, kp)[0])
    order = np.argsort(-np.asarray(scores), kind="stable")
    return [cols[i] for i in order[:limit]]


@register(key="weak_segments", name="Weak Segments", category=CAT, thresholds=[0.9, 0.8, 0.6], higher_is_worse=False,
          requires={"labels", "predictions"},
          params={"max_features": 8, "segment_bins": 5, "segment_categories": 5,
                  "min_segment_rows": MIN_SUBSET_ROWS, "alpha": 0.05})
def weak_segments(ctx: Context):
    """Worst two-feature segment's performance over the whole data's (accuracy vs confidence; MAE)."""
    p = ctx.params
    rs = row_scores(ctx, "eval")
    cols = _ranked_features(ctx, int(p["max_features"]))
    if len(cols) < 2 or len(rs.rows) == 0:
        yield ctx.skip([], "fewer than two numeric or categorical features, or no labelled rows")
        return
    bins, cats, minimum = int(p["segment_bins"]), int(p["segment_categories"]), int(p["min_segment_rows"])
    codes = {c: subset_codes(ctx, c, bins, cats) for c in cols}
    labels = {c: _labels(ctx, c, bins, cats) for c in cols}
    cls = ctx.is_classification
    overall = float(rs.score.mean())
    overall_rel = overall / float(rs.expected.mean()) if cls else overall
    found = []  # [ratio, its standard error, rows, pair, cell codes, segment metric]
    for a, b in combinations(cols, 2):
        ka, kb = codes[a].k, codes[b].k
        cell = codes[a].eval[rs.rows] * kb + codes[b].eval[rs.rows]
        n, s, e, sq = _sums(cell, ka * kb, np.ones(len(cell)), rs.score, np.nan_to_num(rs.expected), rs.score ** 2)
        for i in np.flatnonzero(n >= minimum):
            mean = s[i] / n[i]
            if cls:  # (accuracy / expected accuracy) of the segment over that of the whole data
                exp = e[i] / n[i]
                found.append([mean / exp / overall_rel, (s[i], exp), n[i], (a, b), (i // kb, i % kb), mean])
            else:  # overall MAE / segment MAE; the error's standard error
                found.append([overall / mean if mean > 0 else 1.0, np.sqrt(max(sq[i] / n[i] - mean ** 2, 0) / n[i]),
                              n[i], (a, b), (i // kb, i % kb), mean])
    if not found:
        yield ctx.skip(cols[:2], f"no two-feature segment with at least {minimum} labelled rows")
        return
    z = one_sided_z(float(p["alpha"]), len(found))
    alpha = float(p["alpha"]) / len(found)
    for f in found:  # lower is worse: judge the ratio at its upper confidence bound
        ratio, se, mean = f[0], f[1], f[5]
        if cls:  # the segment accuracy's exact upper bound
            f.append(float(cp_upper(se[0], f[2], alpha)) / se[1] / overall_rel)
        else:
            f.append(overall / (mean - z * se) if mean > z * se else np.inf)
    found.sort(key=lambda f: f[6])
    ratio, _, n, (a, b), (ia, ib), mean, ucb = found[0]
    graded = float(min(1.0, ucb))
    cell = f"{a} {labels[a][ia]} & {b} {labels[b][ib]}"
    name = "accuracy" if cls else "mae"
    worst = found[:10]
    yield ctx.case([a, b], {"segment_ratio": graded, "ratio_estimate": float(ratio), "segment_rows": float(n),
                            f"segment_{name}": float(mean), f"overall_{name}": overall,
                            "pairs_tested": float(len(list(combinations(cols, 2))))},
                   reason=f"worst segment {cell} (n={int(n)}): {name} {mean:.4g} vs {overall:.4g} overall"
                          + (" (each relative to the model's confidence)" if cls else "")
                          + f"; ratio judged at its upper confidence bound (Bonferroni over {len(found)} segments); "
                          f"pairs of the {len(cols)} features the predictions depend on most",
                   details={"segments": {"labels": [f"{f[3][0]} {labels[f[3][0]][f[4][0]]} & {f[3][1]} "
                                                    f"{labels[f[3][1]][f[4][1]]}" for f in worst],
                                         "ratio": [f[0] for f in worst], "rows": [f[2] for f in worst],
                                         "name": f"{name} ratio to overall"},
                            "features_ranked": cols})
