"""`kilele images build` through the API under moto (issue 13): CodeBuild, ECR and the build
ledger in moto, the builder as the composition root makes it from infra's settings. Admins
start the builds of the images whose content tag is missing (202), once: an image in its
repository is READY without a build. Others get 403; a bad body 400; the local stack 422."""
from __future__ import annotations

import boto3
import pytest
from api_support import assert_error

from settings_support import make_settings

REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
TAGS = {"worker": "1" * 32, "worker-gpu": "2" * 32, "inference": "3" * 32, "inference-gpu": "4" * 32}
ROLE = "arn:aws:iam::123456789012:role/platform-builds"


@pytest.fixture
def settings():
    return make_settings(
        image_builder_uri="codebuild://kilele-test-images",
        platform_image_tags=",".join(f"{k}={v}" for k, v in TAGS.items()),
        platform_image_source="assets/context.zip", platform_image_role_arn=ROLE,
        image_base_worker_uri=f"{REGISTRY}/kilele-test-worker:{TAGS['worker']}",
        image_base_inference_uri=f"{REGISTRY}/kilele-test-inference:{TAGS['inference']}")


@pytest.fixture
def codebuild(aws):
    ecr = boto3.client("ecr", region_name="us-east-1")
    for repository in ("kilele-test-worker", "kilele-test-inference"):
        ecr.create_repository(repositoryName=repository)
    client = boto3.client("codebuild", region_name="us-east-1")
    client.create_project(
        name="kilele-test-images", source={"type": "S3", "location": "assets/context.zip"},
        artifacts={"type": "NO_ARTIFACTS"},
        environment={"type": "LINUX_CONTAINER", "image": "aws/codebuild/standard:7.0",
                     "computeType": "BUILD_GENERAL1_SMALL", "privilegedMode": True},
        serviceRole="arn:aws:iam::123456789012:role/kilele-images")
    client.ecr = ecr
    return client


def push(codebuild, name: str) -> None:
    """What a build's ``docker push`` does (moto's CodeBuild builds nothing)."""
    repository = "kilele-test-inference" if name.startswith("inference") else "kilele-test-worker"
    manifest = ('{"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json", '
                '"config": {"digest": "sha256:%s"}, "layers": []}' % (TAGS[name] * 2))
    codebuild.ecr.put_image(repositoryName=repository, imageTag=TAGS[name], imageManifest=manifest)


def builds(codebuild) -> int:
    return len(codebuild.list_builds_for_project(projectName="kilele-test-images")["ids"])


def test_an_admin_builds_the_missing_images_once(make_user, codebuild):
    admin = make_user("ADMIN")
    push(codebuild, "inference")

    r = admin.call("POST", "/platform-images/builds", {})

    assert r.status_code == 202, r.data
    images = {i["name"]: i for i in r.data["images"]}
    assert {n: (i["status"], i["started"]) for n, i in images.items()} == {
        "worker": ("PENDING", True), "worker-gpu": ("PENDING", True),
        "inference": ("READY", False), "inference-gpu": ("PENDING", True)}
    assert images["worker-gpu"]["image_uri"] == f"{REGISTRY}/kilele-test-worker:{TAGS['worker-gpu']}"
    assert images["worker"]["build_id"].startswith("kilele-test-images:") and builds(codebuild) == 3

    for name in ("worker", "worker-gpu", "inference-gpu"):
        push(codebuild, name)
    again = admin.call("POST", "/platform-images/builds", {"images": ["worker", "inference-gpu"]})
    assert again.status_code == 202, again.data
    assert [(i["name"], i["status"], i["started"]) for i in again.data["images"]] == [
        ("worker", "READY", False), ("inference-gpu", "READY", False)]
    assert builds(codebuild) == 3  # unchanged tags: nothing rebuilt

    status = admin.call("GET", "/platform-images")
    assert status.status_code == 200 and {i["status"] for i in status.data["images"]} == {"READY"}


def test_only_admins_may(make_user, codebuild):
    developer = make_user("MODEL_DEVELOPER")
    assert_error(developer.call("POST", "/platform-images/builds", {}), 403, "forbidden")
    assert_error(developer.call("GET", "/platform-images"), 403, "forbidden")
    assert builds(codebuild) == 0


@pytest.mark.parametrize("body, field", [({"images": ["trainer"]}, "images"), ({"images": []}, "images"),
                                         ({"image": ["worker"]}, "image")])
def test_a_bad_body_is_400_naming_the_field(make_user, codebuild, body, field):
    admin = make_user("ADMIN")
    assert_error(admin.call("POST", "/platform-images/builds", body), 400, "invalid_input", field)
    assert builds(codebuild) == 0


def test_the_local_stack_refuses_with_a_422_saying_why(make_user, install_services, tmp_path):
    admin = make_user("ADMIN")
    install_services(settings_values={"image_builder_uri": f"local://{tmp_path}"})

    message = assert_error(admin.call("POST", "/platform-images/builds", {}), 422, "unprocessable",
                           "the local stack runs no container images")
    assert "AWS stack" in message
    assert_error(admin.call("GET", "/platform-images"), 422, "unprocessable")


def test_codebuilds_event_of_a_failed_build_is_recorded_and_shown(make_user, codebuild, settings):
    from chalice.test import Client

    from app import app

    admin = make_user("ADMIN")
    started = {i["name"]: i for i in admin.call("POST", "/platform-images/builds", {"images": ["worker"]}).data["images"]}
    detail = {"project-name": "kilele-test-images", "build-status": "FAILED",
              "build-id": f"arn:aws:codebuild:us-east-1:123456789012:build/{started['worker']['build_id']}",
              "additional-information": {"logs": {"deep-link": "https://logs/worker"}, "environment": {
                  "environment-variables": [{"name": "KILELE_PLATFORM_IMAGE", "value": "worker"},
                                            {"name": "IMAGE_TAG", "value": TAGS["worker"]}]}}}
    with Client(app) as client:
        event = client.events.generate_cw_event(source="aws.codebuild", detail_type="CodeBuild Build State Change",
                                                detail=detail, resources=[], region="us-east-1")
        answer = client.lambda_.invoke("image_build_changed", event).payload

    assert answer["recorded"] is False  # not a managed image's
    assert (answer["platform_image"]["name"], answer["platform_image"]["status"]) == ("worker", "FAILED")
    [worker] = [i for i in admin.call("GET", "/platform-images").data["images"] if i["name"] == "worker"]
    assert (worker["status"], worker["log_url"], worker["reason"]) == ("FAILED", "https://logs/worker",
                                                                        "the build ended FAILED")
