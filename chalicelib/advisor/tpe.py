"""The advisor's TPE strategy: Optuna's TPESampler on a study rebuilt from the observations.

Optuna is imported only here, and only when TPE proposes (it is large, and the GP strategy
does not need it).
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping

from chalicelib.advisor.space import SearchSpace


def _optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _distributions(space: SearchSpace) -> dict:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    dists = {}
    for k in space.searched:
        if k.kind == "categorical":  # by index: any JSON scalar works, and 1 / True / 1.0 stay apart
            dists[k.name] = CategoricalDistribution(list(range(len(k.values))))
        elif k.kind == "integer":
            dists[k.name] = IntDistribution(int(k.low), int(k.high), log=k.log)
        else:
            dists[k.name] = FloatDistribution(float(k.low), float(k.high), log=k.log)
    return dists


def _to_params(space: SearchSpace, values: dict) -> dict:
    return {k.name: (k.index_of(values[k.name]) if k.kind == "categorical" else values[k.name]) for k in space.searched}


def _from_params(space: SearchSpace, params: Mapping[str, Any]) -> dict:
    searched = {}
    for k in space.searched:
        p = params[k.name]
        if k.kind == "categorical":
            searched[k.name] = k.values[p]
        elif k.kind == "integer":
            searched[k.name] = int(p)
        else:
            searched[k.name] = min(float(k.high), max(float(k.low), float(p))) + 0.0
    return space.complete(searched)


def tpe_draws(space: SearchSpace, observations: list, seed: int, startup_trials: int) -> Iterator[dict]:
    """TPE proposals from a study rebuilt from the observations. Each draw stays in the study
    as a RUNNING trial, so the constant liar pushes the next draw away from it."""
    optuna = _optuna()
    from optuna.trial import TrialState

    dists = _distributions(space)
    sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True, n_startup_trials=startup_trials)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for values, state, score in observations:
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.COMPLETE if state == "COMPLETE" else TrialState.RUNNING,
                value=score,
                params=_to_params(space, values),
                distributions=dists,
            )
        )
    while True:
        trial = study.ask(fixed_distributions=dists)
        yield _from_params(space, trial.params)
