"""Synthesis checks of large datasets' check jobs on AWS (issue 13, finding 3;
infra/kilele_infra/dataset_checks.py): the API may submit the check to the worker's Batch queue
and knows where; the job's verdict prefix is one the worker's trial role may write; the
job-failed Lambda may record a dead check (its table, its verdict, a refused file) and no more.

What synthesis cannot show (a real Batch job pulling the worker image and reading a 2 GiB file)
is listed in infra/README.md."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "infra")]

from aws_cdk import App  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402

from chalicelib.services.dataset_checks import VERDICT_PREFIX  # noqa: E402
from kilele_infra import KileleStack  # noqa: E402
from kilele_infra.worker_compute import WORKER_WRITES  # noqa: E402

STAGE = "test"


@pytest.fixture(scope="module")
def template() -> Template:
    app = App(context={"aws:cdk:bundling-stacks": []})  # no asset bundling: synth never runs pip
    return Template.from_stack(KileleStack(app, f"kilele-{STAGE}", stage=STAGE))


def _function(template: Template, handler: str) -> tuple[str, dict[str, Any]]:
    [(function_id, function)] = template.find_resources("AWS::Lambda::Function",
                                                        {"Properties": {"Handler": handler}}).items()
    return function_id, function


def _statements(template: Template, function: dict[str, Any]) -> list[dict[str, Any]]:
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    return [statement for policy in template.find_resources("AWS::IAM::Policy").values()
            if {"Ref": role} in policy["Properties"]["Roles"]
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _object_suffixes(statements: list[dict[str, Any]], action: str) -> set[str]:
    """The object key patterns of the data bucket ``action`` is granted on (``/prefix*``)."""
    found = set()
    for statement in statements:
        if action in _as_list(statement["Action"]):
            for resource in _as_list(statement["Resource"]):
                if isinstance(resource, dict) and "Fn::Join" in resource:
                    found.add(resource["Fn::Join"][1][-1])
    return found


def test_the_api_submits_checks_to_the_worker_queue_it_is_told_of(template: Template) -> None:
    _, api = _function(template, "app.app")
    env = api["Properties"]["Environment"]["Variables"]
    [cpu_queue] = [q for q in template.find_resources("AWS::Batch::JobQueue") if "Cpu" in q]
    [cpu_definition] = [d for d in template.find_resources("AWS::Batch::JobDefinition") if "Cpu" in d]
    assert env["KILELE_BATCH_CPU_JOB_QUEUE"] == {"Fn::GetAtt": [cpu_queue, "JobQueueArn"]}
    assert env["KILELE_BATCH_JOB_DEFINITION"] == {"Ref": cpu_definition}
    submits = [s for s in _statements(template, api) if "batch:SubmitJob" in _as_list(s["Action"])]
    assert submits, "the API may not submit Batch jobs"
    resources = [r for s in submits for r in _as_list(s["Resource"])]
    assert {"Fn::GetAtt": [cpu_queue, "JobQueueArn"]} in resources and {"Ref": cpu_definition} in resources


def test_the_worker_may_write_the_verdict_where_the_platform_reads_it() -> None:
    assert VERDICT_PREFIX in WORKER_WRITES


def test_the_job_failed_lambda_records_a_dead_check_and_no_more(template: Template) -> None:
    _, function = _function(template, "app.batch_job_failed")
    statements = _statements(template, function)
    assert _object_suffixes(statements, "s3:DeleteObject") == {f"/{VERDICT_PREFIX}*", "/datasets/*"}
    assert f"/{VERDICT_PREFIX}*" in _object_suffixes(statements, "s3:GetObject")
    [datasets_table] = template.find_resources("AWS::DynamoDB::Table", {"Properties": {
        "TableName": f"kilele-{STAGE}-datasets"}})
    writes = [s for s in statements if "dynamodb:PutItem" in _as_list(s["Action"])]
    # The datasets table (and its indexes), no other.
    table = {"Fn::GetAtt": [datasets_table, "Arn"]}
    assert [r for s in writes for r in _as_list(s["Resource"])] == [
        table, {"Fn::Join": ["", [table, "/index/*"]]}]
