"""Vectorised statistics shared by the tests (numpy; scipy for tail probabilities).

Everything here works on whole arrays (many features at once where it can): PSI, quantile bins,
category codes, mutual information and its standard error, two-proportion and Fisher-z tests,
Cramér's V.
"""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np
import pandas as pd
from scipy import stats as sps

#: Share given to an empty bin in PSI (ln(0) is undefined); small enough not to dominate.
PSI_EPSILON = 1e-4


def psi(ref_counts: np.ndarray, eval_counts: np.ndarray, epsilon: float = PSI_EPSILON) -> np.ndarray:
    """Population stability index of binned counts along the last axis (one PSI per row)."""
    ref = np.asarray(ref_counts, dtype=float)
    ev = np.asarray(eval_counts, dtype=float)
    r = np.clip(ref / np.maximum(ref.sum(axis=-1, keepdims=True), 1), epsilon, None)
    e = np.clip(ev / np.maximum(ev.sum(axis=-1, keepdims=True), 1), epsilon, None)
    return np.sum((e - r) * np.log(e / r), axis=-1)


def quantile_edges(ref: np.ndarray, bins: int) -> np.ndarray:
    """Interior edges ``(bins - 1, n_features)`` of ``bins`` reference quantile bins per column
    (NaN ignored; a column of ties gets repeated edges, hence empty bins, which PSI ignores)."""
    qs = np.linspace(0, 1, bins + 1)[1:-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: NaN edges
        return np.nanquantile(ref, qs, axis=0).reshape(len(qs), ref.shape[1])


def bin_codes(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of each value, ``values`` ``(n, f)`` against per-column ``edges`` ``(b-1, f)``:
    0..b-1 with bin i = (edge[i-1], edge[i]]; NaN gets code b (a bin of its own)."""
    codes = np.zeros(values.shape, dtype=np.int16)
    for edge in edges:  # b-1 passes over the matrix beat a per-column searchsorted
        codes += values > edge
    codes[np.isnan(values)] = edges.shape[0] + 1
    return codes


def count_codes(codes: np.ndarray, n_codes: int) -> np.ndarray:
    """Counts ``(f, n_codes)`` of each code per column of ``codes`` ``(n, f)``."""
    n, f = codes.shape
    flat = codes.astype(np.int64) + np.arange(f, dtype=np.int64) * n_codes
    return np.bincount(flat.ravel(), minlength=f * n_codes).reshape(f, n_codes)


def category_codes(ref: pd.Series, ev: pd.Series, max_categories: int = 50,
                   ref_counts: Optional[pd.Series] = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Codes of a categorical column in both frames over the reference's categories.

    The ``max_categories`` most frequent reference values get codes 0..k-1; other reference
    values ``k`` ("other"); values the reference never had ``k+1`` ("unseen"); nulls ``k+2``.
    Returns (ref codes, eval codes, labels of the k+3 codes). ``ref_counts``: the reference's
    value counts, most frequent first, if already known.
    """
    counts = ref.value_counts(dropna=True) if ref_counts is None else ref_counts
    top = pd.Index(counts.index[:max_categories])
    known = pd.Index(counts.index)
    k = len(top)

    def encode(s: pd.Series) -> np.ndarray:
        # Factorize once (fast on Arrow strings), then map the few distinct values to codes.
        codes, uniques = pd.factorize(s, use_na_sentinel=True)
        in_top = top.get_indexer(uniques)
        lut = np.where(in_top >= 0, in_top, np.where(known.get_indexer(uniques) >= 0, k, k + 1)).astype(np.int64)
        return np.where(codes >= 0, lut[np.maximum(codes, 0)] if len(lut) else 0, k + 2).astype(np.int64)

    labels = [str(v) for v in top] + ["(other)", "(unseen)", "(null)"]
    return encode(ref), encode(ev), labels


def entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / max(counts.sum(), 1)
    return float(-(p * np.log(p)).sum())


def mutual_information(x: np.ndarray, y: np.ndarray, kx: int, ky: int) -> tuple[float, float, float]:
    """Plug-in mutual information (nats) of two code arrays, its Miller–Madow bias correction
    applied, its standard error, and the entropy of ``y``. Codes < 0 are ignored."""
    keep = (x >= 0) & (y >= 0)
    x, y = x[keep], y[keep]
    return mutual_information_table(np.bincount(x * ky + y, minlength=kx * ky).reshape(kx, ky))


def mutual_information_table(counts: np.ndarray) -> tuple[float, float, float]:
    """:func:`mutual_information` from a contingency table of counts (x rows, y columns)."""
    n = counts.sum()
    if n == 0:
        return 0.0, 0.0, 0.0
    joint = counts.astype(float) / n
    px, py = joint.sum(axis=1), joint.sum(axis=0)
    nz = joint > 0
    ratio = np.zeros_like(joint)
    ratio[nz] = np.log(joint[nz] / np.outer(px, py)[nz])
    mi = float((joint * ratio).sum())
    # The plug-in estimate is biased up by about (cells - 1) / 2n for finite samples.
    bias = (np.count_nonzero(px) - 1) * (np.count_nonzero(py) - 1) / (2 * n)
    var = max(float((joint * ratio ** 2).sum()) - mi ** 2, 0.0) / n
    # The asymptotic variance vanishes at independence, where the estimate's spread is its bias.
    se = float(np.sqrt(var + bias ** 2))
    hy = entropy(counts.sum(axis=0).astype(float))
    return max(mi - bias, 0.0), se, hy


def two_proportion_p(x1: np.ndarray, n1: np.ndarray, x2: np.ndarray, n2: np.ndarray) -> np.ndarray:
    """Two-sided p-value of the two-proportion z-test (pooled), vectorised."""
    x1, n1, x2, n2 = (np.asarray(a, dtype=float) for a in (x1, n1, x2, n2))
    p = (x1 + x2) / np.maximum(n1 + n2, 1)
    se = np.sqrt(p * (1 - p) * (1 / np.maximum(n1, 1) + 1 / np.maximum(n2, 1)))
    diff = x1 / np.maximum(n1, 1) - x2 / np.maximum(n2, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, np.abs(diff) / se, 0.0)
    return 2 * sps.norm.sf(z)


def fisher_z_p(r1: np.ndarray, n1: int, r2: np.ndarray, n2: int, spearman: bool = False) -> np.ndarray:
    """Two-sided p-value that two correlations differ (Fisher's z), vectorised; ``spearman``
    widens the standard error by Fieller et al.'s factor 1.06 for rank correlations."""
    z1 = np.arctanh(np.clip(r1, -0.999999, 0.999999))
    z2 = np.arctanh(np.clip(r2, -0.999999, 0.999999))
    factor = 1.06 if spearman else 1.0
    se = np.sqrt(factor / max(n1 - 3, 1) + factor / max(n2 - 3, 1))
    return 2 * sps.norm.sf(np.abs(z1 - z2) / se)


def fisher_z_change_beyond(r1: np.ndarray, n1: int, r2: np.ndarray, n2: int, alpha: float,
                           spearman: bool = False) -> np.ndarray:
    """``|r2 − r1|`` beyond its two-sided ``alpha`` confidence bound: the difference of Fisher's
    z shrunk toward 0 by its critical value (0 when the interval holds no change), mapped back to
    a change of the correlation from ``r1``. Vectorised."""
    z1 = np.arctanh(np.clip(r1, -0.999999, 0.999999))
    z2 = np.arctanh(np.clip(r2, -0.999999, 0.999999))
    factor = 1.06 if spearman else 1.0
    se = np.sqrt(factor / max(n1 - 3, 1) + factor / max(n2 - 3, 1))
    shrunk = np.maximum(np.abs(z2 - z1) - sps.norm.isf(alpha / 2) * se, 0.0)
    return np.abs(np.tanh(z1 + np.sign(z2 - z1) * shrunk) - np.tanh(z1))


def normal_p(z: np.ndarray) -> np.ndarray:
    return 2 * sps.norm.sf(np.abs(z))


def corrected_alpha(alpha: float, m: int) -> float:
    """Bonferroni: the level each of ``m`` simultaneous tests must reach (untouched columns
    must not fail by chance, however many there are)."""
    return alpha / max(int(m), 1)


def cramers_v(table: np.ndarray) -> float:
    """Bias-corrected Cramér's V (Bergsma 2013) of a contingency table."""
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    n = table.sum()
    r, k = table.shape
    if n <= 1 or r < 2 or k < 2:
        return 0.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    phi2 = max(0.0, chi2 / n - (k - 1) * (r - 1) / (n - 1))
    rc, kc = r - (r - 1) ** 2 / (n - 1), k - (k - 1) ** 2 / (n - 1)
    denom = min(kc - 1, rc - 1)
    return float(np.sqrt(phi2 / denom)) if denom > 0 else 0.0


def chi2_p(ref_counts: np.ndarray, eval_counts: np.ndarray) -> float:
    """p-value of the chi-squared test of homogeneity of two count vectors."""
    table = np.vstack([ref_counts, eval_counts]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 1.0
    return float(sps.chi2_contingency(table, correction=False)[1])


def ks_p(ref: np.ndarray, ev: np.ndarray) -> tuple[float, float]:
    """Kolmogorov–Smirnov statistic and p-value of two samples (NaN dropped)."""
    ref, ev = ref[~np.isnan(ref)], ev[~np.isnan(ev)]
    if len(ref) == 0 or len(ev) == 0:
        return 0.0, 1.0
    res = sps.ks_2samp(ref, ev, method="asymp")
    return float(res.statistic), float(res.pvalue)


def wasserstein_normed(ref: np.ndarray, ev: np.ndarray) -> float:
    """Wasserstein-1 distance of two samples (NaN dropped) in reference standard deviations:
    how far, on average, the evaluation's mass moved. Evidently's drift score for numeric columns
    of more than 1,000 rows. It sees what reference-decile PSI is blind to: a shift smaller than a
    bin, and a few values far past the reference's range (they land in the last bin whatever their
    distance). NaN when a sample is empty or the reference is constant (PSI decides then)."""
    ref, ev = ref[~np.isnan(ref)], ev[~np.isnan(ev)]
    if len(ref) == 0 or len(ev) == 0:
        return float("nan")
    std = float(np.std(ref))
    if not np.isfinite(std) or std == 0:
        return float("nan")
    # W1 = the integral over p in (0, 1) of |Q_ref(p) - Q_eval(p)|, the empirical quantile functions
    # taken at the midpoints of max(n, m) equal cells: exact for equal sizes, otherwise within
    # (range_ref + range_eval) / max(n, m); two sorts, three times faster than scipy's CDF merge.
    a, b = np.sort(ref), np.sort(ev)
    k = max(len(a), len(b))
    mid = (np.arange(k) + 0.5) / k
    qa = a[np.minimum((mid * len(a)).astype(np.int64), len(a) - 1)]
    qb = b[np.minimum((mid * len(b)).astype(np.int64), len(b) - 1)]
    return float(np.mean(np.abs(qa - qb)) / std)


def difference_p(ref: np.ndarray, ev: np.ndarray) -> float:
    """p-value that two samples (NaN dropped) differ in mean or in distribution: the smaller of
    Welch's t-test (most powerful for a shift, and for a few far values) and Kolmogorov–Smirnov
    (a change of shape or scale), doubled (Bonferroni over the two)."""
    ref, ev = ref[~np.isnan(ref)], ev[~np.isnan(ev)]
    if len(ref) < 2 or len(ev) < 2:
        return 1.0
    _, p_ks = ks_p(ref, ev)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # both constant: no t statistic
        p_t = float(sps.ttest_ind(ref, ev, equal_var=False).pvalue)
    p = min(p_ks, p_t) if np.isfinite(p_t) else p_ks
    return float(min(1.0, 2 * p))


def share_lower_bound(diff: float, se: float, z: float) -> float:
    """``diff - z * se`` floored at 0: a change we are confident of (0 when it is noise)."""
    return max(0.0, float(diff) - z * float(se))


def binned_distribution(ref_counts: np.ndarray, eval_counts: np.ndarray, labels: list,
                        limit: Optional[int] = 20) -> dict:
    """Shares per bin of both frames, for a report's plot (the last bins merged past ``limit``)."""
    r = np.asarray(ref_counts, dtype=float)
    e = np.asarray(eval_counts, dtype=float)
    labels = [str(x) for x in labels]
    if limit and len(labels) > limit:
        r = np.append(r[:limit - 1], r[limit - 1:].sum())
        e = np.append(e[:limit - 1], e[limit - 1:].sum())
        labels = labels[:limit - 1] + ["(rest)"]
    return {"bins": labels, "ref": (r / max(r.sum(), 1)).round(5).tolist(),
            "eval": (e / max(e.sum(), 1)).round(5).tolist()}


def single_thread():
    """Limit BLAS/OpenMP to one thread: their busy-waiting threads make matrix products and
    gradient boosting many times slower on a shared, busy machine, and results stay identical."""
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=1)
