"""The advisor: the next configuration a train-job slot should try.

``propose(knob_config_json, history, seed, strategy)`` is a pure function. The propose Lambda
is stateless, so every call rebuilds the advisor's state from the job's trials (``history``,
read from DynamoDB) and the same (config, history, seed) always gives the same proposal.

Strategies
----------
* ``"tpe"``: Optuna's TPESampler (multivariate, ``constant_liar=True``). Only the first
  ``startup_trials(space)`` = d + 1 scored trials (d searched knobs) are drawn at random, not
  Optuna's default 10 (see ``startup_trials`` for why). An in-memory study
  is rebuilt each call with ``optuna.trial.create_trial``: COMPLETED trials with a score as
  COMPLETE (the study maximizes: higher scores are better), PENDING/RUNNING trials as RUNNING
  trials, which the constant liar counts as bad results, so a slot proposing while others run
  is steered away from their configurations. ERRORED/TERMINATED trials, and COMPLETED ones
  without a finite score, carry no score and are left out of the sampler (but are never
  proposed again).
* ``"gp"``: Gaussian-process Bayesian optimisation in NumPy (``chalicelib.advisor.gp``: Matérn
  5/2 ARD kernel on Yeo-Johnson-warped scores, log Expected Improvement, no near-copy of a tried
  configuration, constant liar for running trials), after the same ``startup_trials(space)``
  random draws. On the small budgets of train jobs a GP needs far
  fewer trials than TPE to find good configurations; its cost grows with the cube of the
  number of trials.
* ``"auto"`` (the default): ``"gp"`` while the model has at most ``GP_MAX_OBSERVATIONS``
  trials, ``"tpe"`` beyond (TPE's cost grows linearly and it needs many observations to shine).
* ``"random"``: uniform sampling; log-uniform for ``is_exp`` knobs.

Warm start: ``prior`` holds configurations that did best in earlier jobs of the same model and
task (best first; the server gathers them). While fewer than ``startup_trials(space)`` trials
have scores, they are proposed before any random start-up draw (those still in the space and
not tried yet), as Feurer, Springenberg and Hutter initialise Bayesian optimisation with the
best configurations of earlier data sets (AAAI 2015). ``"random"`` ignores them.

No configuration is proposed twice: a proposal whose fingerprint is already in the history is
re-drawn (for TPE, the rejected draw stays in the study as a RUNNING trial so the next draw
moves away), up to ``SAMPLER_ATTEMPTS`` times; then a finite space (only categorical and
integer knobs) is searched by enumeration from a seeded offset, which finds an unseen
configuration whenever one is left, and a continuous space is sampled at random with fresh
seeds. ``None`` means the space is exhausted: a config with only FixedKnobs gets exactly one
trial, a finite space one trial per configuration.

Screening schedule (PolicyKnob EARLY_STOP and/or QUICK_EVAL)
-------------------------------------------------------------
When the config has a PolicyKnob ``EARLY_STOP`` or ``QUICK_EVAL``, the advisor runs a
successive-halving-like schedule with two rungs:

1. New configurations are proposed as *screening* trials: those policy knobs True
   (train briefly / evaluate on part of the validation set), ``screening=True``.
2. A promotion is due whenever ``completed screening trials // promote_every`` (default 3)
   exceeds the number of full trials already in the history (in any status, so two slots do
   not both take the same promotion slot). The promoted configuration is the best-scoring
   COMPLETED screening configuration that has no full trial yet (ties: the earlier trial); it
   is proposed with the policy knobs False and ``screening=False``. Its fingerprint differs
   from its screening trial's because the screening flag is part of the fingerprint.
3. When no new configuration is left (finite space exhausted), the remaining screened
   configurations are promoted best first, regardless of the schedule; then ``None``.
4. The budget's last trial (``trials_left == 1``, when the caller knows the budget) is a full
   trial if none has run or is running yet: the best screened configuration is promoted, or,
   with none screened, a new configuration is trained fully. Screening trials are never ranked
   or served, so a job must not end with screening trials only.

So about one configuration in ``promote_every`` gets a full trial, always the best screened one
not yet trained. The other policies (SKIP_TRAIN, SHARE_PARAMS, DOWNSCALE) are always False.
Screening scores feed the sampler (one observation per configuration, at screening fidelity, so
that scores of different fidelities are not compared); the server ranks "best trials" on full
trials only. Without EARLY_STOP/QUICK_EVAL every trial is a full trial.

Fingerprint: sha256 of the canonical JSON (sorted keys, no spaces) of
``{"knobs": <non-policy knob values>, "screening": <bool>}``; values are canonicalised per knob
type (integers as int, floats as float, categorical values as written in the config), so a
trial read back from DynamoDB hashes like the proposal it came from.
"""
from __future__ import annotations

import hashlib
import itertools
import math
import random
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterator, Mapping, Optional, Sequence, Union

from chalicelib.advisor.space import SearchSpace, parse_knob_config
from chalicelib.lazy_modules import lazy_module

# numpy and optuna are imported when a proposal needs them: on AWS only the propose Lambda has them.
gp = lazy_module("chalicelib.advisor.gp")
tpe = lazy_module("chalicelib.advisor.tpe")

PENDING, RUNNING, COMPLETED, ERRORED, TERMINATED = "PENDING", "RUNNING", "COMPLETED", "ERRORED", "TERMINATED"
STATUSES = (PENDING, RUNNING, COMPLETED, ERRORED, TERMINATED)
STRATEGIES = ("auto", "gp", "tpe", "random")

PROMOTE_EVERY = 3
OPTUNA_DEFAULT_STARTUP_TRIALS = 10  # what the advisor used before (the bench's baseline)
GP_MAX_OBSERVATIONS = 100  # "auto" switches from the GP to TPE beyond (a proposal stays under ~0.5 s)
SAMPLER_ATTEMPTS = 16
RANDOM_ATTEMPTS = 1000

KnobConfigInput = Union[str, bytes, Mapping[str, Any]]


@dataclass
class TrialRecord:
    """One trial of the job as the advisor sees it (any status)."""

    knobs: dict
    score: Optional[float] = None
    status: str = COMPLETED
    screening: bool = False  # the trial ran with its screening policy knobs on

    def __post_init__(self) -> None:
        status = str(getattr(self.status, "value", self.status)).upper()
        if status not in STATUSES:
            raise ValueError(f"trial status must be one of {list(STATUSES)}, got {self.status!r}")
        self.status = status
        if isinstance(self.score, Decimal):
            self.score = float(self.score)
        self.screening = bool(self.screening)

    @property
    def finite_score(self) -> Optional[float]:
        """The score if the trial completed with a usable one."""
        if self.status != COMPLETED or self.score is None or isinstance(self.score, bool):
            return None
        try:
            score = float(self.score)
        except (TypeError, ValueError):
            return None
        return score if math.isfinite(score) else None

    @classmethod
    def of(cls, item: Union["TrialRecord", Mapping[str, Any]]) -> "TrialRecord":
        if isinstance(item, TrialRecord):
            return item
        if isinstance(item, Mapping):
            return cls(
                knobs=dict(item.get("knobs") or {}),
                score=item.get("score"),
                status=item.get("status", COMPLETED),
                screening=bool(item.get("screening", False)),
            )
        raise TypeError(f"history items must be TrialRecord or mappings, got {type(item).__name__}")


@dataclass
class Proposal:
    knobs: dict  # a value for every knob of the config, policy knobs as True/False
    screening: bool
    fingerprint: str  # sha256 of the non-policy knob values and the screening flag
    promoted_from: Optional[str] = field(default=None)  # fingerprint of the screening trial promoted


def fingerprint(knob_config_json: KnobConfigInput, knobs: Mapping[str, Any], screening: bool = False) -> str:
    """The fingerprint a trial with ``knobs`` has (the one ``propose`` would have given it)."""
    space = parse_knob_config(knob_config_json)
    values, _ = space.normalize(knobs)
    return space.fingerprint_of(values, screening)


def propose(
    knob_config_json: KnobConfigInput,
    history: Sequence[Union[TrialRecord, Mapping[str, Any]]],
    seed: int,
    strategy: str = "auto",
    *,
    promote_every: int = PROMOTE_EVERY,
    trials_left: Optional[int] = None,
    prior: Sequence[Mapping[str, Any]] = (),
) -> Optional[Proposal]:
    """The next trial to run, or None when the space is exhausted (see the module docstring).

    ``trials_left``: how many trials the job's budget still allows for this model, this one
    included (None: not bounded by a count); it only matters with screening (rule 4).
    ``prior``: knobs of earlier jobs' best trials of the same model and task (warm start)."""
    space = parse_knob_config(knob_config_json)
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown advisor strategy {strategy!r} (expected one of {list(STRATEGIES)})")
    if isinstance(seed, bool) or not isinstance(seed, int):
        try:
            seed = int(seed.__index__())  # numpy integers
        except AttributeError:
            raise ValueError(f"seed must be an integer, got {seed!r}") from None
    if isinstance(promote_every, bool) or not isinstance(promote_every, int) or promote_every < 1:
        raise ValueError(f"promote_every must be a positive integer, got {promote_every!r}")
    trials = [_Trial.of(space, TrialRecord.of(r)) for r in history]

    if not space.has_screening:
        values = _new_configuration(space, trials, seed, strategy, screening_mode=False, prior=prior)
        return None if values is None else _proposal(space, values, screening=False)

    full = [t for t in trials if not t.record.screening]
    full_keys = {t.key for t in full}
    candidates = _promotion_candidates(trials, full_keys)
    n_screened = sum(1 for t in trials if t.record.screening and t.record.finite_score is not None)
    if trials_left is not None and trials_left <= 1 and not any(t.record.status in (PENDING, RUNNING, COMPLETED) for t in full):
        if candidates:
            return _promotion(space, candidates[0])
        values = _new_configuration(space, trials, seed, strategy, screening_mode=True, prior=prior)
        return None if values is None else _proposal(space, values, screening=False)
    if candidates and n_screened // promote_every > len(full):
        return _promotion(space, candidates[0])
    values = _new_configuration(space, trials, seed, strategy, screening_mode=True, prior=prior)
    if values is not None:
        return _proposal(space, values, screening=True)
    if candidates:  # nothing new left to screen: train the rest, best first
        return _promotion(space, candidates[0])
    return None


# --- internals ---------------------------------------------------------------------------


@dataclass
class _Trial:
    record: TrialRecord
    values: dict  # canonical non-policy knob values
    valid: bool  # within the current space
    key: str

    @classmethod
    def of(cls, space: SearchSpace, record: TrialRecord) -> "_Trial":
        values, valid = space.normalize(record.knobs)
        return cls(record, values, valid, space.key(values))


def _proposal(space: SearchSpace, values: dict, screening: bool, promoted_from: Optional[str] = None) -> Proposal:
    return Proposal(
        knobs=space.full_knobs(values, screening),
        screening=screening,
        fingerprint=space.fingerprint_of(values, screening),
        promoted_from=promoted_from,
    )


def _promotion(space: SearchSpace, trial: _Trial) -> Proposal:
    return _proposal(space, trial.values, screening=False, promoted_from=space.fingerprint_of(trial.values, True))


def _promotion_candidates(trials: list[_Trial], full_keys: set[str]) -> list[_Trial]:
    """Completed screening configurations without a full trial, best score first."""
    scored = [
        (i, t) for i, t in enumerate(trials)
        if t.record.screening and t.valid and t.record.finite_score is not None and t.key not in full_keys
    ]
    scored.sort(key=lambda it: (-it[1].record.finite_score, it[0]))
    out, keys = [], set()
    for _, t in scored:
        if t.key not in keys:
            keys.add(t.key)
            out.append(t)
    return out


def _derive_seed(seed: int, *parts: Any) -> int:
    """A 32-bit seed (what numpy accepts) from the caller's seed and a purpose."""
    text = ":".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def _new_configuration(
    space: SearchSpace, trials: list[_Trial], seed: int, strategy: str, screening_mode: bool,
    prior: Sequence[Mapping[str, Any]] = (),
) -> Optional[dict]:
    """Values for a configuration that no trial of the history has used, or None if none is left."""
    seen = {t.key for t in trials}
    if space.size is not None and len({t.key for t in trials if t.valid}) >= space.size:
        return None
    if space.size == 1:
        return space.complete({})

    draws = _draws(space, trials, seed, strategy, screening_mode)
    if prior and strategy != "random" and gp.n_complete(_observations(trials, screening_mode)) < startup_trials(space):
        draws = itertools.chain(_prior_draws(space, prior), draws)
    for _, values in zip(range(SAMPLER_ATTEMPTS), draws):
        if space.key(values) not in seen:
            return values

    rng = random.Random(_derive_seed(seed, "fallback"))
    if space.size is not None:
        # At most len(seen) configurations are taken, so len(seen) + 1 consecutive indices
        # from any offset include a free one (we know one exists).
        start = rng.randrange(space.size)
        for step in range(min(space.size, len(seen) + 1)):
            values = space.point_at((start + step) % space.size)
            if space.key(values) not in seen:
                return values
        raise AssertionError("a finite space with free configurations had none in reach")  # pragma: no cover
    for _ in range(RANDOM_ATTEMPTS):
        values = space.sample(rng)
        if space.key(values) not in seen:
            return values
    raise RuntimeError(
        f"found no untried configuration in {RANDOM_ATTEMPTS} random draws of a continuous space; "
        "are its float ranges too narrow to hold distinct values?"
    )


def _draws(space: SearchSpace, trials: list[_Trial], seed: int, strategy: str, screening_mode: bool) -> Iterator[dict]:
    """The strategy's proposals, best first (the caller skips configurations already tried)."""
    if strategy == "random":
        return _random_draws(space, _derive_seed(seed, "random"))
    observations = _observations(trials, screening_mode)
    if strategy == "auto":
        strategy = "gp" if len(observations) <= GP_MAX_OBSERVATIONS else "tpe"
    if strategy == "gp":
        if gp.n_complete(observations) < startup_trials(space):
            return _random_draws(space, _derive_seed(seed, "gp-startup"))
        return _gp_else_tpe(space, observations, seed)
    return _tpe_draws(space, observations, _derive_seed(seed, "tpe"))


def _gp_else_tpe(space: SearchSpace, observations: list, seed: int) -> Iterator[dict]:
    """The GP's proposals; TPE's if no GP can be fitted (a kernel matrix that is singular for
    every hyperparameter tried): a proposal is always made."""
    draws = gp.gp_draws(space, observations, _derive_seed(seed, "gp"))
    try:
        first = next(draws)
    except gp.np.linalg.LinAlgError:
        yield from _tpe_draws(space, observations, _derive_seed(seed, "tpe"))
        return
    yield first
    yield from draws


def _prior_draws(space: SearchSpace, prior: Sequence[Mapping[str, Any]]) -> Iterator[dict]:
    """The warm-start configurations that lie in the space, in the caller's order."""
    for knobs in prior:
        values, valid = space.normalize(knobs)
        if valid:
            yield values


def _random_draws(space: SearchSpace, seed: int) -> Iterator[dict]:
    rng = random.Random(seed)
    while True:
        yield space.sample(rng)


def _observations(trials: list[_Trial], screening_mode: bool) -> list[tuple[dict, str, Optional[float]]]:
    """What the sampler learns from: ``(values, "COMPLETE" | "RUNNING", score)``.

    With screening, one observation per configuration: its screening trial (full trials of
    the same configuration are at another fidelity); a full trial counts only if its
    configuration was never screened."""
    if screening_mode:
        screened = {t.key for t in trials if t.record.screening}
        trials = [t for t in trials if t.record.screening or t.key not in screened]
    out = []
    for t in trials:
        if not t.valid:
            continue
        if t.record.status in (PENDING, RUNNING):
            out.append((t.values, "RUNNING", None))
        elif t.record.finite_score is not None:
            out.append((t.values, "COMPLETE", t.record.finite_score))
    return out


def startup_trials(space: SearchSpace) -> int:
    """How many scored trials are random draws before TPE or the GP models the history: d + 1
    for d searched knobs (at least 2).

    Why not Optuna's default 10: a train job's budget is often 10-20 trials, and 10 random
    start-up draws make TPE a random search for most of it. d + 1 is the fewest observations
    a d-dimensional density model can be fitted on, and the default of BOHB's multivariate KDE
    (``min_points_in_model = d + 1``, Falkner et al., ICML 2018); SMAC3 likewise caps its
    initial design at a quarter of the budget. The value was chosen from that literature and
    checked on the bench's development sets (``bench/advisor_quality.py --dev``), never on the
    data sets the bench reports; there, d and d + 2 did worse than d + 1 for the GP."""
    return max(2, len(space.searched) + 1)


def _tpe_draws(space: SearchSpace, observations: list, seed: int) -> Iterator[dict]:
    return tpe.tpe_draws(space, observations, seed, startup_trials(space))
