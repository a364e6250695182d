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
from stack_template import whole_stack

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "infra")]

from aws_cdk.assertions import Template  # noqa: E402

from chalicelib.adapters.dataset_checks.batch import JOB_NAME_PREFIX  # noqa: E402
from chalicelib.services.dataset_builds import BUILD_PREFIX  # noqa: E402
from chalicelib.services.dataset_checks import VERDICT_PREFIX  # noqa: E402
from kilele_infra.worker_compute import WORKER_WRITES  # noqa: E402

STAGE = "test"


@pytest.fixture(scope="module")
def template() -> Template:
    return whole_stack(STAGE)  # one synthesis per test process (stack_template.py)


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
    assert _object_suffixes(statements, "s3:DeleteObject") == {f"/{VERDICT_PREFIX}*", "/datasets/*", f"/{BUILD_PREFIX}*"}
    assert f"/{VERDICT_PREFIX}*" in _object_suffixes(statements, "s3:GetObject")
    [datasets_table] = template.find_resources("AWS::DynamoDB::Table", {"Properties": {
        "TableName": f"kilele-{STAGE}-datasets"}})
    writes = [s for s in statements if "dynamodb:PutItem" in _as_list(s["Action"])]
    # The datasets table (and its indexes), no other.
    table = {"Fn::GetAtt": [datasets_table, "Arn"]}
    assert [r for s in writes for r in _as_list(s["Resource"])] == [
        table, {"Fn::Join": ["", [table, "/index/*"]]}]


# -- a dataset of labelled captured traffic (issue 12 item 6): built by the job, its end recorded at once


def test_the_worker_may_write_a_built_datasets_file() -> None:
    assert BUILD_PREFIX in WORKER_WRITES


def test_the_ct_record_step_may_start_a_build(template: Template) -> None:
    _, record = _function(template, "chalicelib.workflows.lambda_entry.record_stress_test")
    env = record["Properties"]["Environment"]["Variables"]
    assert "KILELE_BATCH_CPU_JOB_QUEUE" in env and "KILELE_BATCH_JOB_DEFINITION" in env
    assert any("batch:SubmitJob" in _as_list(s["Action"]) for s in _statements(template, record))


def test_a_dataset_jobs_end_invokes_the_function_that_records_it_and_goes_on(template: Template) -> None:
    function_id, function = _function(template, "app.dataset_job_ended")
    [rule] = [r for r in template.find_resources("AWS::Events::Rule").values()
              if any(t["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]} for t in r["Properties"].get("Targets", []))]
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.batch"] and pattern["detail-type"] == ["Batch Job State Change"]
    assert pattern["detail"]["status"] == ["SUCCEEDED", "FAILED"]
    assert pattern["detail"]["jobName"] == [{"prefix": JOB_NAME_PREFIX}]
    queues = list(template.find_resources("AWS::Batch::JobQueue"))
    assert sorted(q["Fn::GetAtt"][0] for q in pattern["detail"]["jobQueue"]) == sorted(queues)
    # It records the verdict and starts the retrain's train job: the tables, the bucket, executions.
    actions = {a for s in _statements(template, function) for a in _as_list(s["Action"])}
    assert {"dynamodb:PutItem", "s3:GetObject*", "s3:PutObject", "states:StartExecution"} <= actions
    assert template.find_resources("AWS::Lambda::Permission", {"Properties": {
        "FunctionName": {"Fn::GetAtt": [function_id, "Arn"]}, "Principal": "events.amazonaws.com"}})
