"""Issue 13, finding 4: every Lambda task of every state machine retries Lambda's transient
errors with backoff, so one throttle or service hiccup does not fail a worker slot, a stress
test or an image build. Parses every ASL template under chalicelib/workflows."""
from __future__ import annotations

import json
import re
from typing import Any, Iterator

import pytest

from chalicelib.workflows.handlers import FUNCTION_PLACEHOLDERS
from chalicelib.workflows.render import WORKFLOWS_DIR

TRANSIENT_LAMBDA_ERRORS = {"Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException",
                           "Lambda.TooManyRequestsException"}
_FUNCTION = re.compile(r"^\$\{(\w+)\}$")
TEMPLATES = sorted(WORKFLOWS_DIR.glob("*.asl.json"))


def _states(states: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in states.items():
        yield name, state
        for nested in ("ItemProcessor", "Iterator"):
            if nested in state:
                yield from _states(state[nested]["States"])
        for branch in state.get("Branches", []):
            yield from _states(branch["States"])


def _lambda_tasks(definition: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Task states whose resource is a workflow Lambda (a ``${...FunctionArn}`` placeholder, or
    a direct ``lambda:invoke`` integration)."""
    tasks = []
    for name, state in _states(definition["States"]):
        if state.get("Type") != "Task":
            continue
        resource = state.get("Resource", "")
        match = _FUNCTION.match(resource)
        if (match and match.group(1) in FUNCTION_PLACEHOLDERS) or resource.startswith("arn:aws:states:::lambda:"):
            tasks.append((name, state))
    return tasks


def test_there_are_templates_with_lambda_tasks() -> None:
    assert {p.name for p in TEMPLATES} >= {"train_worker.asl.json", "stress_test.asl.json", "managed_image.asl.json"}
    for path in TEMPLATES:
        assert _lambda_tasks(json.loads(path.read_text())), path.name


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_every_lambda_task_retries_transient_lambda_errors_with_backoff(path) -> None:
    definition = json.loads(path.read_text())
    missing = []
    for name, state in _lambda_tasks(definition):
        covered: set[str] = set()
        for retrier in state.get("Retry", []):
            errors = set(retrier["ErrorEquals"]) & TRANSIENT_LAMBDA_ERRORS
            if not errors:
                continue
            # backoff: more than one attempt, waits that grow
            assert retrier.get("MaxAttempts", 3) >= 3, (path.name, name, retrier)
            assert retrier.get("IntervalSeconds", 1) >= 1, (path.name, name, retrier)
            assert retrier.get("BackoffRate", 2.0) > 1.0, (path.name, name, retrier)
            covered |= errors
        if covered != TRANSIENT_LAMBDA_ERRORS:
            missing.append((name, sorted(TRANSIENT_LAMBDA_ERRORS - covered)))
    assert not missing, f"{path.name}: Lambda tasks without retries of {missing}"
