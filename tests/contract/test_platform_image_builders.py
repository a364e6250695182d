"""The platform-image builder contract (issue 13; ``kilele images build``): both twins of
:class:`chalicelib.ports_images.PlatformImageBuilder`.

- **codebuild**: :class:`CodeBuildPlatformImages` against moto's CodeBuild (a build "succeeds"
  at its first read without building), ECR and the build ledger's table. What the buildspec's
  ``docker push`` does on a real build the test does (``push``): put the tag in ECR.
- **local**: :class:`LocalPlatformImages`, which refuses (the local stack runs no container image).

Shared: the four images by name, and an unknown name is NotFound. Then each twin's own promise:
CodeBuild builds once per content tag (READY without a build when the tag is there, the running
build followed rather than doubled, a deleted image built again) and reports each end; the
local twin refuses every build with a 422 that says it is an AWS operation.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

import boto3
import pytest
from moto import mock_aws

from chalicelib.adapters.images.platform import (
    BUILDSPEC_PATH, PLATFORM_VARIABLE, CodeBuildPlatformImages, platform_specs,
)
from chalicelib.adapters.images.platform_local import REFUSAL, LocalPlatformImages
from chalicelib.errors import NotFound, Unprocessable

REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
TAGS = {"worker": "a" * 32, "worker-gpu": "b" * 32, "inference": "c" * 32, "inference-gpu": "d" * 32}
NAMES = ("worker", "worker-gpu", "inference", "inference-gpu")


class CodeBuildTwin:
    kind = "codebuild"

    def __init__(self) -> None:
        from chalicelib.store import models
        from chalicelib.store.image_builds import ImageBuildRepository

        boto3.client("dynamodb", region_name="us-east-1").create_table(
            TableName="image-builds", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "key", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "key", "AttributeType": "S"}])
        models.bind(lambda name: name, "us-east-1")
        self.ecr = boto3.client("ecr", region_name="us-east-1")
        for repository in ("kilele-test-worker", "kilele-test-inference"):
            self.ecr.create_repository(repositoryName=repository)
        self.codebuild = boto3.client("codebuild", region_name="us-east-1")
        self.codebuild.create_project(
            name="kilele-test-images", source={"type": "S3", "location": "assets/context.zip"},
            artifacts={"type": "NO_ARTIFACTS"},
            environment={"type": "LINUX_CONTAINER", "image": "aws/codebuild/standard:7.0",
                         "computeType": "BUILD_GENERAL1_SMALL", "privilegedMode": True},
            serviceRole="arn:aws:iam::123456789012:role/kilele-images")
        self.started: list[dict[str, Any]] = []
        real: Callable[..., Any] = self.codebuild.start_build

        def counted(**kwargs: Any) -> Any:  # the StartBuild requests sent (moto keeps none of the overrides)
            self.started.append(kwargs)
            return real(**kwargs)

        self.codebuild.start_build = counted
        specs = platform_specs(",".join(f"{k}={v}" for k, v in TAGS.items()),
                               f"{REGISTRY}/kilele-test-worker", f"{REGISTRY}/kilele-test-inference")
        self.builder = CodeBuildPlatformImages(
            "kilele-test-images", specs, "assets/context.zip", "arn:aws:iam::123456789012:role/platform-builds",
            self.codebuild, self.ecr, ImageBuildRepository(),
            clock=lambda: datetime(2026, 12, 2, tzinfo=timezone.utc))

    def push(self, name: str) -> None:
        """What the buildspec's ``docker push`` does: the content tag lands in its repository."""
        repository = "kilele-test-inference" if name.startswith("inference") else "kilele-test-worker"
        manifest = ('{"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json", '
                    '"config": {"digest": "sha256:%s"}, "layers": []}' % (TAGS[name] * 2))
        self.ecr.put_image(repositoryName=repository, imageTag=TAGS[name], imageManifest=manifest)

    def delete(self, name: str) -> None:
        repository = "kilele-test-inference" if name.startswith("inference") else "kilele-test-worker"
        self.ecr.batch_delete_image(repositoryName=repository, imageIds=[{"imageTag": TAGS[name]}])


class LocalTwin:
    kind = "local"

    def __init__(self) -> None:
        self.builder = LocalPlatformImages()


@pytest.fixture(params=["codebuild", "local"])
def twin(request):
    with mock_aws():
        yield CodeBuildTwin() if request.param == "codebuild" else LocalTwin()


@pytest.fixture
def aws():
    with mock_aws():
        yield CodeBuildTwin()


# ---------------------------------------------------------------------------- both twins


def test_the_four_platform_images_by_name(twin):
    assert twin.builder.names() == NAMES


@pytest.mark.parametrize("call", ["start", "poll"])
def test_an_unknown_image_is_not_found(twin, call):
    with pytest.raises(NotFound, match="no platform image 'trainer'"):
        getattr(twin.builder, call)("trainer")


def test_an_event_of_another_build_is_none(twin):
    assert twin.builder.record_event({"project-name": "kilele-test-images", "build-status": "SUCCEEDED",
                                      "additional-information": {"environment": {"environment-variables": [
                                          {"name": "FREEZE_KEY", "value": "managed-images/x/pip-freeze.txt"}]}}}) is None


# ---------------------------------------------------------------------------- CodeBuild


def test_a_missing_image_is_built_once_with_the_deploys_build(aws):
    first = aws.builder.start("worker-gpu")

    assert (first.status, first.started, first.tag) == ("PENDING", True, TAGS["worker-gpu"])
    assert first.image_uri == f"{REGISTRY}/kilele-test-worker:{TAGS['worker-gpu']}"
    [request] = aws.started
    variables = {v["name"]: v["value"] for v in request["environmentVariablesOverride"]}
    assert variables == {"DOCKERFILE": "containers/worker/Dockerfile.gpu", "IMAGE_REPOSITORY": f"{REGISTRY}/kilele-test-worker",
                         "IMAGE_TAG": TAGS["worker-gpu"], PLATFORM_VARIABLE: "worker-gpu"}
    assert (request["sourceTypeOverride"], request["sourceLocationOverride"], request["buildspecOverride"],
            request["serviceRoleOverride"]) == ("S3", "assets/context.zip", BUILDSPEC_PATH,
                                                "arn:aws:iam::123456789012:role/platform-builds")

    aws.push("worker-gpu")  # the build pushes its tag (moto's build reads SUCCEEDED)
    again = aws.builder.start("worker-gpu")
    assert (again.status, again.started) == ("READY", False) and len(aws.started) == 1
    assert aws.builder.poll("worker-gpu").status == "READY"


def test_an_image_already_there_is_ready_without_a_build(aws):
    aws.push("inference")
    assert aws.builder.poll("inference").status == "READY"
    built = aws.builder.start("inference")
    assert (built.status, built.started, built.build_id) == ("READY", False, "") and aws.started == []


def test_a_build_that_runs_is_followed_not_doubled(aws):
    first = aws.builder.start("worker")
    # While CodeBuild has not been read (moto's build is IN_PROGRESS until then) a second ask joins it.
    aws.codebuild.batch_get_builds = lambda ids: {"builds": [{"id": ids[0], "buildStatus": "IN_PROGRESS",
                                                              "currentPhase": "BUILD", "logs": {"deepLink": "L"}}]}
    second = aws.builder.start("worker")

    assert (second.status, second.started, second.build_id, second.log_url) == ("BUILDING", False, first.build_id, "L")
    assert len(aws.started) == 1


def test_a_build_that_succeeded_without_pushing_is_failed_and_built_again(aws):
    aws.builder.start("worker")

    polled = aws.builder.poll("worker")  # moto: SUCCEEDED, but nothing was pushed

    assert polled.status == "FAILED" and "is not in its repository" in polled.reason
    assert aws.builder.start("worker").started and len(aws.started) == 2  # a FAILED build is retried


def test_an_image_deleted_since_its_build_is_built_again(aws):
    aws.builder.start("inference-gpu")
    aws.push("inference-gpu")
    assert aws.builder.poll("inference-gpu").status == "READY"
    aws.delete("inference-gpu")

    assert aws.builder.poll("inference-gpu").status == "MISSING"
    rebuilt = aws.builder.start("inference-gpu")

    assert rebuilt.started and len(aws.started) == 2
    aws.push("inference-gpu")
    assert aws.builder.start("inference-gpu").status == "READY" and len(aws.started) == 2


def test_codebuilds_event_ends_a_platform_build_with_its_log_link(aws):
    started = aws.builder.start("worker")
    event = {"project-name": "kilele-test-images", "build-status": "FAILED",
             "build-id": f"arn:aws:codebuild:us-east-1:123456789012:build/{started.build_id}",
             "additional-information": {"logs": {"deep-link": "https://logs/x"}, "environment": {
                 "environment-variables": [{"name": PLATFORM_VARIABLE, "value": "worker"},
                                           {"name": "IMAGE_TAG", "value": TAGS["worker"]}]}}}

    ended = aws.builder.record_event(event)

    assert (ended.name, ended.status, ended.log_url, ended.reason) == ("worker", "FAILED", "https://logs/x",
                                                                        "the build ended FAILED")
    polled = aws.builder.poll("worker")  # recorded: no need to ask CodeBuild
    assert (polled.status, polled.log_url) == ("FAILED", "https://logs/x")
    other_tag = {**event, "additional-information": {"environment": {"environment-variables": [
        {"name": PLATFORM_VARIABLE, "value": "worker"}, {"name": "IMAGE_TAG", "value": "e" * 32}]}}}
    assert aws.builder.record_event(other_tag) is None  # another deployment's tag


# ---------------------------------------------------------------------------- local


@pytest.mark.parametrize("call", ["start", "poll"])
def test_the_local_stack_refuses_saying_it_is_an_aws_operation(call):
    with pytest.raises(Unprocessable) as refused:
        getattr(LocalPlatformImages(), call)("worker")
    assert refused.value.message == REFUSAL and "AWS stack" in REFUSAL
