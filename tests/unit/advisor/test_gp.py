"""The advisor's Gaussian process (chalicelib/advisor/gp.py): encoding, the copula, the fit."""
from __future__ import annotations

import json
import random

import numpy as np

from chalicelib.advisor import TrialRecord, propose
from chalicelib.advisor.gp import Encoder, expected_improvement, fit, gaussian_copula, gp_draws
from chalicelib.advisor.space import parse_knob_config

CONFIG = {
    "lr": {"type": "float", "value_min": 1e-5, "value_max": 1.0, "is_exp": True},
    "units": {"type": "integer", "value_min": 2, "value_max": 256, "is_exp": True},
    "depth": {"type": "integer", "value_min": 1, "value_max": 5},
    "act": {"type": "categorical", "values": ["relu", "tanh", 3]},
    "epochs": {"type": "fixed", "value": 7},
}


def test_every_configuration_survives_encoding_and_snapping():
    space = parse_knob_config(CONFIG)
    enc = Encoder(space)
    assert enc.width == 1 + 1 + 1 + 3
    rng = random.Random(0)
    for _ in range(200):
        values = space.sample(rng)
        u = enc.encode(values)
        assert enc.decode(u) == values
        assert np.allclose(enc.snap(u[None, :])[0], u)
    # a point between lattice values decodes to a configuration the space holds
    for row in enc.random(np.random.default_rng(1), 50):
        values = enc.decode(row)
        _, valid = space.normalize(values)
        assert valid and isinstance(values["units"], int) and values["epochs"] == 7


def test_the_copula_keeps_the_order_gives_ties_one_value_and_tames_outliers():
    y = gaussian_copula(np.array([0.80, 0.10, 0.82, 0.82, 0.81]))  # 0.10: a diverged model
    assert y[2] == y[3] and y[1] < y[0] < y[4] < y[2]
    assert np.allclose(gaussian_copula(np.array([1.0, 2.0, 3.0])), [-0.6744897501960817, 0.0, 0.6744897501960817])
    assert y[0] - y[1] < 2.0  # the outlier is one rank below, not 20 standard units


def test_the_fitted_gp_interpolates_and_is_unsure_far_from_the_data():
    rng = np.random.default_rng(0)
    x = rng.random((15, 2))
    y = np.sin(4 * x[:, 0]) + x[:, 1]
    gp = fit(x, (y - y.mean()) / y.std(), [slice(0, 1), slice(1, 2)])
    mean, sd = gp.predict(x)
    assert np.max(np.abs(mean - (y - y.mean()) / y.std())) < 0.2
    _, far_sd = gp.predict(np.array([[5.0, 5.0]]))
    assert far_sd[0] > 5 * np.max(sd)


def test_expected_improvement_prefers_a_better_mean_and_more_uncertainty():
    ei = expected_improvement(np.array([0.0, 1.0, 0.0]), np.array([0.1, 0.1, 1.0]), best=0.5)
    assert ei[1] > ei[2] > ei[0] > 0


def test_gp_draws_are_distinct_and_the_search_closes_in_on_the_optimum():
    space = parse_knob_config({"x": {"type": "float", "value_min": 0, "value_max": 1}})
    rng = random.Random(3)
    observations = []
    for _ in range(8):
        x = rng.random()
        observations.append(({"x": x}, "COMPLETE", -((x - 0.3) ** 2)))
    draws = gp_draws(space, observations, seed=5)
    assert len({json.dumps(next(draws)) for _ in range(20)}) == 20
    for seed in range(5):  # 2 random start-up trials (d + 1), then the GP
        history = []
        for i in range(12):
            p = propose(json.dumps({"x": {"type": "float", "value_min": 0, "value_max": 1}}), history,
                        seed=seed * 100 + i, strategy="gp")
            history.append(TrialRecord(p.knobs, -((p.knobs["x"] - 0.3) ** 2)))
        best = max(history, key=lambda r: r.score)
        assert abs(best.knobs["x"] - 0.3) < 0.02, (seed, best.knobs)


def test_when_no_gp_can_be_fitted_tpe_proposes(monkeypatch):
    import chalicelib.advisor.gp as gp_module

    def singular(*args, **kwargs):
        raise np.linalg.LinAlgError("singular")

    config = {"x": {"type": "float", "value_min": 0, "value_max": 1}, "y": {"type": "float", "value_min": 0, "value_max": 1}}
    history = [TrialRecord({"x": i / 10, "y": 1 - i / 10}, float(i)) for i in range(6)]
    monkeypatch.setattr(gp_module, "fit", singular)
    p = propose(json.dumps(config), history, seed=1, strategy="gp")
    assert p is not None and p.knobs not in [r.knobs for r in history]
