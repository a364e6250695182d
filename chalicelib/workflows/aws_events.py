"""Entry points of the non-HTTP Lambdas on AWS: trial dispatch from the trials queue and the
Batch job-state-change rule. (Locally chalicelib/local/trial_runner.py does the dispatching.)"""
from __future__ import annotations

import json
from typing import Any, Iterable


def dispatch_trials(bodies: Iterable[str]) -> list[str]:
    """Submit each trials-queue message to the worker's compute (Batch)."""
    from chalicelib.wiring import trial_dispatcher

    dispatcher = trial_dispatcher()
    return [dispatcher.dispatch(json.loads(body)) for body in bodies]


def batch_job_failed(detail: dict[str, Any]) -> Any:
    """A Batch job ended FAILED: fail its trial's task token now rather than at the heartbeat timeout."""
    from chalicelib.wiring import trial_dispatcher

    return trial_dispatcher().fail_lost_job(detail)
