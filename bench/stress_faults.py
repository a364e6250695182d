"""Synthetic tabular data and the injected faults of bench/stress_tests.py (numpy + pandas only).

``make_data(n, n_num, n_cat, seed)`` → (reference, evaluation): mixed numeric (normal, log-normal,
uniform, integer counts) and categorical (skewed string categories) features, a binary label ``y``
drawn from a logistic model of some of them; both frames from the same distribution (different rows).

``inject(ref, eval, fault, prevalence, rng)`` → the evaluation frame with one fault injected on one
column (``NUM_TARGET`` for numeric faults, ``CAT_TARGET`` for categorical ones) or on the whole
table (duplicated rows, label noise). The faults and their parameters are fixed here, before any
tool ran on them; nothing in this file was changed after looking at results.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

LABEL = "y"
NUM_TARGET = "num_1"  # the numeric column numeric faults hit (normal distribution)
CAT_TARGET = "cat_1"  # the categorical column categorical faults hit (6 categories, skewed)

# fault -> (kind of target, prevalences (None: the whole column), label for tables)
FAULTS: dict[str, tuple[str, tuple, str]] = {
    "mean_shift_0.1": ("num", (None,), "mean shift 0.1σ"),
    "mean_shift_0.25": ("num", (None,), "mean shift 0.25σ"),
    "mean_shift_0.5": ("num", (None,), "mean shift 0.5σ"),
    "scale_1.5": ("num", (None,), "scale ×1.5"),
    "category_reassignment": ("cat", (0.1, 0.3), "category reassignment"),
    "nulls": ("num", (0.02, 0.1), "nulls"),
    "out_of_range": ("num", (0.02, 0.1), "out-of-range values"),
    "unseen_categories": ("cat", (0.02, 0.1), "unseen categories"),
    "type_corruption": ("num", (0.02, 0.1), "type corruption (text in a numeric column)"),
    "duplicated_rows": ("dataset", (0.02, 0.1), "duplicated rows"),
    "label_noise": ("dataset", (0.1, 0.3), "label noise (flipped labels)"),
}


def _frame(n: int, n_num: int, n_cat: int, params: dict, rng: np.random.Generator) -> pd.DataFrame:
    cols: dict[str, object] = {}
    logit = np.full(n, params["intercept"])
    for j in range(n_num):
        kind, mu, sd, *_ = params["num"][j]
        z = rng.standard_normal(n)
        if kind == 0:
            x = mu + sd * z
        elif kind == 1:
            x = np.exp(mu + sd * z)
        elif kind == 2:
            x = mu + sd * rng.random(n)
        else:
            x = rng.poisson(mu, n).astype(float)
        cols[f"num_{j + 1}"] = x
        w = params["num_w"][j]
        if w:
            logit += w * (x - params["num"][j][3]) / params["num"][j][4]
    for j in range(n_cat):
        cats, probs, effects = params["cat"][j]
        idx = rng.choice(len(cats), size=n, p=probs)
        cols[f"cat_{j + 1}"] = np.asarray(cats, dtype=object)[idx]
        logit += np.asarray(effects)[idx]
    cols[LABEL] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return pd.DataFrame(cols)


def _params(n_num: int, n_cat: int, rng: np.random.Generator) -> dict:
    """The distribution of one seed: kinds and moments of the numeric features, the categories with
    their shares and label effects, and the logistic model's weights."""
    num = []
    for j in range(n_num):
        kind = 0 if j == 0 else int(rng.integers(0, 4))  # num_1 is normal (the numeric faults' target)
        if kind == 0:
            mu, sd = rng.uniform(-5, 5), rng.uniform(0.5, 3)
            mean, std = mu, sd
        elif kind == 1:
            mu, sd = rng.uniform(0, 2), rng.uniform(0.3, 0.8)
            mean = np.exp(mu + sd ** 2 / 2)
            std = mean * np.sqrt(np.exp(sd ** 2) - 1)
        elif kind == 2:
            mu, sd = rng.uniform(-10, 0), rng.uniform(1, 10)
            mean, std = mu + sd / 2, sd / np.sqrt(12)
        else:
            mu, sd = rng.uniform(1, 20), 0.0
            mean, std = mu, np.sqrt(mu)
        num.append((kind, mu, sd, mean, std))
    num_w = [float(rng.normal(0, 0.8)) if j < max(3, n_num // 2) else 0.0 for j in range(n_num)]
    cat = []
    for j in range(n_cat):
        k = 6 if j == 0 else int(rng.integers(3, 15))
        probs = rng.dirichlet(np.full(k, 2.0))
        if j == 0:
            probs = np.array([0.35, 0.25, 0.15, 0.12, 0.08, 0.05])
        cats = [f"c{j + 1}_{chr(97 + i)}" for i in range(k)]
        cat.append((cats, probs, rng.normal(0, 0.5, k)))
    return {"num": num, "num_w": num_w, "cat": cat, "intercept": float(rng.normal(0, 0.3))}


def make_data(n: int, n_num: int, n_cat: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and evaluation frames of ``n`` rows each, same distribution, different rows."""
    rng = np.random.default_rng(seed)
    params = _params(n_num, n_cat, rng)
    return _frame(n, n_num, n_cat, params, rng), _frame(n, n_num, n_cat, params, rng)


def population(rows: int, n_num: int, n_cat: int, seed: int) -> pd.DataFrame:
    """A large fresh draw from the distribution ``make_data(..., seed)`` samples (rows neither frame
    holds): the ground truth a claim made on a control pair is checked against."""
    params = _params(n_num, n_cat, np.random.default_rng(seed))
    return _frame(rows, n_num, n_cat, params, np.random.default_rng([seed, 424242]))


def _rows(n: int, prevalence: float, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(n, size=max(1, int(round(prevalence * n))), replace=False)


def inject(ref: pd.DataFrame, ev: pd.DataFrame, fault: str, prevalence, rng: np.random.Generator) -> pd.DataFrame:
    """A copy of ``ev`` with ``fault`` injected at ``prevalence`` (share of rows; None: every row)."""
    ev = ev.copy()
    n = len(ev)
    x = ref[NUM_TARGET]
    if fault.startswith("mean_shift_"):
        ev[NUM_TARGET] = ev[NUM_TARGET] + float(fault.rsplit("_", 1)[1]) * x.std()
    elif fault.startswith("scale_"):
        m = x.mean()
        ev[NUM_TARGET] = m + (ev[NUM_TARGET] - m) * float(fault.rsplit("_", 1)[1])
    elif fault == "category_reassignment":
        # rows of other categories reassigned to the third most frequent one (an existing category)
        target = ref[CAT_TARGET].value_counts().index[2]
        rows = _rows(n, prevalence, rng)
        ev.loc[rows, CAT_TARGET] = target
    elif fault == "nulls":
        ev.loc[_rows(n, prevalence, rng), NUM_TARGET] = np.nan
    elif fault == "out_of_range":
        lo, hi = float(x.min()), float(x.max())
        rows = _rows(n, prevalence, rng)
        ev.loc[rows, NUM_TARGET] = hi + (hi - lo) * rng.uniform(0.5, 1.5, len(rows))
    elif fault == "unseen_categories":
        rows = _rows(n, prevalence, rng)
        ev.loc[rows, CAT_TARGET] = np.asarray([f"new_{k}" for k in range(3)], dtype=object)[rng.integers(0, 3, len(rows))]
    elif fault == "type_corruption":
        # the column as text (as a CSV export would hold it), with some values replaced by non-numbers
        rows = _rows(n, prevalence, rng)
        text = ev[NUM_TARGET].map(repr).astype(object)
        text.iloc[rows] = np.asarray(["n/a?", "#VALUE!", "abc", "1,5e"], dtype=object)[rng.integers(0, 4, len(rows))]
        ev[NUM_TARGET] = text
    elif fault == "duplicated_rows":
        # a share of the rows replaced by copies of other evaluation rows (same row count)
        rows = _rows(n, prevalence, rng)
        keep = np.setdiff1d(np.arange(n), rows)
        ev.iloc[rows] = ev.iloc[rng.choice(keep, size=len(rows))].to_numpy()
        ev = ev.astype(ref.dtypes.to_dict())
    elif fault == "label_noise":
        rows = _rows(n, prevalence, rng)
        ev.loc[rows, LABEL] = 1 - ev.loc[rows, LABEL]
    elif fault != "control":
        raise ValueError(f"unknown fault {fault!r}")
    return ev


def grid(seeds: int) -> list[tuple[str, object, int]]:
    """(fault, prevalence, seed) cells: every fault × its prevalences × seeds, plus controls."""
    cells = [("control", None, s) for s in range(seeds)]
    for fault, (_, prevalences, _) in FAULTS.items():
        cells += [(fault, p, s) for p in prevalences for s in range(seeds)]
    return cells


def target_of(fault: str) -> str | None:
    kind = FAULTS[fault][0] if fault in FAULTS else None
    return NUM_TARGET if kind == "num" else CAT_TARGET if kind == "cat" else None
