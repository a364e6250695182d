"""The hyperparameter advisor of train jobs: pure Python, NumPy and Optuna, no AWS.

``propose(knob_config_json, history, seed, strategy="auto")`` returns the next :class:`Proposal`
(a value for every knob, the screening flag, a fingerprint the server claims atomically) or
None when the space is exhausted. The search strategies, the no-duplicate rule and the
screening / promotion schedule for PolicyKnob EARLY_STOP and QUICK_EVAL are documented in
:mod:`chalicelib.advisor.advisor`.
"""
from chalicelib.advisor.advisor import (
    COMPLETED,
    ERRORED,
    PENDING,
    PROMOTE_EVERY,
    RUNNING,
    STATUSES,
    STRATEGIES,
    TERMINATED,
    Proposal,
    TrialRecord,
    fingerprint,
    propose,
)
from chalicelib.advisor.space import SearchSpace, parse_knob_config

__all__ = [
    "propose", "fingerprint", "Proposal", "TrialRecord", "parse_knob_config", "SearchSpace",
    "PENDING", "RUNNING", "COMPLETED", "ERRORED", "TERMINATED", "STATUSES", "STRATEGIES", "PROMOTE_EVERY",
]
