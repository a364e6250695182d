"""The ASL templates and their rendering for AWS and for the local stack."""
from __future__ import annotations

import json

import pytest

from chalicelib.resources import RESOURCES
from chalicelib.workflows import lambda_entry
from chalicelib.workflows.handlers import FUNCTION_PLACEHOLDERS, HANDLERS
from chalicelib.workflows.render import (
    LOCAL_LAMBDA_PREFIX,
    SQS_WAIT_FOR_TOKEN,
    lambda_tasks_to_shim,
    load_template,
    placeholders,
    render_aws,
    render_local,
    substitute,
)

VALUES = {"TrialsQueueUrl": "https://sqs/trials", "MaxTrialsPerExecution": 100}


@pytest.mark.parametrize("machine", RESOURCES.state_machines, ids=lambda m: m.name)
def test_every_lambda_placeholder_names_a_handler(machine):
    lambda_placeholders = {p for p in placeholders(load_template(machine.template)) if p.endswith("FunctionArn")}
    assert lambda_placeholders <= set(FUNCTION_PLACEHOLDERS)
    assert set(FUNCTION_PLACEHOLDERS.values()) == set(HANDLERS)


def test_aws_rendering_fills_every_placeholder_and_keeps_lambda_states():
    arns = {p: f"arn:aws:lambda:us-east-1:1:function:{f}" for p, f in FUNCTION_PLACEHOLDERS.items()}
    definition = json.loads(render_aws("train_worker", {**VALUES, **arns}))
    assert definition["States"]["Propose"]["Resource"] == arns["ProposeTrialFunctionArn"]
    assert "${" not in json.dumps(definition)


def test_a_missing_placeholder_is_an_error():
    with pytest.raises(KeyError, match="TrialsQueueUrl"):
        substitute(load_template("train_worker"), {"MaxTrialsPerExecution": 1})


def test_local_rendering_turns_lambda_states_into_shim_messages():
    definition = json.loads(render_local("train_worker", VALUES, "https://sqs/shim"))
    propose = definition["States"]["Propose"]
    assert propose["Resource"] == SQS_WAIT_FOR_TOKEN
    assert propose["Parameters"] == {
        "QueueUrl": "https://sqs/shim",
        "MessageBody": {"function": "propose_trial", "task_token.$": "$$.Task.Token", "input.$": "$"},
    }
    assert propose["Catch"] and propose["ResultPath"] == "$"  # everything else is kept
    queued = definition["States"]["QueueTrial"]
    assert queued["Parameters"]["QueueUrl"] == "https://sqs/trials"  # non-Lambda tasks untouched
    assert definition["States"]["RunTrial"]["Resource"].startswith("arn:aws:states:::aws-sdk:s3:")
    assert LOCAL_LAMBDA_PREFIX not in json.dumps(definition)


def test_shim_rewrite_reaches_nested_states_and_keeps_parameters():
    definition = {"StartAt": "M", "States": {"M": {"Type": "Map", "ItemProcessor": {"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": f"{LOCAL_LAMBDA_PREFIX}f", "Parameters": {"x.$": "$.y"}, "End": True},
    }}, "End": True}}}
    task = lambda_tasks_to_shim(definition, "q")["States"]["M"]["ItemProcessor"]["States"]["T"]
    assert task["Parameters"]["MessageBody"] == {"function": "f", "task_token.$": "$$.Task.Token", "input": {"x.$": "$.y"}}


def test_lambda_entries_call_their_handlers(monkeypatch):
    calls = []
    monkeypatch.setitem(HANDLERS, "propose_trial", lambda event: calls.append(event) or {"ok": True})
    assert lambda_entry.propose_trial({"a": 1}, None) == {"ok": True} and calls == [{"a": 1}]
    assert set(lambda_entry.__all__) == set(HANDLERS)
