"""Fills the ASL templates in, for AWS (infra passes the same placeholders to CDK's
DefinitionSubstitutions) or for the local stack.

moto runs state machines but not Lambda code, so for local use every Lambda task state is
rewritten into an ``sqs:sendMessage.waitForTaskToken`` state on the Lambda shim's queue; the
local shim answers it by calling the same Python handler (see chalicelib/local/lambda_shim.py).
"""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any, Iterator

from chalicelib.workflows.handlers import FUNCTION_PLACEHOLDERS

WORKFLOWS_DIR = Path(__file__).parent
LOCAL_LAMBDA_PREFIX = "local:lambda:"
SQS_WAIT_FOR_TOKEN = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


def load_template(name: str) -> str:
    return (WORKFLOWS_DIR / f"{name}.asl.json").read_text()


def placeholders(template: str) -> set[str]:
    return set(_PLACEHOLDER.findall(template))


def substitute(template: str, values: dict[str, Any]) -> str:
    """Replace every ``${Name}``; a placeholder without a value is an error, not left in."""
    missing = placeholders(template) - set(values)
    if missing:
        raise KeyError(f"no value for placeholders: {', '.join(sorted(missing))}")
    text = _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)
    json.loads(text)  # the result must still be valid JSON
    return text


def _task_states(states: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for state in states.values():
        if state.get("Type") == "Task":
            yield state
        for nested in ("ItemProcessor", "Iterator"):
            if nested in state:
                yield from _task_states(state[nested]["States"])
        for branch in state.get("Branches", []):
            yield from _task_states(branch["States"])


def lambda_tasks_to_shim(definition: dict[str, Any], shim_queue_url: str) -> dict[str, Any]:
    """Rewrite ``local:lambda:<handler>`` task states into task-token messages to the shim."""
    result = copy.deepcopy(definition)
    for state in _task_states(result["States"]):
        resource = state.get("Resource", "")
        if not resource.startswith(LOCAL_LAMBDA_PREFIX):
            continue
        function = resource[len(LOCAL_LAMBDA_PREFIX):]
        body: dict[str, Any] = {"function": function, "task_token.$": "$$.Task.Token"}
        if "Parameters" in state:
            body["input"] = state.pop("Parameters")
        else:
            body["input.$"] = "$"
        state["Resource"] = SQS_WAIT_FOR_TOKEN
        state["Parameters"] = {"QueueUrl": shim_queue_url, "MessageBody": body}
    return result


def render_local(name: str, values: dict[str, Any], shim_queue_url: str) -> str:
    """The definition for the local stack: Lambda placeholders become shim messages."""
    local_values = {p: f"{LOCAL_LAMBDA_PREFIX}{f}" for p, f in FUNCTION_PLACEHOLDERS.items()}
    definition = json.loads(substitute(load_template(name), {**local_values, **values}))
    return json.dumps(lambda_tasks_to_shim(definition, shim_queue_url))


def render_aws(name: str, values: dict[str, Any]) -> str:
    """The definition for AWS, with real Lambda ARNs among ``values``."""
    return substitute(load_template(name), values)
