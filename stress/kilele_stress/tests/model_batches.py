"""The model in the loop for Transformations and Adversarial (#40–#42 of STRESS-TESTS.md): which
rows and features to corrupt, and one batched model call over many corrupted copies of them.

A corrupted copy is a :data:`Part`; :func:`batched` stacks every part's copy into one frame and
calls the model once, falling back to one call per part only when that call fails, so that a
model error names the corruption it failed on (:func:`with_error` makes it HIGH).
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import pandas as pd

from kilele_stress.context import Context
from kilele_stress.core import Severity, Status
from kilele_stress.model import ModelError


def model_features(ctx: Context) -> list[str]:
    """Features the model uses (``features_not_in_model`` left out)."""
    skip = set(ctx.features_not_in_model)
    return [c for c in ctx.features if c not in skip]


def clean_rows(ctx: Context, n: int, reason: str) -> np.ndarray:
    """Positions of up to ``n`` evaluation rows with no null and no wrong-typed value in the
    model's features (a seeded sample, recorded, when there are more)."""
    cols = model_features(ctx)
    bad = ctx.eval[cols].isna().to_numpy().any(axis=1) if cols else np.zeros(len(ctx.eval), bool)
    for col in cols:
        if col in ctx.type_violations:
            bad |= ctx.type_violations[col]
    ok = np.flatnonzero(~bad)
    picked = ctx.sample_positions(len(ok), n, reason)
    return ok if picked is None else ok[picked]


def as_matrix(pred: np.ndarray) -> np.ndarray:
    """Predictions as ``(n, k)`` (k = 1 for binary and regression)."""
    return pred if pred.ndim == 2 else pred.reshape(-1, 1)


def prediction_scale(ctx: Context, base: np.ndarray) -> float:
    """What one unit of prediction change is: 1 for probabilities; for a regression model the
    span of its reference predictions (1st to 99th percentile), its analogue of [0, 1]."""
    if ctx.is_classification:
        return 1.0
    ref = ctx.ref_pred if ctx.ref_pred is not None else base
    ref = ref[np.isfinite(ref)]
    span = float(np.subtract(*np.quantile(ref, [0.99, 0.01]))) if len(ref) else 0.0
    return span if span > 0 else 1.0


#: One corrupted copy of the base rows: (name, column, values: a scalar or one value per row).
Part = tuple[str, str, Any]


def stacked(base: pd.DataFrame, parts: list[Part]) -> pd.DataFrame:
    """``base`` repeated once per part, part i's copy with its column set to its values: one
    frame for one model call (built column by column, not by concatenating copies)."""
    n, count = len(base), len(parts)
    big = base.iloc[np.tile(np.arange(n), count)].reset_index(drop=True)
    by_column: dict[str, list[tuple[int, Any]]] = {}
    for i, (_, col, values) in enumerate(parts):
        by_column.setdefault(col, []).append((i, values))
    for col, blocks in by_column.items():
        dtype = _numeric_dtype(base[col], [values for _, values in blocks])
        if dtype is not None:  # numbers into a numeric column: no object detour (the common case)
            column = np.tile(base[col].to_numpy(dtype=dtype), count)
        else:
            column = np.tile(base[col].to_numpy(dtype=object), count)
        for i, values in blocks:
            column[i * n:(i + 1) * n] = values
        big[col] = column if dtype is not None else pd.Series(column, dtype=object).infer_objects()
    return big


def _numeric_dtype(base: pd.Series, values: list[Any]) -> Optional[np.dtype]:
    """The dtype ``infer_objects`` would give ``base`` with ``values`` written into it, when all
    are plain numbers (int or float numpy columns, int/float values or arrays, NaN); else None."""
    if base.dtype.kind not in "iuf" or base.isna().any():
        return None
    kinds = {base.dtype.kind}
    for v in values:
        arr = np.asarray(v)
        if arr.dtype.kind not in "iuf":
            return None
        kinds.add(arr.dtype.kind)
    return np.dtype(np.int64) if kinds <= {"i", "u"} else np.dtype(np.float64)


def batched(ctx: Context, base: pd.DataFrame, parts: list[Part]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Predictions of each part's rows, by name: one model call for all of them; if it fails,
    one call per part, so the errors name their part."""
    if not parts:
        return {}, {}
    n = len(base)
    try:
        pred = ctx.predict(stacked(base, parts))
        return {name: pred[i * n:(i + 1) * n] for i, (name, _, _) in enumerate(parts)}, {}
    except ModelError:
        pass
    out, errors = {}, {}
    for part in parts:
        try:
            out[part[0]] = ctx.predict(stacked(base, [part]))
        except ModelError as e:
            errors[part[0]] = str(e)
    return out, errors


def with_error(case, errors: dict[str, str]):
    """A model error is HIGH: ``case`` raised to FAIL/HIGH, the errors in its reason and details."""
    if errors:
        errors = {k: v.removeprefix("the model raised ") for k, v in errors.items()}
        case.severity, case.status, case.importance_score = Severity.HIGH, Status.FAIL, 1.0
        case.metrics["model_errors"] = float(len(errors))
        said = "; ".join(f"{k}: {v}" for k, v in list(errors.items())[:3])
        case.reason = f"the model fails on {said}" + (f" — {case.reason}" if case.reason else "")
        case.details["errors"] = {k: v[:200] for k, v in errors.items()}
    return case


def is_integral(ctx: Context, col: str) -> bool:
    def check() -> bool:
        v = ctx.ref[col].to_numpy(dtype=float, na_value=np.nan)
        v = v[~np.isnan(v)]
        return bool(len(v)) and bool(np.all(np.mod(v, 1) == 0))
    return ctx.cached(("transform_integral", col), check)
