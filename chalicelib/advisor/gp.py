"""Gaussian-process Bayesian optimisation for the advisor, in NumPy only.

Why not Optuna's GPSampler: it needs PyTorch and SciPy, far too large for the API Lambda that
runs the advisor (optuna alone is already a large part of its package). This follows the same
design as GPSampler's documentation describes, sized for a train job's small budgets:

* the searched knobs are encoded into the unit cube: float and integer knobs linearly, or on a
  log scale for ``is_exp`` knobs; categorical knobs one-hot;
* the scores are standardised and passed through the Yeo-Johnson power transform whose
  exponent fits them best (``yeo_johnson``; HEBO's output warping): a few diverged trials no
  longer dominate the fit, yet the gaps between scores keep their size;
* a GP with a Matérn 5/2 kernel with one length scale per knob (ARD), fitted by maximising the
  marginal likelihood (a log-normal prior keeps length scales away from degenerate values) over
  a grid, then refined knob by knob;
* the log of Expected Improvement (``log_expected_improvement``, Ament et al. 2023's LogEI:
  the same maximiser, but no underflow to 0 far from the incumbent), maximised over random
  candidates plus perturbations of the best trials so far, then around the best candidates;
  integer and categorical values are snapped to the values a trial can take before they are
  scored (Garrido-Merchán & Hernández-Lobato 2020), so the acquisition sees real
  configurations;
* a candidate that repeats a tried configuration up to ``NEAR`` of each numeric knob's range
  (same categorical values) is not proposed while another is left (``near_tried``): such a
  trial almost never scores differently, and validation scores that tie in steps made the GP
  spend trials on those;
* trials still running count as observations at the worst score so far (the constant liar, as
  the TPE strategy does), so slots proposing at the same time spread out.

Everything is seeded from the caller's seed: the same (space, observations, seed) always gives
the same proposals. The settings were compared only on development problems (bench/
advisor_quality.py --dev and synthetic test functions), never on the data sets the bench reports.
"""
from __future__ import annotations

import math
import random
from typing import Iterator

import numpy as np
from threadpoolctl import threadpool_limits

from chalicelib.advisor.space import SearchSpace

_SQRT5 = math.sqrt(5.0)
_GRID_LENGTH_SCALES = (0.1, 0.2, 0.4, 0.8, 1.6)
_GRID_AMPLITUDES = (0.5, 1.0, 2.0)
_GRID_NOISES = (1e-6, 1e-3, 1e-2, 1e-1)  # accuracies tie and plateau: let the data pick
_REFINE_FACTORS = (0.25, 0.5, 2.0, 4.0)
_PRIOR_LOG_LENGTH_SCALE, _PRIOR_SD = math.log(0.5), 1.0
_N_RANDOM, _N_LOCAL_CENTRES, _N_LOCAL_EACH, _N_POLISH_CENTRES, _N_POLISH_EACH = 1000, 5, 200, 20, 50
_LOCAL_SD, _POLISH_SD, _CATEGORY_FLIP = 0.1, 0.02, 0.2
_YEO_JOHNSON_LAMBDAS = np.arange(-3.0, 6.0001, 0.25)
NEAR = 0.03  # share of a numeric knob's (encoded) range within which two values count as one


class Encoder:
    """The searched knobs of a space <-> points of the unit cube (one column per numeric knob,
    one per category of a categorical knob)."""

    def __init__(self, space: SearchSpace):
        self.space = space
        self.columns: list[tuple[int, int]] = []  # per searched knob: (first column, width)
        width = 0
        for k in space.searched:
            n = len(k.values) if k.kind == "categorical" else 1
            self.columns.append((width, n))
            width += n
        self.width = width
        self.numeric = np.zeros(width, dtype=bool)  # the columns of numeric knobs
        for k, (start, _) in zip(space.searched, self.columns):
            self.numeric[start] = k.kind != "categorical"

    def scale(self, k) -> tuple[float, float]:
        """The ends of a numeric knob's range on its encoded scale (log for ``is_exp``)."""
        low, high = float(k.low), float(k.high)
        return (math.log(low), math.log(high)) if k.log else (low, high)

    def encode(self, values: dict) -> np.ndarray:
        u = np.zeros(self.width)
        for k, (start, n) in zip(self.space.searched, self.columns):
            if k.kind == "categorical":
                u[start + k.index_of(values[k.name])] = 1.0
            else:
                a, b = self.scale(k)
                x = math.log(values[k.name]) if k.log else float(values[k.name])
                u[start] = (x - a) / (b - a)
        return u

    def value_of(self, k, u: float):
        """The value of numeric knob ``k`` at encoded position ``u`` (integers rounded)."""
        a, b = self.scale(k)
        x = a + float(np.clip(u, 0.0, 1.0)) * (b - a)
        x = math.exp(x) if k.log else x
        if k.kind == "integer":
            return int(min(int(k.high), max(int(k.low), round(x))))
        return min(float(k.high), max(float(k.low), x)) + 0.0

    def decode(self, u: np.ndarray) -> dict:
        searched = {}
        for k, (start, n) in zip(self.space.searched, self.columns):
            if k.kind == "categorical":
                searched[k.name] = k.values[int(np.argmax(u[start:start + n]))]
            else:
                searched[k.name] = self.value_of(k, u[start])
        return self.space.complete(searched)

    def snap(self, points: np.ndarray) -> np.ndarray:
        """Each row moved to the configuration it decodes to (integers rounded, one category)."""
        out = np.clip(points, 0.0, 1.0)
        for k, (start, n) in zip(self.space.searched, self.columns):
            if k.kind == "categorical":
                best = np.argmax(out[:, start:start + n], axis=1)
                out[:, start:start + n] = np.eye(n)[best]
            elif k.kind == "integer":
                a, b = self.scale(k)
                x = a + out[:, start] * (b - a)
                v = np.clip(np.round(np.exp(x) if k.log else x), int(k.low), int(k.high))
                out[:, start] = ((np.log(v) if k.log else v) - a) / (b - a)
        return out

    def random(self, rng: np.random.Generator, m: int) -> np.ndarray:
        points = rng.random((m, self.width))
        return self.snap(points)

    def perturb(self, rng: np.random.Generator, centres: np.ndarray, each: int, sd: float) -> np.ndarray:
        points = np.repeat(centres, each, axis=0)
        points = points + rng.normal(0.0, sd, points.shape)
        for k, (start, n) in zip(self.space.searched, self.columns):
            if k.kind == "categorical":  # keep the centre's category, or draw another at random
                flip = rng.random(len(points)) < _CATEGORY_FLIP
                block = np.repeat(centres[:, start:start + n], each, axis=0)
                block[flip] = np.eye(n)[rng.integers(0, n, int(flip.sum()))]
                points[:, start:start + n] = block
        return self.snap(points)

    def column_groups(self) -> list[slice]:
        return [slice(start, start + n) for start, n in self.columns]


def _sq_dists(a: np.ndarray, b: np.ndarray, groups: list[slice]) -> np.ndarray:
    """Squared distances per knob, ``[knob, row of a, row of b]`` (computed once per fit)."""
    return np.stack([np.sum((a[:, None, g] - b[None, :, g]) ** 2, axis=-1) for g in groups])


def _matern52(sq: np.ndarray, knob_scales: np.ndarray) -> np.ndarray:
    r = np.sqrt(np.maximum(np.tensordot(1.0 / knob_scales**2, sq, axes=1), 0.0))
    return (1.0 + _SQRT5 * r + (5.0 / 3.0) * r * r) * np.exp(-_SQRT5 * r)


class _GP:
    """A fitted GP: ``predict(points) -> (mean, sd)`` on the transformed score scale."""

    def __init__(self, x: np.ndarray, y: np.ndarray, groups: list[slice], knob_scales: np.ndarray,
                 amplitude: float, noise: float):
        self.x, self.groups, self.knob_scales, self.amplitude = x, groups, knob_scales, amplitude
        k = amplitude * _matern52(_sq_dists(x, x, groups), knob_scales) + (noise + 1e-8) * np.eye(len(x))
        self.chol = np.linalg.cholesky(k)
        self.alpha = np.linalg.solve(self.chol.T, np.linalg.solve(self.chol, y))

    def predict(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cross = self.amplitude * _matern52(_sq_dists(points, self.x, self.groups), self.knob_scales)
        mean = cross @ self.alpha
        v = np.linalg.solve(self.chol, cross.T)
        var = np.maximum(self.amplitude - np.sum(v * v, axis=0), 1e-12)
        return mean, np.sqrt(var)


def _objective(sq: np.ndarray, y: np.ndarray, knob_scales: np.ndarray, amplitude: float, noise: float) -> float:
    """Log marginal likelihood plus the log-normal prior on the length scales (-inf if singular)."""
    k = amplitude * _matern52(sq, knob_scales) + (noise + 1e-8) * np.eye(len(y))
    try:
        chol = np.linalg.cholesky(k)
    except np.linalg.LinAlgError:
        return -math.inf
    alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, y))
    fit = -0.5 * float(y @ alpha) - float(np.sum(np.log(np.diag(chol))))
    prior = -0.5 * float(np.sum(((np.log(knob_scales) - _PRIOR_LOG_LENGTH_SCALE) / _PRIOR_SD) ** 2))
    return fit + prior


def fit(x: np.ndarray, y: np.ndarray, groups: list[slice]) -> _GP:
    """The GP whose hyperparameters score best: a grid with one shared length scale, then each
    knob's length scale refined in turn (two sweeps)."""
    sq = _sq_dists(x, x, groups)
    best = (-math.inf, None, None, None)
    for scale in _GRID_LENGTH_SCALES:
        knob_scales = np.full(len(groups), scale)
        for amplitude in _GRID_AMPLITUDES:
            for noise in _GRID_NOISES:
                value = _objective(sq, y, knob_scales, amplitude, noise)
                if value > best[0]:
                    best = (value, knob_scales, amplitude, noise)
    value, knob_scales, amplitude, noise = best
    if knob_scales is None:
        raise np.linalg.LinAlgError("no GP hyperparameters give a positive definite kernel")
    for _ in range(2):
        for i in range(len(groups)):
            for factor in _REFINE_FACTORS:
                trial = knob_scales.copy()
                trial[i] = min(20.0, max(0.02, trial[i] * factor))
                candidate = _objective(sq, y, trial, amplitude, noise)
                if candidate > value:
                    value, knob_scales = candidate, trial
    return _GP(x, y, groups, knob_scales, amplitude, noise)


def yeo_johnson(scores: np.ndarray) -> np.ndarray:
    """Scores standardised, then through the Yeo-Johnson power transform whose exponent λ
    (a grid from -3 to 6) maximises the normal likelihood, then standardised again: the output
    warping of HEBO (Cowen-Rivers et al. 2022). Validation accuracies are skewed (a diverged
    model scores like the majority class, far below the rest): the transform pulls such a tail
    in, so the GP is not fitted to a few outliers, while the order of the scores, their ties
    and the relative size of the gaps among the good ones are kept (ranks, which the advisor
    used before, turn two equal failures 0.339 and 0.340 into scores a whole rank apart)."""
    sd = float(np.std(scores))
    if not sd > 0:
        return np.zeros(len(scores))
    z = (scores - scores.mean()) / sd
    pos = z >= 0
    log_jacobian = float(np.sum(np.sign(z) * np.log1p(np.abs(z))))
    best, out = -math.inf, z
    for lam in _YEO_JOHNSON_LAMBDAS:
        t = np.empty_like(z)
        t[pos] = np.log1p(z[pos]) if abs(lam) < 1e-9 else ((z[pos] + 1.0) ** lam - 1.0) / lam
        if abs(lam - 2.0) < 1e-9:
            t[~pos] = -np.log1p(-z[~pos])
        else:
            t[~pos] = -((1.0 - z[~pos]) ** (2.0 - lam) - 1.0) / (2.0 - lam)
        var = float(np.var(t))
        if not (var > 0 and math.isfinite(var)):
            continue
        likelihood = -0.5 * len(z) * math.log(var) + (lam - 1.0) * log_jacobian
        if likelihood > best:
            best, out = likelihood, t
    return (out - out.mean()) / max(float(np.std(out)), 1e-12)


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf, otypes=[float])(z / math.sqrt(2.0)))


def log_expected_improvement(mean: np.ndarray, sd: np.ndarray, best: float) -> np.ndarray:
    """log EI = log(sd) + log h(z), z = (mean - best) / sd, h(z) = φ(z) + z Φ(z): finite where
    EI itself underflows to 0 (Ament et al., "Unexpected improvements to expected improvement",
    NeurIPS 2023); for z < -5, h(z) = φ(z) / z² (1 - 3/z² + 15/z⁴ ...), the asymptotic series."""
    z = (mean - best) / sd
    out = np.empty_like(z)
    far = z < -5.0
    near = z[~far]
    h = np.exp(-0.5 * near * near) / math.sqrt(2.0 * math.pi) + near * _normal_cdf(near)
    out[~far] = np.log(np.maximum(h, 1e-300))
    zf = z[far]
    out[far] = -0.5 * zf * zf - 0.5 * math.log(2.0 * math.pi) - 2.0 * np.log(-zf) + np.log1p(-3.0 / zf**2 + 15.0 / zf**4)
    return out + np.log(sd)


def gp_draws(space: SearchSpace, observations: list, seed: int) -> Iterator[dict]:
    """Proposals best Expected Improvement first, then random draws forever.

    ``observations``: ``(values, "COMPLETE" | "RUNNING", score)`` as for TPE; at least two
    COMPLETE ones are needed (the caller draws the start-up design before that)."""
    # One BLAS thread: these matrices are small (a few hundred rows at most), and a threaded
    # OpenBLAS busy-waits, which on a shared or loaded machine made one proposal take 30 s
    # instead of 1 s (measured with 100 trials on 2 busy cores).
    with threadpool_limits(limits=1, user_api="blas"):
        candidates, acquisition = _candidates(space, observations, seed)
    yield from _best_first(space, candidates, acquisition, seed)


def _candidates(space: SearchSpace, observations: list, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Candidate points (encoded) and their log Expected Improvement under the fitted GP;
    -inf for candidates next to a tried configuration."""
    enc = Encoder(space)
    rng = np.random.default_rng(seed)
    done = [(enc.encode(v), s) for v, state, s in observations if state == "COMPLETE"]
    running = [enc.encode(v) for v, state, _ in observations if state == "RUNNING"]
    y_done = yeo_johnson(np.array([s for _, s in done], dtype=float))
    incumbent = float(np.max(y_done))
    # the constant liar: a running trial is taken to score as badly as the worst so far
    y = np.concatenate([y_done, np.full(len(running), float(np.min(y_done)))])
    x = np.array([p for p, _ in done] + running)
    gp = fit(x, y, enc.column_groups())

    def acquisition(points: np.ndarray) -> np.ndarray:
        return log_expected_improvement(*gp.predict(points), incumbent)

    order = np.argsort(-y_done, kind="stable")[:_N_LOCAL_CENTRES]
    centres = np.array([done[i][0] for i in order])
    candidates = np.vstack([enc.random(rng, _N_RANDOM), enc.perturb(rng, centres, _N_LOCAL_EACH, _LOCAL_SD)])
    values = acquisition(candidates)
    polish_from = candidates[np.argsort(-values, kind="stable")[:_N_POLISH_CENTRES]]
    polished = enc.perturb(rng, polish_from, _N_POLISH_EACH, _POLISH_SD)
    candidates = np.vstack([candidates, polished])
    values = np.concatenate([values, acquisition(polished)])
    return candidates, np.where(near_tried(enc, candidates, x), -np.inf, values)


def near_tried(enc: Encoder, candidates: np.ndarray, tried: np.ndarray, near: float = NEAR) -> np.ndarray:
    """Which candidates take the categorical values of a tried configuration and lie within
    ``near`` of it on every numeric knob (encoded scale). Integer knobs with few values are
    never merged (adjacent values are farther apart than ``near``)."""
    if len(tried) == 0:
        return np.zeros(len(candidates), dtype=bool)
    diff = np.abs(candidates[:, None, :] - tried[None, :, :])
    same_categories = np.all(diff[:, :, ~enc.numeric] < 1e-9, axis=2)
    close = np.all(diff[:, :, enc.numeric] < near, axis=2)
    return np.any(same_categories & close, axis=1)


def _best_first(space: SearchSpace, candidates: np.ndarray, acquisition: np.ndarray, seed: int) -> Iterator[dict]:
    enc = Encoder(space)
    rng = np.random.default_rng(seed + 1)
    yielded: set[str] = set()
    for index in np.argsort(-acquisition, kind="stable"):  # candidates near tried ones come last
        values = enc.decode(candidates[index])
        key = space.key(values)
        if key not in yielded:
            yielded.add(key)
            yield values
    fallback = random.Random(int(rng.integers(0, 2**32)))
    while True:  # every candidate was taken: random configurations (the caller skips seen ones)
        yield space.sample(fallback)


def n_complete(observations: list) -> int:
    """How many observations have a score."""
    return sum(1 for _, state, _ in observations if state == "COMPLETE")
