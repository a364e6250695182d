"""Synthesis checks of the image builds (issues 11 and 13): CodeBuild's build-state events reach
the managed-image Lambda, and the platform images are built by the stack with content tags that
the Batch job definitions and SageMaker models use (never ``latest``).

What synthesis cannot show (that CodeBuild really emits these events, that a build really pushes)
is listed in infra/README.md as verified only by emulation."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from stack_template import whole_stack

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "infra")]

from aws_cdk.assertions import Match, Template  # noqa: E402


STAGE = "test"


@pytest.fixture(scope="module")
def template() -> Template:
    return whole_stack(STAGE)  # one synthesis per test process (stack_template.py)


def _function_id(template: Template, handler: str) -> str:
    found = template.find_resources("AWS::Lambda::Function", {"Properties": {"Handler": handler}})
    assert len(found) == 1, f"{handler}: {sorted(found)}"
    return next(iter(found))


def _role_actions(template: Template, function_id: str) -> set[str]:
    role = template.to_json()["Resources"][function_id]["Properties"]["Role"]["Fn::GetAtt"][0]
    actions: set[str] = set()
    for policy in template.find_resources("AWS::IAM::Policy").values():
        if {"Ref": role} in policy["Properties"]["Roles"]:
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                value = statement["Action"]
                actions.update(value if isinstance(value, list) else [value])
    return actions


def test_the_image_projects_finished_builds_reach_the_image_build_lambda(template: Template) -> None:
    handler = _function_id(template, "app.image_build_changed")
    template.has_resource_properties("AWS::Events::Rule", {
        "EventPattern": {
            "source": ["aws.codebuild"],
            "detail-type": ["CodeBuild Build State Change"],
            "detail": {
                "build-status": ["SUCCEEDED", "FAILED", "FAULT", "STOPPED", "TIMED_OUT"],
                "project-name": [f"kilele-{STAGE}-images"],
            },
        },
        "Targets": [Match.object_like({"Arn": {"Fn::GetAtt": [handler, "Arn"]},
                                       "RetryPolicy": {"MaximumEventAgeInSeconds": 7200, "MaximumRetryAttempts": 8}})],
    })
    actions = _role_actions(template, handler)
    # It records in the ledger and the image records, reads the freeze, and reads the build's log.
    assert {"dynamodb:ConditionCheckItem", "dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:Query"} <= actions \
        or {"dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:Query"} <= actions
    assert {"s3:GetObject*", "codebuild:BatchGetBuilds", "logs:GetLogEvents"} <= actions
    env = template.to_json()["Resources"][handler]["Properties"]["Environment"]["Variables"]
    assert env["KILELE_IMAGE_BUILDER_URI"] == f"codebuild://kilele-{STAGE}-images"


def test_the_build_ledger_table_is_deployed(template: Template) -> None:
    template.has_resource_properties("AWS::DynamoDB::Table", {
        "TableName": f"kilele-{STAGE}-image-builds",
        "KeySchema": [{"AttributeName": "key", "KeyType": "HASH"}],
    })


# -- the platform images (issue 13) ----------------------------------------------------------------


def _resource(template: Template, kind: str) -> tuple[str, dict]:
    [(logical_id, resource)] = template.find_resources(kind).items()
    return logical_id, resource


def test_the_stack_builds_the_four_platform_images_by_content_tag(template: Template) -> None:
    from kilele_infra.image_contexts import PLATFORM_IMAGES, content_tags

    _, resource = _resource(template, "Custom::KilelePlatformImages")
    properties = resource["Properties"]
    assert properties["Project"] == f"kilele-{STAGE}-images"
    tags = content_tags()
    assert {i["Name"]: i["Tag"] for i in properties["Images"]} == tags
    assert {i["Name"]: i["Dockerfile"] for i in properties["Images"]} == {i.name: i.dockerfile for i in PLATFORM_IMAGES}
    assert len(set(tags.values())) == 4 and all(len(t) == 32 and "latest" not in t for t in tags.values())
    assert "docker build -f \"$DOCKERFILE\"" in properties["Buildspec"]
    assert int(properties["TimeoutMinutes"]) >= 60


def _uris(value) -> str:
    return json.dumps(value)


def test_job_definitions_and_sagemaker_use_the_content_tags_and_wait_for_the_builds(template: Template) -> None:
    from kilele_infra.image_contexts import content_tags

    tags = content_tags()
    builds_id, _ = _resource(template, "Custom::KilelePlatformImages")
    definitions = template.find_resources("AWS::Batch::JobDefinition")
    images = {d["Properties"]["JobDefinitionName"]: _uris(d["Properties"]["ContainerProperties"]["Image"])
              for d in definitions.values()}
    assert f":{tags['worker']}" in images[f"kilele-{STAGE}-worker"]
    assert f":{tags['worker-gpu']}" in images[f"kilele-{STAGE}-worker-gpu"]
    for definition in definitions.values():
        assert builds_id in definition.get("DependsOn", [])
    api = template.to_json()["Resources"][_function_id(template, "app.app")]
    assert builds_id in api.get("DependsOn", [])
    env = api["Properties"]["Environment"]["Variables"]
    assert f":{tags['inference']}" in _uris(env["KILELE_SAGEMAKER_IMAGE_URI"])
    assert f":{tags['inference-gpu']}" in _uris(env["KILELE_SAGEMAKER_GPU_IMAGE_URI"])
    # Managed images are built FROM the content-tagged bases too.
    assert f":{tags['worker']}" in _uris(env["KILELE_IMAGE_BASE_WORKER_URI"])
    assert f":{tags['inference']}" in _uris(env["KILELE_IMAGE_BASE_INFERENCE_URI"])
    assert ":latest" not in json.dumps(template.to_json())


def _role_statements(template: Template, role: str) -> list[dict]:
    return [s for p in template.find_resources("AWS::IAM::Policy").values()
            if {"Ref": role} in p["Properties"]["Roles"] for s in p["Properties"]["PolicyDocument"]["Statement"]]


def test_platform_builds_run_with_a_role_of_their_own_that_may_push_the_platform_images(template: Template) -> None:
    _, resource = _resource(template, "Custom::KilelePlatformImages")
    role = resource["Properties"]["ServiceRole"]["Fn::GetAtt"][0]
    statements = _role_statements(template, role)
    pushes = json.dumps([s["Resource"] for s in statements if "ecr:PutImage" in s["Action"]])
    assert "WorkerRepository" in pushes and "InferenceRepository" in pushes and "ManagedImage" not in pushes
    reads = json.dumps([s["Resource"] for s in statements if "s3:GetObject*" in s["Action"]])
    assert "cdk-hnb659fds-assets" in reads  # the staged build context
    # The project's own role (managed-image builds run users' pip requirements) pushes no platform image.
    project = next(iter(template.find_resources("AWS::CodeBuild::Project").values()))
    project_role = project["Properties"]["ServiceRole"]["Fn::GetAtt"][0]
    assert project_role != role
    project_pushes = json.dumps([s["Resource"] for s in _role_statements(template, project_role)
                                 if "ecr:PutImage" in s["Action"]])
    assert "WorkerRepository" not in project_pushes and "InferenceRepository" not in project_pushes


def test_the_provider_may_start_and_follow_builds_of_the_project_and_look_up_tags(template: Template) -> None:
    functions = template.find_resources("AWS::Lambda::Function")
    by_handler = {f["Properties"]["Handler"]: logical_id for logical_id, f in functions.items()}
    start, wait = by_handler["handler.on_event"], by_handler["handler.is_complete"]
    assert {"codebuild:StartBuild", "ecr:DescribeImages", "iam:PassRole"} <= _role_actions(template, start)
    assert "codebuild:BatchGetBuilds" in _role_actions(template, wait)
    assert "codebuild:StartBuild" not in _role_actions(template, wait)
