"""The advisor's Gaussian process (chalicelib/advisor/gp.py): encoding, the output warping, the
fit, log EI, no near-copies, and search quality against random search on a synthetic mixed-type
function."""
from __future__ import annotations

import json
import math
import random
import statistics

import numpy as np

from chalicelib.advisor import TrialRecord, propose
from chalicelib.advisor.advisor import startup_trials
from chalicelib.advisor.gp import NEAR, Encoder, fit, gp_draws, log_expected_improvement, near_tried, yeo_johnson
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


def test_the_output_warping_keeps_order_and_ties_standardises_and_pulls_in_a_diverged_score():
    scores = np.array([0.80, 0.10, 0.82, 0.82, 0.81, 0.339, 0.340])  # 0.10: a diverged model
    y = yeo_johnson(scores)
    assert list(np.argsort(y, kind="stable")) == list(np.argsort(scores, kind="stable"))
    assert y[2] == y[3] and abs(np.mean(y)) < 1e-9 and abs(np.std(y) - 1) < 1e-9
    plain = (scores - scores.mean()) / scores.std()
    # the tail is pulled in: the good scores spread over more of the scale than plain z-scores
    assert (y[2] - y[0]) / (y[2] - y[1]) > 1.5 * (plain[2] - plain[0]) / (plain[2] - plain[1])
    # near-equal scores stay near-equal (ranks would put them a whole rank apart)
    assert abs(y[6] - y[5]) < 0.02
    assert np.array_equal(yeo_johnson(np.array([0.5, 0.5, 0.5])), np.zeros(3))  # all tied: no signal


def test_the_fitted_gp_interpolates_and_is_unsure_far_from_the_data():
    rng = np.random.default_rng(0)
    x = rng.random((15, 2))
    y = np.sin(4 * x[:, 0]) + x[:, 1]
    gp = fit(x, (y - y.mean()) / y.std(), [slice(0, 1), slice(1, 2)])
    mean, sd = gp.predict(x)
    assert np.max(np.abs(mean - (y - y.mean()) / y.std())) < 0.2
    _, far_sd = gp.predict(np.array([[5.0, 5.0]]))
    assert far_sd[0] > 5 * np.max(sd)


def _ei(mean, sd, best):  # the closed form, with erfc: Φ(z) keeps its digits for z << 0
    z = (mean - best) / sd
    return (mean - best) * 0.5 * math.erfc(-z / math.sqrt(2)) + sd * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)


def test_log_expected_improvement_is_the_log_of_ei_and_stays_finite_where_ei_underflows():
    mean, sd = np.array([0.0, 1.0, 0.0, -3.0, -12.0]), np.array([0.1, 0.1, 1.0, 0.5, 1.0])
    log_ei = log_expected_improvement(mean, sd, best=0.5)
    assert np.allclose(log_ei, [math.log(_ei(m, s, 0.5)) for m, s in zip(mean, sd)], rtol=1e-3)
    assert log_ei[1] > log_ei[2] > log_ei[0]  # a better mean, then more uncertainty
    # where EI underflows to 0 in floating point, its log is still finite and still ordered
    far = log_expected_improvement(np.array([-30.0, -40.0]), np.array([1.0, 1.0]), best=0.0)
    assert _ei(-40.0, 1.0, 0.0) == 0.0 and np.all(np.isfinite(far)) and far[0] > far[1]
    assert abs(far[0] - (-30**2 / 2 - 0.5 * math.log(2 * math.pi) - 2 * math.log(30))) < 0.01


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


MIXED = {
    "lr": {"type": "float", "value_min": 1e-4, "value_max": 1.0, "is_exp": True},
    "w": {"type": "float", "value_min": 0, "value_max": 1},
    "units": {"type": "integer", "value_min": 2, "value_max": 256, "is_exp": True},
    "act": {"type": "categorical", "values": ["relu", "tanh"]},
}


def test_near_tried_marks_copies_within_near_of_a_tried_configuration_with_its_categories():
    space = parse_knob_config(MIXED)
    enc = Encoder(space)
    tried = {"lr": 0.01, "w": 0.5, "units": 64, "act": "relu"}
    close = dict(tried, lr=0.01 * 1.05, w=0.5 + NEAR / 2, units=65)  # 65 vs 64: 0.3% of the log range
    candidates = np.array([enc.encode(v) for v in (
        tried, close, dict(close, act="tanh"), dict(tried, w=0.5 + 2 * NEAR), dict(tried, lr=0.02))])
    assert list(near_tried(enc, candidates, np.array([enc.encode(tried)]))) == [True, True, False, False, False]
    assert not near_tried(enc, candidates, np.empty((0, enc.width))).any()


def test_the_gp_never_proposes_a_tried_configuration_or_a_near_copy():
    # a plateau of tied scores around the best (what accuracies on small validation sets give)
    # is where a GP kept proposing configurations one rounding away from tried ones
    def score(k):
        return round(0.9 - 0.05 * abs(math.log10(k["lr"]) + 2) - 0.1 * (k["act"] == "tanh"), 2)

    history = []
    for i in range(25):
        p = propose(json.dumps(MIXED), history, seed=1000 + i, strategy="gp")
        history.append(TrialRecord(p.knobs, score(p.knobs)))
    enc = Encoder(parse_knob_config(MIXED))
    points = np.array([enc.encode(r.knobs) for r in history])
    for i in range(startup_trials(parse_knob_config(MIXED)), len(points)):
        assert not near_tried(enc, points[i:i + 1], points[:i])[0], history[i].knobs
    assert len({json.dumps(r.knobs, sort_keys=True) for r in history}) == len(history)


def _branin_mixed(k):
    """Branin (a float and an integer knob) with a categorical offset, in steps of 1 as
    accuracies come in steps: a development problem, not one of the bench's data sets."""
    a, b = k["a"], k["b"]
    value = (b - 5.1 / (4 * math.pi**2) * a * a + 5 / math.pi * a - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(a) + 10
    return math.floor(-value - {"p": 0.0, "q": 3.0, "r": 15.0}[k["c"]])


def test_the_default_advisor_beats_random_search_on_a_mixed_integer_and_categorical_function():
    config = json.dumps({
        "a": {"type": "float", "value_min": -5, "value_max": 10},
        "b": {"type": "integer", "value_min": 0, "value_max": 15},
        "c": {"type": "categorical", "values": ["p", "q", "r"]},
    })

    def run(strategy, seed):
        history = []
        for i in range(20):
            p = propose(config, history, seed=seed * 1000 + i, strategy=strategy)
            history.append(TrialRecord(p.knobs, _branin_mixed(p.knobs)))
        return [max(r.score for r in history[: n + 1]) for n in range(20)]

    needed, best = [], {(s, n): [] for s in ("auto", "random") for n in (10, 20)}
    for seed in range(20):
        curves = {s: run(s, seed) for s in ("auto", "random")}
        needed.append(next((n + 1 for n, b in enumerate(curves["auto"]) if b >= curves["random"][-1]), 21))
        for (s, n), values in best.items():
            values.append(curves[s][n - 1])
    # trials to reach random search's best of 20 (same seed; 21 if never): a random search
    # against another needs 14.9 on average over 200 seeds (it never reaches the other's best in
    # half of them); when this was written the advisor needed 10.3 (median 11)
    assert statistics.mean(needed) <= 12, needed
    # and ahead by a margin after 10 and 20 trials (scores come in steps of 1; when this was
    # written the margins were 2.9 and 4.6: a random search against another would be about 0)
    mean = {key: statistics.mean(values) for key, values in best.items()}
    assert mean["auto", 10] > mean["random", 10] + 2 and mean["auto", 20] > mean["random", 20] + 2, mean
