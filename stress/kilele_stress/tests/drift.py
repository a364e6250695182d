"""Drift (#21–#28 of STRESS-TESTS.md; #29 and #30 are in :mod:`.drift_multivariate`).

A verdict rests on an effect size (PSI, a change of correlation or of mutual information); its
p-value only gates it: a case whose p-value is not below ``alpha / m`` (Bonferroni over the ``m``
cases of the test) is PASS whatever its effect size, so untouched columns do not fail by chance
on small data. PSI uses reference quantile bins (numeric) or the reference's categories, with a
small epsilon for empty bins; nulls are left to the null-drift tests.

A numeric feature has a second effect size beside PSI: the Wasserstein distance in reference
standard deviations (:func:`kilele_stress.stats.wasserstein_normed`), for the two changes decile
PSI cannot see (a shift smaller than a bin, a few values far out of range). The case takes the
higher of the two levels; the gate is then Welch's t-test or KS (:func:`stats.difference_p`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from kilele_stress import stats
from kilele_stress.context import Context
from kilele_stress.core import Category, Severity, Thresholds, register
from kilele_stress.data import ColumnType, ModelTask
from kilele_stress.profile import (category_codes, label_codes, label_mutual_information, numeric_bins,
                                   numeric_matrix, rank_correlation, rank_matrix)

CAT = Category.DRIFT
PSI_THRESHOLDS = [0.1, 0.2, 0.6]
PSI_PARAMS = {"bins": 10, "epsilon": stats.PSI_EPSILON, "alpha": 0.05}
#: The Wasserstein distance's levels: 0.1 reference standard deviations is Evidently's default drift
#: threshold (medium); half of it is a warning, a quarter σ (a "small" effect, Cohen) is high. It
#: is computed on at most ``wasserstein_max_rows`` rows per frame (seeded sample, recorded): its
#: noise there (≈ 0.01σ) is far below the lowest level, and sorting every row of wide data is not.
NUMERIC_DRIFT_PARAMS = {**PSI_PARAMS, "wasserstein_thresholds": [0.05, 0.1, 0.25], "wasserstein_max_rows": 20_000}


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    psi: float
    p_value: float
    test: str          # "KS", "Welch t or KS" or "chi2"
    level: Severity    # after the significance gate
    significant: bool
    details: dict
    skip: str = ""     # why there is nothing to compare
    wasserstein: Optional[float] = None  # numeric features only
    raw_level: Severity = Severity.NONE  # before the significance gate


def _bin_labels(edges: np.ndarray) -> list[str]:
    e = [f"{v:.4g}" for v in edges]
    if not e:
        return ["all"]
    return [f"≤ {e[0]}"] + [f"({a}, {b}]" for a, b in zip(e[:-1], e[1:])] + [f"> {e[-1]}"]


def numeric_drift_table(ctx: Context) -> list[FeatureDrift]:
    """PSI and the normalised Wasserstein distance (and, where they flag, the p-value) of every
    numeric feature, graded with the run's ``numeric_drift`` settings (shared with the dataset
    drift share)."""
    def build() -> list[FeatureDrift]:
        settings = ctx.settings_of("numeric_drift")
        params = settings.params
        bins = int(params["bins"])
        wd_thresholds = Thresholds.from_value(params["wasserstein_thresholds"])
        nb = numeric_bins(ctx, bins)
        ref_counts, eval_counts = nb.ref_counts[:, :bins], nb.eval_counts[:, :bins]  # nulls left out
        values = stats.psi(ref_counts, eval_counts, float(params["epsilon"]))
        alpha = stats.corrected_alpha(float(params["alpha"]), len(nb.features))
        ref_x, eval_x = numeric_matrix(ctx, "ref"), numeric_matrix(ctx, "eval")
        ref_w, eval_w = _wasserstein_rows(ctx, ref_x, eval_x, int(params["wasserstein_max_rows"]))
        out = []
        for j, col in enumerate(nb.features):
            details = {**stats.binned_distribution(ref_counts[j], eval_counts[j], _bin_labels(nb.edges[:, j])),
                       "kind": "numeric"}
            if ref_counts[j].sum() == 0 or eval_counts[j].sum() == 0:
                which = "reference" if ref_counts[j].sum() == 0 else "evaluation"
                out.append(FeatureDrift(col, np.nan, np.nan, "KS", Severity.NONE, False, details,
                                        skip=f"no values in the {which} data"))
                continue
            wd = stats.wasserstein_normed(ref_w[:, j], eval_w[:, j])
            level = max(settings.thresholds.level(values[j]), wd_thresholds.level(wd))
            p = np.nan
            if level > Severity.NONE:  # the p-value only matters where an effect size flags
                p = stats.difference_p(ref_x[:, j], eval_x[:, j])
            significant = level > Severity.NONE and p < alpha
            out.append(FeatureDrift(col, float(values[j]), float(p), "Welch t or KS",
                                    level if significant else Severity.NONE, significant, details,
                                    wasserstein=wd, raw_level=level))
        return out
    return ctx.cached("numeric_drift_table", build)


def _wasserstein_rows(ctx: Context, ref_x: np.ndarray, eval_x: np.ndarray, max_rows: int):
    """Both numeric matrices, each cut to a seeded sample of ``max_rows`` rows if longer."""
    out = []
    for name, x in (("reference", ref_x), ("evaluation", eval_x)):
        positions = ctx.sample_positions(len(x), max_rows,
                                         f"numeric drift: Wasserstein distance on {max_rows} {name} rows")
        out.append(x if positions is None else x[positions])
    return out


def categorical_drift_table(ctx: Context) -> list[FeatureDrift]:
    """PSI over the reference's categories (plus "other" and "unseen") and the chi-squared
    p-value, graded with the run's ``categorical_drift`` settings."""
    def build() -> list[FeatureDrift]:
        settings = ctx.settings_of("categorical_drift")
        params = settings.params
        cols = ctx.categorical_features
        alpha = stats.corrected_alpha(float(params["alpha"]), len(cols))
        out = []
        for col in cols:
            codes = category_codes(ctx, col, int(params["max_categories"]))
            r, e = (c[:-1] for c in codes.counts())  # nulls left out
            details = {**stats.binned_distribution(r, e, codes.labels[:-1]), "kind": "categorical"}
            if r.sum() == 0 or e.sum() == 0:
                which = "reference" if r.sum() == 0 else "evaluation"
                out.append(FeatureDrift(col, np.nan, np.nan, "chi2", Severity.NONE, False, details,
                                        skip=f"no values in the {which} data"))
                continue
            value = float(stats.psi(r, e, float(params["epsilon"])))
            level = settings.thresholds.level(value)
            p = stats.chi2_p(r, e) if level > Severity.NONE else np.nan
            significant = level > Severity.NONE and p < alpha
            out.append(FeatureDrift(col, value, float(p), "chi2", level if significant else Severity.NONE,
                                    significant, details, raw_level=level))
        return out
    return ctx.cached("categorical_drift_table", build)


def _drift_cases(ctx: Context, table: list[FeatureDrift], what: str):
    if not table:
        yield ctx.skip([], f"no {what} features")
        return
    for d in table:
        if d.skip:
            yield ctx.skip([d.feature], d.skip)
            continue
        suppress = None
        if not d.significant and d.raw_level > Severity.NONE:
            suppress = f"not significant ({d.test} p = {d.p_value:.3g}, Bonferroni over {len(table)} features)"
        if d.wasserstein is None:
            yield ctx.case([d.feature], {"psi": d.psi, "p_value": d.p_value}, details=d.details, suppress=suppress)
            continue
        wd_thresholds = Thresholds.from_value(ctx.params["wasserstein_thresholds"])
        yield ctx.case([d.feature], {"psi": d.psi, "wasserstein": d.wasserstein, "p_value": d.p_value},
                       grade_on={"psi": None, "wasserstein": wd_thresholds}, details=d.details, suppress=suppress)


@register(key="numeric_drift", name="Numeric Feature Drift", category=CAT, thresholds=PSI_THRESHOLDS,
          params=NUMERIC_DRIFT_PARAMS)
def numeric_drift(ctx: Context):
    """PSI of a numeric feature over reference quantile bins and its Wasserstein distance in
    reference standard deviations (Welch's t-test or KS as the gate)."""
    yield from _drift_cases(ctx, numeric_drift_table(ctx), "numeric")


@register(key="categorical_drift", name="Categorical Feature Drift", category=CAT, thresholds=PSI_THRESHOLDS,
          params={**PSI_PARAMS, "max_categories": 50})
def categorical_drift(ctx: Context):
    """PSI of a categorical feature over the reference's categories (chi-squared p as the gate)."""
    yield from _drift_cases(ctx, categorical_drift_table(ctx), "categorical")


def _graded_psi(ctx: Context, features: list[str], r: np.ndarray, e: np.ndarray, labels: list, p_of, test: str):
    """A PSI case for one binned comparison, the p-value computed only when PSI flags."""
    value = float(stats.psi(r, e, float(ctx.params["epsilon"])))
    p = p_of() if ctx.thresholds.level(value) > Severity.NONE else np.nan
    suppress = (f"not significant ({test} p = {p:.3g})"
                if np.isfinite(p) and p >= float(ctx.params["alpha"]) else None)
    return ctx.case(features, {"psi": value, "p_value": p}, details=stats.binned_distribution(r, e, labels),
                    suppress=suppress)


def _binned(ref: np.ndarray, ev: np.ndarray, bins: int):
    edges = stats.quantile_edges(ref.reshape(-1, 1), bins)
    counts = [np.bincount(stats.bin_codes(v.reshape(-1, 1), edges)[:, 0], minlength=bins + 1)[:bins]
              for v in (ref, ev)]
    return counts[0], counts[1], _bin_labels(edges[:, 0])


@register(key="prediction_drift", name="Prediction Drift", category=CAT, thresholds=PSI_THRESHOLDS,
          params=PSI_PARAMS, requires={"predictions"})
def prediction_drift(ctx: Context):
    """PSI of the model's predictions (probabilities, predicted classes or values)."""
    ref, ev = ctx.ref_pred, ctx.eval_pred
    if ref.ndim == 2:  # multi-class: the predicted classes
        k = ref.shape[1]
        r = np.bincount(ref.argmax(axis=1), minlength=k)
        e = np.bincount(ev.argmax(axis=1), minlength=k)
        yield _graded_psi(ctx, [], r, e, ctx.classes, lambda: stats.chi2_p(r, e), "chi2")
        return
    r, e, labels = _binned(ref, ev, int(ctx.params["bins"]))
    yield _graded_psi(ctx, [], r, e, labels, lambda: stats.ks_p(ref, ev)[1], "KS")


@register(key="label_drift", name="Label Drift", category=CAT, thresholds=PSI_THRESHOLDS,
          params=PSI_PARAMS, requires={"labels"})
def label_drift(ctx: Context):
    """PSI of the classes, or the KS statistic of a regression target."""
    if ctx.is_classification:
        k = len(ctx.classes)
        # Labels the reference never had get a bin of their own (code -1 → k).
        r = np.bincount(np.where(ctx.y_ref >= 0, ctx.y_ref, k), minlength=k + 1)
        e = np.bincount(np.where(ctx.y_eval >= 0, ctx.y_eval, k), minlength=k + 1)
        yield _graded_psi(ctx, [ctx.label_col], r, e, [*map(str, ctx.classes), "(unseen or null)"],
                          lambda: stats.chi2_p(r, e), "chi2")
        return
    statistic, p = stats.ks_p(ctx.y_ref, ctx.y_eval)
    r, e, labels = _binned(ctx.y_ref, ctx.y_eval, int(ctx.params["bins"]))
    suppress = f"not significant (KS p = {p:.3g})" if p >= float(ctx.params["alpha"]) else None
    yield ctx.case([ctx.label_col], {"ks_statistic": statistic, "p_value": p},
                   details=stats.binned_distribution(r, e, labels), suppress=suppress)


def _null_matrix(ctx: Context, which: str) -> np.ndarray:
    """``(rows, features)`` bool: the feature is null in the row (a wrong-typed value is not)."""
    def build() -> np.ndarray:
        frame = ctx.ref if which == "ref" else ctx.eval
        cols = []
        numeric = set(ctx.numeric_features)
        x = numeric_matrix(ctx, which)
        for col in ctx.features:
            if col in numeric:
                null = np.isnan(x[:, ctx.numeric_features.index(col)])
            elif ctx.schema[col] in (ColumnType.CATEGORICAL, ColumnType.BOOLEAN):
                codes = category_codes(ctx, col)
                null = (codes.ref if which == "ref" else codes.eval) == codes.n_codes - 1
            else:
                null = frame[col].isna().to_numpy(dtype=bool)
            if which == "eval" and col in ctx.type_violations:
                null = null & ~ctx.type_violations[col]
            cols.append(null)
        return np.column_stack(cols) if cols else np.zeros((len(frame), 0), dtype=bool)
    return ctx.cached(("null_matrix", which), build)


@register(key="null_drift", name="Nulls-per-Feature Drift", category=CAT, thresholds=[0.01, 0.05, 0.1],
          params={"alpha": 0.05})
def null_drift(ctx: Context):
    """Change of a feature's null rate (two-proportion test, Bonferroni over the features)."""
    ref, ev = _null_matrix(ctx, "ref"), _null_matrix(ctx, "eval")
    x_r, x_e = ref.sum(axis=0), ev.sum(axis=0)
    n_r, n_e = len(ref), len(ev)
    delta = np.abs(x_e / max(n_e, 1) - x_r / max(n_r, 1))
    p = stats.two_proportion_p(x_e, n_e, x_r, n_r)
    alpha = stats.corrected_alpha(float(ctx.params["alpha"]), len(ctx.features))
    for j, col in enumerate(ctx.features):
        suppress = None
        if ctx.thresholds.level(delta[j]) > Severity.NONE and p[j] >= alpha:
            suppress = f"not significant (p = {p[j]:.3g}, Bonferroni over {len(ctx.features)} features)"
        yield ctx.case([col], {"null_rate_change": delta[j], "p_value": p[j], "reference_null_rate": x_r[j] / n_r,
                               "eval_null_rate": x_e[j] / n_e}, suppress=suppress)


@register(key="nulls_per_row_drift", name="Nulls-per-Row Drift", category=CAT, thresholds=PSI_THRESHOLDS,
          params={"epsilon": stats.PSI_EPSILON, "alpha": 0.05, "max_count": 5})
def nulls_per_row_drift(ctx: Context):
    """PSI of the number of null features per row (0, 1, … max_count or more)."""
    top = int(ctx.params["max_count"])
    counts = [np.bincount(np.minimum(_null_matrix(ctx, w).sum(axis=1), top), minlength=top + 1)
              for w in ("ref", "eval")]
    labels = [str(i) for i in range(top)] + [f"{top}+"]
    yield _graded_psi(ctx, [], counts[0], counts[1], labels, lambda: stats.chi2_p(*counts), "chi2")


def label_correlation(ctx: Context, bins: int = 10) -> Optional[list[tuple[str, float, float]]]:
    """(feature, reference, evaluation) rank correlation of each numeric feature with a binary
    label or a regression target's deciles; None for a multi-class label (no order) or without
    labels."""
    if not ctx.has_labels() or ctx.task == ModelTask.MULTICLASS or not ctx.numeric_features:
        return None
    y_ref, y_eval, _ = label_codes(ctx, bins)  # binary: the class index 0/1

    def corr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        keep = y >= 0
        x, y = x[keep], y[keep].astype(x.dtype)
        with np.errstate(invalid="ignore", divide="ignore"), stats.single_thread():
            xc, yc = x - x.mean(axis=0), y - y.mean()
            return (yc @ xc) / np.sqrt(np.einsum("ij,ij->j", xc, xc) * (yc @ yc))

    rr, re_ = corr(rank_matrix(ctx, "ref", bins), y_ref), corr(rank_matrix(ctx, "eval", bins), y_eval)
    return [(c, float(a), float(b)) for c, a, b in zip(ctx.numeric_features, rr, re_)
            if np.isfinite(a) and np.isfinite(b)]


@register(key="correlation_drift", name="Correlation Drift", category=CAT, thresholds=[0.1, 0.3, 0.5],
          params={"alpha": 0.05, "max_cases": 20, "bins": 10})
def correlation_drift(ctx: Context):
    """Change of feature–feature and feature–label rank correlations (Fisher-z gate).

    Ranks (reference-decile codes) rather than raw values: a few extreme values of a heavy-tailed
    column would otherwise swing Pearson's r far more than Fisher's z allows for.
    """
    cols, bins = ctx.numeric_features, int(ctx.params["bins"])
    n_r, n_e = len(ctx.ref), len(ctx.eval)
    if len(cols) > 1:
        rr, re_ = rank_correlation(ctx, "ref", bins), rank_correlation(ctx, "eval", bins)
        iu = np.triu_indices(len(cols), 1)
        a, b = rr[iu], re_[iu]
        ok = np.isfinite(a) & np.isfinite(b)
        delta, p = np.abs(b - a), stats.fisher_z_p(a, n_r, b, n_e, spearman=True)
        alpha = stats.corrected_alpha(float(ctx.params["alpha"]), int(ok.sum()))
        # Graded: the change beyond its confidence bound (Bonferroni over the pairs), so sampling
        # noise in one of many pairs is not a finding at any level.
        beyond = np.where(ok, stats.fisher_z_change_beyond(a, n_r, b, n_e, alpha, spearman=True), 0.0)
        levels = np.array([ctx.thresholds.level(d) for d in beyond], dtype=int)
        flagged = np.flatnonzero(ok & (levels > 0))
        flagged = flagged[np.argsort(-beyond[flagged])]
        limit = int(ctx.params["max_cases"])
        for k in flagged[:limit]:
            i, j = iu[0][k], iu[1][k]
            yield ctx.case([cols[i], cols[j]], {"correlation_change": beyond[k], "change_estimate": delta[k],
                                                "p_value": p[k], "reference_correlation": a[k],
                                                "eval_correlation": b[k]},
                           reason=f"rank correlation {a[k]:.3f} → {b[k]:.3f}; graded beyond its confidence bound")
        if len(flagged) > limit:
            yield ctx.case([], {"correlation_change": float(beyond[flagged[limit]])},
                           reason=f"{len(flagged) - limit} more pairs not listed")
        if not len(flagged):
            worst = float(np.max(beyond[ok])) if ok.any() else 0.0
            yield ctx.case([], {"correlation_change": worst, "change_estimate": float(np.max(delta[ok])) if ok.any()
                                else 0.0, "pairs": float(ok.sum())},
                           reason="every numeric feature pair, each change graded beyond its confidence bound")
    labelled = label_correlation(ctx, bins)
    if labelled is None and len(cols) < 2:
        yield ctx.skip([], "fewer than two numeric features, and no binary or numeric label")
        return
    alpha = stats.corrected_alpha(float(ctx.params["alpha"]), len(labelled or []))
    for col, a, b in labelled or []:
        p = float(stats.fisher_z_p(np.array([a]), n_r, np.array([b]), n_e, spearman=True)[0])
        beyond = float(stats.fisher_z_change_beyond(np.array([a]), n_r, np.array([b]), n_e, alpha, spearman=True)[0])
        yield ctx.case([col, ctx.label_col], {"correlation_change": beyond, "change_estimate": abs(b - a),
                                              "p_value": p, "reference_correlation": a, "eval_correlation": b},
                       reason=f"rank correlation with the label {a:.3f} → {b:.3f}; graded beyond its confidence bound")


@register(key="mutual_information_drift", name="Mutual Information Drift", category=CAT,
          thresholds=[0.05, 0.1, 0.2], params={"bins": 10, "alpha": 0.05}, requires={"labels"})
def mutual_information_drift(ctx: Context):
    """Change of a feature's mutual information with the label, normalised by H(label)."""
    bins = int(ctx.params["bins"])
    cols = ctx.numeric_features + ctx.categorical_features
    if not cols:
        yield ctx.skip([], "no numeric or categorical features")
        return
    alpha = stats.corrected_alpha(float(ctx.params["alpha"]), len(cols))
    for col in cols:
        (mi_r, se_r, h_r), (mi_e, se_e, h_e) = (label_mutual_information(ctx, w, col, bins) for w in ("ref", "eval"))
        a, b = (mi_r / h_r if h_r > 0 else 0.0), (mi_e / h_e if h_e > 0 else 0.0)
        se = np.hypot(se_r / h_r if h_r > 0 else 0.0, se_e / h_e if h_e > 0 else 0.0)
        delta = abs(b - a)
        p = float(stats.normal_p(delta / se)) if se > 0 else (0.0 if delta > 0 else 1.0)
        suppress = f"not significant (p = {p:.3g}, Bonferroni over {len(cols)})" \
            if ctx.thresholds.level(delta) and p >= alpha else None
        yield ctx.case([col], {"mutual_information_change": delta, "p_value": p, "reference_nmi": a,
                               "eval_nmi": b}, suppress=suppress)
