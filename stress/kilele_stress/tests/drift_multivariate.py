"""Drift across features: the domain classifier (#29) and the dataset drift share (#30).

The domain classifier learns to tell reference rows from evaluation rows; if it cannot (AUC
0.5) the two frames look alike. Its score is ``2·AUC − 1`` on held-out rows. It trains on a
seeded sample of each frame (``sample_rows`` per frame, recorded in the results) with
scikit-learn's histogram gradient boosting, which takes nulls and categories as they are.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from kilele_stress import stats
from kilele_stress.context import Context
from kilele_stress.core import Category, Severity, register
from kilele_stress.profile import category_codes, numeric_matrix
from kilele_stress.tests.drift import categorical_drift_table, numeric_drift_table


def _design(ctx: Context, which: str, positions: Optional[np.ndarray]) -> tuple[np.ndarray, list[bool]]:
    """Numeric features as they are, categorical ones as codes (nulls as NaN)."""
    parts, categorical = [], []
    x = numeric_matrix(ctx, which)
    if x.shape[1]:
        parts.append(x if positions is None else x[positions])
        categorical += [False] * x.shape[1]
    for col in ctx.categorical_features:
        cc = category_codes(ctx, col)
        codes = (cc.ref if which == "ref" else cc.eval).astype(float)
        codes[codes == cc.n_codes - 1] = np.nan
        parts.append((codes if positions is None else codes[positions]).reshape(-1, 1))
        categorical.append(True)
    return np.hstack(parts), categorical


@register(key="multivariate_drift", name="Multivariate Drift", category=Category.DRIFT,
          thresholds=[0.1, 0.25, 0.5],
          params={"sample_rows": 2500, "test_share": 0.4, "max_iter": 40, "alpha": 0.05})
def multivariate_drift(ctx: Context):
    """A domain classifier told reference from evaluation rows: 2·AUC − 1 on held-out rows."""
    from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: PLC0415 (slow import, one test)
    from sklearn.metrics import roc_auc_score

    if not (ctx.numeric_features or ctx.categorical_features):
        yield ctx.skip([], "no numeric or categorical features")
        return
    n = int(ctx.params["sample_rows"])
    pos_r = ctx.sample_positions(len(ctx.ref), n, "domain classifier: reference rows")
    pos_e = ctx.sample_positions(len(ctx.eval), n, "domain classifier: evaluation rows")
    xr, categorical = _design(ctx, "ref", pos_r)
    xe, _ = _design(ctx, "eval", pos_e)
    x = np.vstack([xr, xe])
    y = np.r_[np.zeros(len(xr)), np.ones(len(xe))]
    order = ctx.rng.permutation(len(x))
    n_test = int(len(x) * float(ctx.params["test_share"]))
    test, train = order[:n_test], order[n_test:]
    model = HistGradientBoostingClassifier(max_iter=int(ctx.params["max_iter"]), max_leaf_nodes=15,
                                           categorical_features=np.array(categorical),
                                           random_state=int(ctx.rng.integers(2 ** 31)), early_stopping=False)
    # One thread (the worker's CPU request is 1.5 cores; see stats.single_thread).
    with stats.single_thread():
        model.fit(x[train], y[train])
        auc = float(roc_auc_score(y[test], model.predict_proba(x[test])[:, 1]))
    n1, n0 = int(y[test].sum()), int(len(test) - y[test].sum())
    # Under "no drift" the held-out AUC is 0.5 with the Mann–Whitney standard error.
    se = np.sqrt((n0 + n1 + 1) / (12 * max(n0, 1) * max(n1, 1)))
    p = float(stats.normal_p((auc - 0.5) / se)) if auc > 0.5 else 1.0
    score = max(0.0, 2 * auc - 1)
    suppress = f"not significant (p = {p:.3g})" if ctx.thresholds.level(score) and p >= float(ctx.params["alpha"]) else None
    yield ctx.case([], {"domain_classifier_score": score, "auc": auc, "p_value": p,
                        "sample_rows": float(len(x)), "held_out_rows": float(n_test)}, suppress=suppress,
                   reason=f"trained on {len(xr)} reference and {len(xe)} evaluation rows")


@register(key="dataset_drift_share", name="Dataset Drift Share", category=Category.DRIFT, thresholds=[0.1, 0.3, 0.5])
def dataset_drift_share(ctx: Context):
    """Share of numeric and categorical features whose drift test does not pass."""
    table = [d for d in numeric_drift_table(ctx) + categorical_drift_table(ctx) if not d.skip]
    if not table:
        yield ctx.skip([], "no numeric or categorical features to compare")
        return
    drifted = [d.feature for d in table if d.level > Severity.NONE]
    yield ctx.case(drifted, {"drifted_share": len(drifted) / len(table), "drifted_features": len(drifted),
                             "features_compared": len(table)}, details={"drifted": drifted})

