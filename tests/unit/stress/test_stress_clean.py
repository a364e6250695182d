"""Clean controls: evaluation data drawn from the reference's own distribution passes every test
of the catalogue (or skips it with a reason), for each model task, on several seeds.

The data is not tame: heavy tails, a long-tailed categorical column, nulls in both frames. A test
that fails here has a wrong statistic; the fix is the statistic, never a looser threshold.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from stress_gen import N, make_frame, predict_binary, run

from kilele_stress.core import Category, Status, registry

SEEDS = (0, 1)
TASKS = ("binary", "multiclass", "regression")


def _rich(task: str, seed: int) -> pd.DataFrame:
    df = make_frame(N, seed, task)
    rng = np.random.default_rng(seed + 1000)
    df["expo"] = rng.exponential(1, N)
    df["heavy"] = rng.standard_t(3, N)
    df["disc"] = rng.choice([0.0, 0.0, 0.0, 1.0, 5.0], N)
    df["many"] = rng.choice([f"k{i}" for i in range(40)], N, p=np.r_[np.full(10, 0.07), np.full(30, 0.01)])
    df.loc[rng.uniform(size=N) < 0.05, "num_b"] = np.nan
    return df


def predict_multiclass(df: pd.DataFrame) -> np.ndarray:
    """Ordinal-logit probabilities of make_frame's three classes."""
    num_a = pd.to_numeric(df["num_a"], errors="coerce").fillna(0).to_numpy()  # as predict_binary reads it
    s = 2.0 * num_a + 0.5 * (df["cat_a"] == "b").to_numpy()
    low, high = 1 / (1 + np.exp(-(-1.0 - s) / 0.3)), 1 / (1 + np.exp(-(1.0 - s) / 0.3))
    return np.column_stack([low, high - low, 1 - high])


def predict_regression(df: pd.DataFrame) -> np.ndarray:
    num_a = pd.to_numeric(df["num_a"], errors="coerce").fillna(0).to_numpy()
    return 3 * (2.0 * num_a + 0.5 * (df["cat_a"] == "b").to_numpy())


MODELS = {"binary": predict_binary, "multiclass": predict_multiclass, "regression": predict_regression}


@pytest.fixture(scope="module")
def clean_results():
    return {(task, seed): run(_rich(task, 2 * seed + 1), _rich(task, 2 * seed + 2), model=MODELS[task])
            for task in TASKS for seed in SEEDS}


@pytest.mark.parametrize("key", list(registry()))
def test_clean_data_passes(clean_results, key):
    if registry()[key].category == Category.ADVERSARIAL:
        pytest.skip("the attack measures how far one feature controls the model, whatever the data; num_a controls "
                    "these true models by construction (clean control: test_stress_adversarial.py)")
    seen = 0
    for (task, seed), result in clean_results.items():
        for case in result.cases:
            if case.test_key != key:
                continue
            seen += 1
            if case.status == Status.SKIP:
                assert case.reason, case
                continue
            assert case.status == Status.PASS, f"{task} seed {seed}: {case}"
    assert seen, f"{key} produced no case"


def test_every_task_ran_every_test(clean_results):
    for result in clean_results.values():
        assert {c.test_key for c in result.cases} == set(registry())
        assert not [c for c in result.cases if "raised" in c.reason]


def test_model_performance_is_reported(clean_results):
    assert set(clean_results[("binary", 0)].model_performance["evaluation"]) == {"accuracy", "f1", "auc"}
    assert set(clean_results[("multiclass", 0)].model_performance["evaluation"]) == {"accuracy", "f1"}
    assert set(clean_results[("regression", 0)].model_performance["evaluation"]) == {"rmse", "mae", "r2"}
