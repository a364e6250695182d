"""The deploy-time builds of the platform images (infra/kilele_infra/platform_image_provider): the
custom resource's handlers against moto's CodeBuild and ECR. moto starts builds and says each one
SUCCEEDED at once (it runs none); a build that fails is CodeBuild's answer given through botocore's
Stubber, which checks it against CodeBuild's own response shape."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO_ROOT / "infra" / "kilele_infra" / "platform_image_provider")]

import handler  # noqa: E402  (the Lambda's module, as Lambda imports it)

REGION = "us-east-1"
MANIFEST = '{"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json"}'


@pytest.fixture
def aws() -> Iterator[tuple[Any, Any]]:
    with mock_aws():
        codebuild = boto3.client("codebuild", region_name=REGION)
        ecr = boto3.client("ecr", region_name=REGION)
        codebuild.create_project(
            name="kilele-test-images", source={"type": "S3", "location": "bucket/context.zip"},
            artifacts={"type": "NO_ARTIFACTS"},
            environment={"type": "LINUX_CONTAINER", "image": "aws/codebuild/standard:7.0",
                         "computeType": "BUILD_GENERAL1_MEDIUM", "privilegedMode": True},
            serviceRole="arn:aws:iam::123456789012:role/kilele-images")
        for name in ("kilele-test-worker", "kilele-test-inference"):
            ecr.create_repository(repositoryName=name)
        yield codebuild, ecr


def _properties(ecr: Any) -> dict[str, Any]:
    uri = {r["repositoryName"]: r["repositoryUri"] for r in ecr.describe_repositories()["repositories"]}
    return {
        "Project": "kilele-test-images", "ServiceRole": "arn:aws:iam::123456789012:role/kilele-platform-builds",
        "SourceLocation": "assets/ctx.zip", "Buildspec": "version: 0.2\n",
        "TimeoutMinutes": "120",
        "Images": [{"Name": name, "Dockerfile": f"containers/{repo}/Dockerfile", "Repository": f"kilele-test-{repo}",
                    "RepositoryUri": uri[f"kilele-test-{repo}"], "Tag": tag}
                   for name, repo, tag in (("worker", "worker", "a" * 32), ("inference", "inference", "b" * 32))],
    }


def test_only_images_whose_tag_is_missing_are_built(aws: Any) -> None:
    codebuild, ecr = aws
    properties = _properties(ecr)
    # The worker's tag was pushed before (an unchanged context): only the inference image builds.
    ecr.put_image(repositoryName="kilele-test-worker", imageTag="a" * 32, imageManifest=MANIFEST)
    sent: list[dict[str, Any]] = []
    real = codebuild.start_build
    codebuild.start_build = lambda **kwargs: (sent.append(kwargs), real(**kwargs))[1]
    ids = handler.start_builds(properties, codebuild, ecr)
    assert len(ids) == 1 and len(sent) == 1
    variables = {v["name"]: v["value"] for v in sent[0]["environmentVariablesOverride"]}
    assert variables["IMAGE_TAG"] == "b" * 32 and variables["DOCKERFILE"] == "containers/inference/Dockerfile"
    assert variables["IMAGE_REPOSITORY"].endswith("/kilele-test-inference")
    assert "FREEZE_KEY" not in variables  # not a managed-image build: its events are not recorded as one
    assert sent[0]["sourceTypeOverride"] == "S3" and sent[0]["sourceLocationOverride"] == "assets/ctx.zip"
    assert sent[0]["timeoutInMinutesOverride"] == 120
    assert sent[0]["serviceRoleOverride"].endswith(":role/kilele-platform-builds")  # not the project's role
    assert handler.builds_done(ids, codebuild)  # moto: SUCCEEDED at once


def test_nothing_is_built_when_every_tag_exists_and_the_physical_id_follows_the_tags(aws: Any) -> None:
    codebuild, ecr = aws
    properties = _properties(ecr)
    for image in properties["Images"]:
        ecr.put_image(repositoryName=image["Repository"], imageTag=image["Tag"], imageManifest=MANIFEST)
    assert handler.start_builds(properties, codebuild, ecr) == []
    assert handler.builds_done([], codebuild)
    other = {**properties, "Images": [{**properties["Images"][0], "Tag": "c" * 32}, properties["Images"][1]]}
    assert handler._physical_id(other) != handler._physical_id(properties)


def test_a_failed_build_fails_the_deployment_naming_it_and_its_log(aws: Any) -> None:
    codebuild, _ = aws
    stubber = Stubber(codebuild)
    stubber.add_response("batch_get_builds", {"builds": [
        {"id": "kilele-test-images:1", "buildStatus": "SUCCEEDED"},
        {"id": "kilele-test-images:2", "buildStatus": "FAILED",
         "logs": {"deepLink": "https://console.aws.amazon.com/cloudwatch/home#logEvent:group=g;stream=2"}},
    ]}, {"ids": ["kilele-test-images:1", "kilele-test-images:2"]})
    stubber.add_response("batch_get_builds", {"builds": [
        {"id": "kilele-test-images:1", "buildStatus": "IN_PROGRESS"}]}, {"ids": ["kilele-test-images:1"]})
    with stubber:
        with pytest.raises(RuntimeError, match=r"kilele-test-images:2 ended FAILED \(log: https://console"):
            handler.builds_done(["kilele-test-images:1", "kilele-test-images:2"], codebuild)
        assert handler.builds_done(["kilele-test-images:1"], codebuild) is False  # still building: wait


def test_a_delete_removes_nothing() -> None:
    assert handler.on_event({"RequestType": "Delete", "PhysicalResourceId": "platform-images-x",
                             "ResourceProperties": {}}) == {"PhysicalResourceId": "platform-images-x"}
    assert handler.is_complete({"RequestType": "Delete"}) == {"IsComplete": True}
