"""The loop where pandas is missing (the API and workflow Lambdas on AWS): a retrain on
``labelled_captured_traffic`` cannot build its dataset there, and says so on the app's timeline
(``retrain_failed``) instead of failing the continuous test whose breach it reacts to.
tests/infra/test_lambda_data_steps.py runs this module in a process that cannot import pandas."""
from __future__ import annotations

import importlib.util

import pytest

from chalicelib.services.retrain_policies import CAPTURED

from unit.services.test_retrain_loop import breach, h, steps  # noqa: F401 - the loop's world


def _has_pandas() -> bool:
    try:
        return importlib.util.find_spec("pandas") is not None
    except ImportError:  # a finder that refuses it (the infra test's) says so by raising
        return False


@pytest.mark.skipif(_has_pandas(),
                    reason="pandas is here: tests/infra/test_lambda_data_steps.py runs this where it is not")
def test_a_captured_traffic_retrain_without_pandas_fails_with_why(h):  # noqa: F811
    h.services.retrain.set_policy(h.owner, "fraud", {"monitors": ["drift"], "dataset": CAPTURED})
    h.services.retrain.on_breaches(h.instance, [breach()])  # raises nothing: the breach is recorded
    last = h.services.app_timeline.get(h.owner, "fraud")[-1]
    assert steps(h)[-2:] == ["breach_seen", "retrain_failed"]
    assert "cannot read captured traffic" in last["reason"] and "names a dataset" in last["reason"]
