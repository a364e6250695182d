"""Synthesis checks of `kilele images build` (issue 13; infra/kilele_infra/platform_builds_on_demand.py):
the API knows the tags, context and role the deploy builds with, may pass that role to CodeBuild
only and ask ECR for the tags; the image-build events Lambda knows the tags; chalicelib's table
of the four images is infra's; the staged context holds the buildspec the API's builds name.

What synthesis cannot show (a build started by the API really pushes) is in infra/README.md."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from stack_template import whole_stack

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "infra")]

from aws_cdk.assertions import Template  # noqa: E402

from chalicelib.adapters.images.platform import BUILDSPEC_PATH, PLATFORM_DOCKERFILES  # noqa: E402
from kilele_infra.image_contexts import PLATFORM_IMAGES, content_tags  # noqa: E402
from kilele_infra.platform_images import PLATFORM_BUILDSPEC, stage_context  # noqa: E402

STAGE = "test"
# Lambda's limit on a function's whole environment (names and values).
ENVIRONMENT_LIMIT = 4096
# A token's resolved length, at most (an ARN or a URI of this stack; CloudFormation resolves them).
TOKEN_LENGTH = 120


@pytest.fixture(scope="module")
def template() -> Template:
    return whole_stack(STAGE)  # one synthesis per test process (stack_template.py)


def _function(template: Template, handler: str) -> dict:
    [function] = template.find_resources("AWS::Lambda::Function", {"Properties": {"Handler": handler}}).values()
    return function


def _statements(template: Template, function: dict) -> list[dict]:
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    return [statement for policy in template.find_resources("AWS::IAM::Policy").values()
            if {"Ref": role} in policy["Properties"]["Roles"]
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]]


def test_chalicelibs_platform_images_are_infras() -> None:
    assert {n: d for n, (_, d) in PLATFORM_DOCKERFILES.items()} == {i.name: i.dockerfile for i in PLATFORM_IMAGES}
    assert {n: k for n, (k, _) in PLATFORM_DOCKERFILES.items()} == {i.name: i.repository for i in PLATFORM_IMAGES}
    assert PLATFORM_BUILDSPEC.relative_to(REPO_ROOT).as_posix() == BUILDSPEC_PATH
    assert (stage_context() / BUILDSPEC_PATH).read_text() == PLATFORM_BUILDSPEC.read_text()


def test_the_api_and_the_image_events_lambda_know_the_deploys_builds(template: Template) -> None:
    tags = ",".join(f"{i.name}={content_tags()[i.name]}" for i in PLATFORM_IMAGES)
    [role_id] = template.find_resources("AWS::IAM::Role", {"Properties": {
        "Description": "Kilele platform image builds: read the build context, push the worker and inference images"}})
    for handler in ("app.app", "app.image_build_changed"):
        env = _function(template, handler)["Properties"]["Environment"]["Variables"]
        assert env["KILELE_PLATFORM_IMAGE_TAGS"] == tags
        assert env["KILELE_PLATFORM_IMAGE_ROLE_ARN"] == {"Fn::GetAtt": [role_id, "Arn"]}
        assert "KILELE_PLATFORM_IMAGE_SOURCE" in env
    [custom] = template.find_resources("Custom::KilelePlatformImages").values()
    api_env = _function(template, "app.app")["Properties"]["Environment"]["Variables"]
    assert api_env["KILELE_PLATFORM_IMAGE_SOURCE"] == custom["Properties"]["SourceLocation"]  # the deploy's context


def test_the_api_passes_the_build_role_to_codebuild_only_and_reads_the_tags(template: Template) -> None:
    statements = _statements(template, _function(template, "app.app"))
    [role_id] = template.find_resources("AWS::IAM::Role", {"Properties": {
        "Description": "Kilele platform image builds: read the build context, push the worker and inference images"}})
    passes = [s for s in statements if s["Action"] == "iam:PassRole"
              and s["Resource"] == {"Fn::GetAtt": [role_id, "Arn"]}]
    assert passes and all(s["Condition"] == {"StringEquals": {"iam:PassedToService": "codebuild.amazonaws.com"}}
                          for s in passes)
    described = {json.dumps(r) for s in statements if "ecr:DescribeImages" in s["Action"]
                 for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])}
    worker, inference = (f'"{name}"' for name in template.find_resources("AWS::ECR::Repository")
                         if name.startswith(("WorkerCompute", "Serving")) and "Repository" in name)
    assert any(worker in r for r in described) and any(inference in r for r in described)


def _resolved_length(value: object) -> int:
    """The longest a value resolves to: pseudo parameters at their longest (a region of 14
    characters, an account of 12), any other reference (an ARN, a queue URL) at TOKEN_LENGTH."""
    if isinstance(value, str):
        return len(value)
    assert isinstance(value, dict) and len(value) == 1, value
    [(function, argument)] = value.items()
    if function == "Fn::Join":
        return sum(_resolved_length(part) for part in argument[1])
    if function == "Ref":
        return PSEUDO.get(argument, TOKEN_LENGTH)
    if function == "Fn::Sub":
        return len(re.sub(r"\$\{[^}]+\}", "x" * 14, argument))
    if function == "Fn::Select":  # a field of a split ARN: a region or an account here
        return 14
    return TOKEN_LENGTH


PSEUDO = {"AWS::Partition": 10, "AWS::Region": 14, "AWS::AccountId": 12, "AWS::URLSuffix": 13}


def test_the_api_environment_stays_under_lambdas_limit(template: Template) -> None:
    env = _function(template, "app.app")["Properties"]["Environment"]["Variables"]
    total = sum(len(k) + _resolved_length(v) for k, v in env.items())
    assert total < ENVIRONMENT_LIMIT, total
