"""Per-run summaries of the data that several tests share, computed once (``Context.cached``).

The numeric features go through numpy as one ``(rows, features)`` float matrix per frame; their
reference quantile bins, and the bin codes of both frames, are computed once for the drift,
mutual-information and leakage tests. Categorical columns get codes over the reference's
categories (:func:`kilele_stress.stats.category_codes`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kilele_stress import stats
from kilele_stress.context import Context


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


def numeric_bins(ctx: Context, bins: int = 10) -> NumericBins:
    """Reference quantile bins of every numeric feature and both frames' codes and counts."""
    def build() -> NumericBins:
        ref, ev = numeric_matrix(ctx, "ref"), numeric_matrix(ctx, "eval")
        edges = stats.quantile_edges(ref, bins) if ref.shape[1] else np.empty((bins - 1, 0))
        ref_codes, eval_codes = stats.bin_codes(ref, edges), stats.bin_codes(ev, edges)
        return NumericBins(ctx.numeric_features, edges, ref_codes, eval_codes,
                           stats.count_codes(ref_codes, bins + 1), stats.count_codes(eval_codes, bins + 1))
    return ctx.cached(("numeric_bins", int(bins)), build)


def category_codes(ctx: Context, col: str, max_categories: int = 50) -> CategoryCodes:
    """Codes of one categorical feature in both frames (cached)."""
    def build() -> CategoryCodes:
        r, e, labels = stats.category_codes(ctx.ref[col], ctx.eval[col], max_categories)
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
            q1, q3 = np.nanquantile(ref, [0.25, 0.75], axis=0) if ref.shape[1] else (np.empty(0), np.empty(0))
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
            return np.corrcoef(np.where(np.isnan(x), mean, x), rowvar=False)
    return ctx.cached(("correlation", which), build)


def label_mutual_information(ctx: Context, which: str, col: str, bins: int = 10) -> tuple[float, float, float]:
    """(MI of a feature with the label, its standard error, H(label)) in one frame (cached)."""
    def build() -> tuple[float, float, float]:
        xr, xe, kx = feature_codes(ctx, col, bins)
        yr, ye, ky = label_codes(ctx, bins)
        x, y = (xr, yr) if which == "ref" else (xe, ye)
        return stats.mutual_information(x, y, kx, ky)
    return ctx.cached(("label_mi", which, col, int(bins)), build)
