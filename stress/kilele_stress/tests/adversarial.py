"""Adversarial (#42 of STRESS-TESTS.md): Bounded Single-Feature Attack.

An attacker may move one numeric feature of a row by at most ``bound`` (10%) of the feature's
reference range. On up to ``rows`` (10–100) clean evaluation rows (a seeded sample, recorded)
every feature is moved along a coarse grid of ``steps`` moves each way (rounded for an integer
feature), all of them in one batched model call. Per row, the attack is the move that changes
the prediction most (probability of a class; regression: the span of the reference
predictions, 1st to 99th percentile); the graded metric is that change averaged over the rows (``aggregate: "max"``
grades the largest instead). One case per numeric feature; the largest change, the share of
rows whose class flips and the mean change per move are reported with it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from kilele_stress.context import Context
from kilele_stress.core import Category, register
from kilele_stress.profile import reference_ranges
from kilele_stress.tests.performance import guesses
from kilele_stress.tests.model_batches import (as_matrix, batched, clean_rows, is_integral, model_features,
                                               prediction_scale, with_error)

#: The catalogue's bounds on the number of rows attacked.
MIN_ATTACK_ROWS, MAX_ATTACK_ROWS = 10, 100


@register(key="bounded_single_feature_attack", name="Bounded Single-Feature Attack", category=Category.ADVERSARIAL,
          thresholds=[0.05, 0.15, 0.25], requires={"model"},
          params={"rows": 100, "bound": 0.1, "steps": 4, "aggregate": "mean"})
def bounded_single_feature_attack(ctx: Context):
    """Largest prediction change a move of one feature within ±10% of its range achieves."""
    p = ctx.params
    if p["aggregate"] not in ("mean", "max"):
        raise ValueError(f"tests_config.{ctx.spec.key}.aggregate: 'mean' or 'max', not {p['aggregate']!r}")
    cols = [c for c in model_features(ctx) if c in ctx.numeric_features]
    if not cols:
        yield ctx.skip([], "no numeric features to move")
        return
    n_rows = min(max(int(p["rows"]), MIN_ATTACK_ROWS), MAX_ATTACK_ROWS)
    rows = clean_rows(ctx, n_rows, "bounded attack: evaluation rows attacked")
    if len(rows) < MIN_ATTACK_ROWS:
        yield ctx.skip([], f"fewer than {MIN_ATTACK_ROWS} evaluation rows without nulls or wrong-typed values")
        return
    base = ctx.model_input(ctx.eval_raw.iloc[rows]).reset_index(drop=True)
    base_pred = as_matrix(ctx.predict(base))
    scale = prediction_scale(ctx, base_pred)
    rng = reference_ranges(ctx)
    steps = int(p["steps"])
    fractions = np.r_[-np.arange(steps, 0, -1), np.arange(1, steps + 1)] / steps * float(p["bound"])
    parts, plan = [], {}
    for col in cols:
        j = ctx.numeric_features.index(col)
        width = float(rng["max"][j] - rng["min"][j])
        if not np.isfinite(width) or width <= 0:
            continue
        values = pd.to_numeric(base[col], errors="coerce").to_numpy(dtype=float)
        plan[col] = []
        for f in fractions:
            moved = values + f * width
            if is_integral(ctx, col):
                moved = np.round(moved)
            if np.allclose(moved, values):
                continue
            name = f"{col}\x00{f:+.4f}"
            parts.append((name, col, moved))
            plan[col].append((float(f), name))
    preds, errors = batched(ctx, base, parts)
    base_class = guesses(base_pred[:, 0] if base_pred.shape[1] == 1 else base_pred) if ctx.is_classification else None
    for col in cols:
        if col not in plan:
            yield ctx.skip([col], "a constant feature in the reference: no range to move it in")
            continue
        failed = {name.split("\x00")[1]: e for name, e in errors.items() if name.split("\x00")[0] == col}
        moves = [(f, as_matrix(preds[name])) for f, name in plan[col] if name in preds]
        if not moves:
            case = ctx.case([col], {"prediction_change": float("nan")}, reason="no move could be evaluated")
            yield with_error(case, {f"move {k}": v for k, v in failed.items()})
            continue
        change = np.stack([np.nan_to_num(np.abs(m - base_pred), nan=1.0 if ctx.is_classification else np.inf)
                           .max(axis=1) / scale for _, m in moves])  # (moves, rows)
        per_row = change.max(axis=0)
        finite = per_row[np.isfinite(per_row)]
        mean = float(finite.mean()) if len(finite) else float("inf")
        largest = float(per_row.max())
        metrics = {"prediction_change": mean if p["aggregate"] == "mean" else largest,
                   "mean_change": mean, "max_change": largest, "rows": float(len(rows))}
        if ctx.is_classification:
            flipped = np.zeros(len(rows), dtype=bool)
            for _, m in moves:
                flipped |= guesses(np.nan_to_num(m[:, 0] if m.shape[1] == 1 else m)) != base_class
            metrics["flipped_share"] = float(flipped.mean())
        unit = "probability" if ctx.is_classification else "share of the prediction span"
        case = ctx.case([col], metrics,
                        reason=f"moves within ±{float(p['bound']):.0%} of the range ({len(moves)} steps): "
                               f"mean worst change {mean:.3g}, largest {largest:.3g} ({unit})",
                        details={"steps": {"fraction": [f for f, _ in moves],
                                           "mean_change": change.mean(axis=1), "max_change": change.max(axis=1),
                                           "unit": unit}})
        yield with_error(case, {f"move {k}": v for k, v in failed.items()})
