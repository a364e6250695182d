"""Seeded synthetic data for the stress-engine tests: a reference-like frame and helpers.

Columns: ``num_a`` N(0, 1) (drives the label), ``num_b`` lognormal, ``num_c`` U(0, 10), ``count``
(integers), ``cat_a`` (4 levels), ``cat_b`` (3 levels; never "z" when ``cat_a`` is "a": a value
pair the Inconsistencies test knows), ``flag`` (bool), ``email`` (text, always with '@'), and
the label ``y`` (binary, multi-class or regression).
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import pandas as pd

from kilele_stress import run_stress_test

N = 4000


def make_frame(n: int = N, seed: int = 0, task: str = "binary", strength: float = 2.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cat_a = rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1])
    cat_b = rng.choice(["x", "y", "z"], n, p=[0.4, 0.3, 0.3])
    cat_b = np.where((cat_a == "a") & (cat_b == "z"), "x", cat_b)
    df = pd.DataFrame({
        "num_a": rng.normal(0, 1, n),
        "num_b": rng.lognormal(0, 0.5, n),
        "num_c": rng.uniform(0, 10, n),
        "count": rng.poisson(3, n),
        "cat_a": cat_a,
        "cat_b": cat_b,
        "flag": rng.uniform(size=n) < 0.3,
        "email": [f"user{i}@example.com" for i in rng.integers(0, 10 ** 7, n)],
    })
    signal = strength * df["num_a"].to_numpy() + 0.5 * (cat_a == "b")
    if task == "binary":
        df["y"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-signal))).astype(int)
    elif task == "multiclass":
        df["y"] = np.digitize(signal + rng.normal(0, 0.5, n), [-1.0, 1.0])
    else:
        df["y"] = 3 * signal + rng.normal(0, 1, n)
    return df


def predict_binary(df: pd.DataFrame) -> np.ndarray:
    """The true model of ``make_frame``'s binary label (nulls and junk read as 0)."""
    x = pd.to_numeric(df["num_a"], errors="coerce").fillna(0).to_numpy()
    b = (df["cat_a"] == "b").to_numpy(dtype=float)
    return 1 / (1 + np.exp(-(2.0 * x + 0.5 * b)))


def config(label: str = "y", **data_info: Any) -> dict:
    return {"run_name": "test", "data_info": {"label_col": label, "ref_path": "-", "eval_path": "-", **data_info}}


def run(ref: pd.DataFrame, ev: pd.DataFrame, tests: Optional[list[str]] = None, model: Any = predict_binary,
        cfg: Optional[dict] = None, **kwargs: Any):
    return run_stress_test(cfg or config(), model=model, ref=ref, eval=ev, tests=tests, **kwargs)


def cases(result, key: str) -> list:
    return [c for c in result.cases if c.test_key == key]


def worst(result, key: str):
    """The most severe case of one test."""
    found = cases(result, key)
    assert found, f"no case of {key}"
    return max(found, key=lambda c: int(c.severity))


def rows(n: int, frac: float, seed: int = 99) -> np.ndarray:
    """Seeded positions of ``frac`` of ``n`` rows."""
    return np.random.default_rng(seed).choice(n, int(round(n * frac)), replace=False)
