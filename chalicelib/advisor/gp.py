"""Gaussian-process Bayesian optimisation for the advisor, in NumPy only.

Why not Optuna's GPSampler: it needs PyTorch and SciPy, far too large for the API Lambda that
runs the advisor (optuna alone is already a large part of its package). This follows the same
design as GPSampler's documentation describes, sized for a train job's small budgets:

* the searched knobs are encoded into the unit cube: float and integer knobs linearly, or on a
  log scale for ``is_exp`` knobs; categorical knobs one-hot;
* a GP with a Matérn 5/2 kernel with one length scale per knob (ARD), fitted to the scores'
  normal-quantile ranks (``gaussian_copula``) by maximising the marginal likelihood (a log-normal prior keeps length
  scales away from degenerate values) over a grid, then refined knob by knob;
* Expected Improvement, maximised over random candidates plus perturbations of the best trials
  so far, then around the best candidates; integer and categorical values are snapped to the
  values a trial can take before they are scored, so the acquisition sees real configurations;
* trials still running count as observations at the worst score so far (the constant liar, as
  the TPE strategy does), so slots proposing at the same time spread out.

Everything is seeded from the caller's seed: the same (space, observations, seed) always gives
the same proposals.
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

    def _scale(self, k) -> tuple[float, float]:
        low, high = float(k.low), float(k.high)
        return (math.log(low), math.log(high)) if k.log else (low, high)

    def encode(self, values: dict) -> np.ndarray:
        u = np.zeros(self.width)
        for k, (start, n) in zip(self.space.searched, self.columns):
            if k.kind == "categorical":
                u[start + k.index_of(values[k.name])] = 1.0
            else:
                a, b = self._scale(k)
                x = math.log(values[k.name]) if k.log else float(values[k.name])
                u[start] = (x - a) / (b - a)
        return u

    def decode(self, u: np.ndarray) -> dict:
        searched = {}
        for k, (start, n) in zip(self.space.searched, self.columns):
            if k.kind == "categorical":
                searched[k.name] = k.values[int(np.argmax(u[start:start + n]))]
                continue
            a, b = self._scale(k)
            x = a + float(np.clip(u[start], 0.0, 1.0)) * (b - a)
            x = math.exp(x) if k.log else x
            if k.kind == "integer":
                searched[k.name] = int(min(int(k.high), max(int(k.low), round(x))))
            else:
                searched[k.name] = min(float(k.high), max(float(k.low), x)) + 0.0
        return self.space.complete(searched)

    def snap(self, points: np.ndarray) -> np.ndarray:
        """Each row moved to the configuration it decodes to (integers rounded, one category)."""
        out = np.clip(points, 0.0, 1.0)
        for k, (start, n) in zip(self.space.searched, self.columns):
            if k.kind == "categorical":
                best = np.argmax(out[:, start:start + n], axis=1)
                out[:, start:start + n] = np.eye(n)[best]
            elif k.kind == "integer":
                a, b = self._scale(k)
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
    """A fitted GP: ``predict(points) -> (mean, sd)`` on the standardised score scale."""

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


def gaussian_copula(scores: np.ndarray) -> np.ndarray:
    """Scores replaced by the normal quantiles of their ranks, ``Φ⁻¹(rank / (n + 1))`` (ties
    share their mean rank): Salinas et al., "A quantile-based approach for hyperparameter
    transfer learning" (ICML 2020). Validation accuracies are skewed and plateau (a diverged
    model scores like the majority class); on ranks the GP fits the order of the trials, which
    is all the search needs, instead of being dominated by a few outliers."""
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(scores):  # ties: the mean of their ranks
        same = scores == value
        ranks[same] = ranks[same].mean()
    return np.array([_normal_quantile(r / (len(scores) + 1)) for r in ranks])


def _normal_quantile(p: float) -> float:
    """Φ⁻¹(p) for 0 < p < 1, by bisection on erf (exact to ~1e-12; called a few hundred times)."""
    low, high = -10.0, 10.0
    for _ in range(60):
        mid = 0.5 * (low + high)
        if 0.5 * (1.0 + math.erf(mid / math.sqrt(2.0))) < p:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf, otypes=[float])(z / math.sqrt(2.0)))


def expected_improvement(mean: np.ndarray, sd: np.ndarray, best: float) -> np.ndarray:
    z = (mean - best) / sd
    return (mean - best) * _normal_cdf(z) + sd * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


def gp_draws(space: SearchSpace, observations: list, seed: int) -> Iterator[dict]:
    """Proposals best Expected Improvement first, then random draws forever.

    ``observations``: ``(values, "COMPLETE" | "RUNNING", score)`` as for TPE; at least two
    COMPLETE ones are needed (the caller draws at random before that)."""
    # One BLAS thread: these matrices are small (a few hundred rows at most), and a threaded
    # OpenBLAS busy-waits, which on a shared or loaded machine made one proposal take 30 s
    # instead of 1 s (measured with 100 trials on 2 busy cores).
    with threadpool_limits(limits=1, user_api="blas"):
        candidates, ei = _candidates(space, observations, seed)
    yield from _best_first(space, candidates, ei, seed)


def _candidates(space: SearchSpace, observations: list, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Candidate points (encoded) and their Expected Improvement under the fitted GP."""
    enc = Encoder(space)
    rng = np.random.default_rng(seed)
    done = [(enc.encode(v), s) for v, state, s in observations if state == "COMPLETE"]
    running = [enc.encode(v) for v, state, _ in observations if state == "RUNNING"]
    y_done = gaussian_copula(np.array([s for _, s in done], dtype=float))
    incumbent = float(np.max(y_done))
    # the constant liar: a running trial is taken to score as badly as the worst so far
    y = np.concatenate([y_done, np.full(len(running), float(np.min(y_done)))])
    x = np.array([p for p, _ in done] + running)
    gp = fit(x, y, enc.column_groups())

    order = np.argsort(-y_done, kind="stable")[:_N_LOCAL_CENTRES]
    centres = np.array([done[i][0] for i in order])
    candidates = np.vstack([enc.random(rng, _N_RANDOM), enc.perturb(rng, centres, _N_LOCAL_EACH, _LOCAL_SD)])
    ei = expected_improvement(*gp.predict(candidates), incumbent)
    polish_from = candidates[np.argsort(-ei, kind="stable")[:_N_POLISH_CENTRES]]
    polished = enc.perturb(rng, polish_from, _N_POLISH_EACH, _POLISH_SD)
    candidates = np.vstack([candidates, polished])
    ei = np.concatenate([ei, expected_improvement(*gp.predict(polished), incumbent)])
    return candidates, ei


def _best_first(space: SearchSpace, candidates: np.ndarray, ei: np.ndarray, seed: int) -> Iterator[dict]:
    enc = Encoder(space)
    rng = np.random.default_rng(seed + 1)
    yielded: set[str] = set()
    for index in np.argsort(-ei, kind="stable"):
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
