"""Synthesis checks (issue 11 item 3): the roles that run user code in managed images may do so --
the trials' dispatcher registers and submits to job definitions of the worker in other images
(and passes their roles), the worker jobs and SageMaker pull managed images, and the API may
look an image up in the stack's ECR registry (docker_image / custom_image)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from stack_template import whole_stack

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "infra")]

from aws_cdk.assertions import Template  # noqa: E402


STAGE = "test"


@pytest.fixture(scope="module")
def template() -> Template:
    return whole_stack(STAGE)  # one synthesis per test process (stack_template.py)


def _statements(template: Template, role_ref: dict) -> list[dict]:
    found = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        if role_ref in policy["Properties"]["Roles"]:
            found.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return found


def _actions(statement: dict) -> set[str]:
    value = statement["Action"]
    return set(value if isinstance(value, list) else [value])


def _role_of(template: Template, handler: str) -> dict:
    [function] = template.find_resources("AWS::Lambda::Function", {"Properties": {"Handler": handler}}).values()
    return {"Ref": function["Properties"]["Role"]["Fn::GetAtt"][0]}


def test_the_dispatcher_registers_and_submits_to_job_definitions_of_images_only(template: Template) -> None:
    statements = _statements(template, _role_of(template, "app.dispatch_trials"))
    [register] = [s for s in statements if "batch:RegisterJobDefinition" in _actions(s)]
    assert _actions(register) == {"batch:RegisterJobDefinition", "batch:SubmitJob"}
    assert f"job-definition/kilele-{STAGE}-worker*-img-*" in str(register["Resource"])
    assert any("batch:DescribeJobDefinitions" in _actions(s) for s in statements)
    [passing] = [s for s in statements if "iam:PassRole" in _actions(s)]
    assert len(passing["Resource"]) >= 2  # the job role and the execution role(s)


def test_managed_images_are_pulled_by_the_worker_jobs_and_by_sagemaker(template: Template) -> None:
    repository = next(k for k, v in template.find_resources("AWS::ECR::Repository").items()
                      if v["Properties"].get("RepositoryName") == f"kilele-{STAGE}-managed-images")
    pulls = [policy for policy in template.find_resources("AWS::IAM::Policy").values()
             if any("ecr:BatchGetImage" in _actions(s) and repository in str(s["Resource"])
                    for s in policy["Properties"]["PolicyDocument"]["Statement"])]
    roles = {str(role) for policy in pulls for role in policy["Properties"]["Roles"]}
    assert len(roles) >= 3  # CodeBuild's (it builds them), the worker jobs' execution role, SageMaker's


def test_the_api_may_look_images_up_in_the_stacks_registry(template: Template) -> None:
    statements = _statements(template, _role_of(template, "app.app"))
    assert any("ecr:DescribeImages" in _actions(s) for s in statements)
