"""Per-run summaries of the data that several tests share, computed once (``Context.cached``).

The numeric features go through numpy as one ``(rows, features)`` float matrix per frame; their
reference quantile bins, and the bin codes of both frames, are computed once for the drift,
mutual-information and leakage tests. Categorical columns get codes over the reference's
categories (:func:`kilele_stress.stats.category_codes`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import pandas as pd

from kilele_stress import stats
from kilele_stress.context import Context
from kilele_stress.data import distinct


@dataclass(frozen=True)
class NumericBins:
    features: list[str]
    edges: np.ndarray       # (bins-1, f) interior reference quantile edges
    ref_codes: np.ndarray   # (n_ref, f): 0..bins-1, bins = null
    eval_codes: np.ndarray  # (n_eval, f)
    ref_counts: np.ndarray  # (f, bins+1), the last column the nulls
    eval_counts: np.ndarray


@dataclass(frozen=True)
class CategoryCodes:
    ref: np.ndarray
    eval: np.ndarray
    labels: list[str]  # k top categories, then (other), (unseen), (null)

    @property
    def n_codes(self) -> int:
        return len(self.labels)

    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        return (np.bincount(self.ref, minlength=self.n_codes), np.bincount(self.eval, minlength=self.n_codes))


def numeric_matrix(ctx: Context, which: str) -> np.ndarray:
    """The numeric features of ``ctx.ref`` or ``ctx.eval`` as one float64 matrix (NaN = null)."""
    def build() -> np.ndarray:
        frame = ctx.ref if which == "ref" else ctx.eval
        cols = ctx.numeric_features
        if not cols:
            return np.empty((len(frame), 0))
        # Fortran order: the tests walk it column by column.
        return np.asfortranarray(frame[cols].to_numpy(dtype=float, na_value=np.nan))
    return ctx.cached(("numeric_matrix", which), build)


def reference_quantiles(ctx: Context, qs: tuple[float, ...]) -> np.ndarray:
    """Quantiles ``(len(qs), f)`` of the reference's numeric features, NaN ignored (cached).
    The deciles and quartiles come from one call: the partial sorts are the expensive part."""
    def build() -> np.ndarray:
        ref = numeric_matrix(ctx, "ref")
        if not ref.shape[1]:
            return np.empty((len(qs), 0))
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-null column: NaN quantiles
            return np.nanquantile(ref, list(qs), axis=0).reshape(len(qs), ref.shape[1])
    return ctx.cached(("reference_quantiles", tuple(qs)), build)


def _decile_qs(bins: int) -> tuple[float, ...]:
    qs = [round(float(q), 12) for q in np.linspace(0, 1, bins + 1)[1:-1]]
    return tuple(sorted(set(qs) | {0.25, 0.75}))


def numeric_bins(ctx: Context, bins: int = 10) -> NumericBins:
    """Reference quantile bins of every numeric feature and both frames' codes and counts."""
    def build() -> NumericBins:
        ref, ev = numeric_matrix(ctx, "ref"), numeric_matrix(ctx, "eval")
        qs = _decile_qs(bins)
        wanted = [qs.index(round(float(q), 12)) for q in np.linspace(0, 1, bins + 1)[1:-1]]
        edges = reference_quantiles(ctx, qs)[wanted] if ref.shape[1] else np.empty((bins - 1, 0))
        ref_codes, eval_codes = stats.bin_codes(ref, edges), stats.bin_codes(ev, edges)
        return NumericBins(ctx.numeric_features, edges, ref_codes, eval_codes,
                           stats.count_codes(ref_codes, bins + 1), stats.count_codes(eval_codes, bins + 1))
    return ctx.cached(("numeric_bins", int(bins)), build)


def distinct_values(ctx: Context, which: str, col: str) -> tuple[pd.Series, np.ndarray]:
    """Distinct non-null values of a column and their row counts, of ``ctx.ref``, ``ctx.eval`` or
    ``ctx.eval_raw`` (``which``): computed once per run, shared by every string check."""
    frame = {"ref": ctx.ref, "eval": ctx.eval, "eval_raw": ctx.eval_raw}[which]
    return ctx.cached(("distinct", which, col), lambda: distinct(frame[col]))


def value_counts(ctx: Context, which: str, col: str) -> pd.Series:
    """Row counts per distinct value, most frequent first (cached)."""
    def build() -> pd.Series:
        values, counts = distinct_values(ctx, which, col)
        order = np.argsort(-counts, kind="stable")
        return pd.Series(counts[order], index=pd.Index(values.to_numpy(dtype=object)[order], dtype=object))
    return ctx.cached(("value_counts", which, col), build)


def category_codes(ctx: Context, col: str, max_categories: int = 50) -> CategoryCodes:
    """Codes of one categorical feature in both frames (cached)."""
    def build() -> CategoryCodes:
        r, e, labels = stats.category_codes(ctx.ref[col], ctx.eval[col], max_categories,
                                            ref_counts=value_counts(ctx, "ref", col))
        return CategoryCodes(r, e, labels)
    return ctx.cached(("category_codes", col, int(max_categories)), build)


def feature_codes(ctx: Context, col: str, bins: int = 10, max_categories: int = 50
                  ) -> tuple[np.ndarray, np.ndarray, int]:
    """Discrete codes of any numeric or categorical feature in both frames, and how many codes
    there are (numeric: quantile bins + null; categorical: categories + other/unseen/null)."""
    if col in ctx.numeric_features:
        nb = numeric_bins(ctx, bins)
        j = nb.features.index(col)
        return nb.ref_codes[:, j].astype(np.int64), nb.eval_codes[:, j].astype(np.int64), bins + 1
    cc = category_codes(ctx, col, max_categories)
    return cc.ref, cc.eval, cc.n_codes


def label_codes(ctx: Context, bins: int = 10) -> tuple[np.ndarray, np.ndarray, int]:
    """The label as codes in both frames: class indices, or reference quantile bins for a
    regression target; -1 where missing."""
    if ctx.is_classification:
        return ctx.y_ref, ctx.y_eval, len(ctx.classes or [])

    def build() -> tuple[np.ndarray, np.ndarray, int]:
        y_ref, y_eval = ctx.y_ref.reshape(-1, 1), ctx.y_eval.reshape(-1, 1)
        edges = stats.quantile_edges(y_ref, bins)
        codes = [stats.bin_codes(y, edges)[:, 0].astype(np.int64) for y in (y_ref, y_eval)]
        for c in codes:
            c[c == bins] = -1  # NaN label: ignored
        return codes[0], codes[1], bins
    return ctx.cached(("label_codes", bins), build)


def reference_ranges(ctx: Context) -> dict[str, np.ndarray]:
    """Per numeric feature of the reference: min, max, q1, q3, mean, std, null count."""
    def build() -> dict[str, np.ndarray]:
        ref = numeric_matrix(ctx, "ref")
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-null columns give NaN
            qs = _decile_qs(10)  # shared with the default drift bins
            quantiles = reference_quantiles(ctx, qs)
            q1, q3 = quantiles[qs.index(0.25)], quantiles[qs.index(0.75)]
            return {"min": np.nanmin(ref, axis=0) if ref.size else np.empty(0),
                    "max": np.nanmax(ref, axis=0) if ref.size else np.empty(0),
                    "q1": q1, "q3": q3, "mean": np.nanmean(ref, axis=0), "std": np.nanstd(ref, axis=0),
                    "nulls": np.isnan(ref).sum(axis=0)}
    return ctx.cached("reference_ranges", build)


def correlation(ctx: Context, which: str) -> np.ndarray:
    """Pearson correlation matrix of the numeric features of one frame (nulls → column mean)."""
    def build() -> np.ndarray:
        x = numeric_matrix(ctx, which)
        if x.shape[1] < 2:
            return np.full((x.shape[1], x.shape[1]), np.nan)
        import warnings
        with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # constant columns: NaN correlations
            mean = np.nanmean(x, axis=0)
            with stats.single_thread():
                return np.corrcoef(np.where(np.isnan(x), mean, x), rowvar=False)
    return ctx.cached(("correlation", which), build)


def _numeric_label_mi(ctx: Context, which: str, bins: int) -> dict[str, tuple[float, float, float]]:
    """``label_mutual_information`` of every numeric feature at once: one joint count of
    (feature bin, label code) per frame for all features (a single ``bincount``)."""
    def build() -> dict[str, tuple[float, float, float]]:
        nb = numeric_bins(ctx, bins)
        yr, ye, ky = label_codes(ctx, bins)
        codes, y = (nb.ref_codes, yr) if which == "ref" else (nb.eval_codes, ye)
        keep = y >= 0
        codes, y = codes[keep].astype(np.int64), y[keep].astype(np.int64)
        kx, f = bins + 1, codes.shape[1]
        cell = codes * ky + y[:, None] + np.arange(f, dtype=np.int64) * (kx * ky)
        joint = np.bincount(cell.ravel(), minlength=f * kx * ky).reshape(f, kx, ky)
        return {col: stats.mutual_information_table(joint[j]) for j, col in enumerate(nb.features)}
    return ctx.cached(("numeric_label_mi", which, int(bins)), build)


def label_mutual_information(ctx: Context, which: str, col: str, bins: int = 10) -> tuple[float, float, float]:
    """(MI of a feature with the label, its standard error, H(label)) in one frame (cached)."""
    if col in ctx.numeric_features:
        return _numeric_label_mi(ctx, which, bins)[col]

    def build() -> tuple[float, float, float]:
        xr, xe, kx = feature_codes(ctx, col, bins)
        yr, ye, ky = label_codes(ctx, bins)
        x, y = (xr, yr) if which == "ref" else (xe, ye)
        return stats.mutual_information(x, y, kx, ky)
    return ctx.cached(("label_mi", which, col, int(bins)), build)


def rank_matrix(ctx: Context, which: str, bins: int = 10) -> np.ndarray:
    """The numeric features of one frame as their reference-decile codes (0..bins-1; nulls at the
    column's mean code): a rank transform that heavy tails and outliers cannot dominate."""
    def build() -> np.ndarray:
        nb = numeric_bins(ctx, bins)
        codes = nb.ref_codes if which == "ref" else nb.eval_codes
        counts = nb.ref_counts if which == "ref" else nb.eval_counts
        out = codes.astype(np.float32)  # codes 0..bins: float32 is exact and halves the work
        if counts[:, bins].any():  # nulls: at the column's mean code
            null = codes == bins
            valid = np.maximum(len(codes) - counts[:, bins], 1)
            mean = (np.where(null, 0, codes).sum(axis=0) / valid).astype(np.float32)
            out = np.where(null, mean, out)
        return out
    return ctx.cached(("rank_matrix", which, int(bins)), build)


def rank_correlation(ctx: Context, which: str, bins: int = 10) -> np.ndarray:
    """Spearman-like correlation matrix of the numeric features (on reference-decile codes)."""
    def build() -> np.ndarray:
        x = rank_matrix(ctx, which, bins)
        if x.shape[1] < 2:
            return np.full((x.shape[1], x.shape[1]), np.nan)
        import warnings
        with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # constant columns: NaN correlations
            with stats.single_thread():
                return np.corrcoef(x, rowvar=False)
    return ctx.cached(("rank_correlation", which, int(bins)), build)
