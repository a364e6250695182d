"""The deploy-time builds of Kilele's platform images (issue 13): a CloudFormation custom resource
(CDK's Provider framework) whose ``on_event`` starts one CodeBuild build per image whose content
tag is not in its ECR repository yet, and whose ``is_complete`` waits for them. A build that ends
FAILED, FAULT, STOPPED or TIMED_OUT fails the deployment with its status and log link, so the job
definitions and SageMaker models that name the tags are never deployed over a missing image.

Runs on Lambda with the runtime's boto3 only (no Kilele code: this is infra). Resource properties:
``Project``, ``ServiceRole`` (the platform builds' role, not the project's), ``SourceLocation`` (``bucket/key`` of the build context zip), ``Buildspec`` (its
text), ``TimeoutMinutes`` and ``Images``: a list of {``Name``, ``Dockerfile``, ``Repository``
(name), ``RepositoryUri``, ``Tag``}.
"""
from __future__ import annotations

import logging
from typing import Any

import boto3
from botocore.exceptions import ClientError

logger = logging.getLogger()
logger.setLevel(logging.INFO)

FAILED_STATUSES = ("FAILED", "FAULT", "STOPPED", "TIMED_OUT")


def _clients() -> tuple[Any, Any]:
    return boto3.client("codebuild"), boto3.client("ecr")


def _tag_exists(ecr: Any, repository: str, tag: str) -> bool:
    try:
        ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
        return True
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") == "ImageNotFoundException":
            return False
        raise


def _physical_id(properties: dict[str, Any]) -> str:
    # The tags are the resource: new tags -> a new physical id (CloudFormation then deletes the
    # old one, which removes nothing: pushed images stay in their repositories).
    return "platform-images-" + "-".join(sorted(image["Tag"][:8] for image in properties["Images"]))


def start_builds(properties: dict[str, Any], codebuild: Any, ecr: Any) -> list[str]:
    """Start a build of each image whose tag is missing; the build ids (none if all are there)."""
    ids = []
    for image in properties["Images"]:
        if _tag_exists(ecr, image["Repository"], image["Tag"]):
            logger.info("image %s:%s exists: not built again", image["Repository"], image["Tag"])
            continue
        response = codebuild.start_build(
            projectName=properties["Project"],
            sourceTypeOverride="S3",
            sourceLocationOverride=properties["SourceLocation"],
            buildspecOverride=properties["Buildspec"],
            serviceRoleOverride=properties["ServiceRole"],
            timeoutInMinutesOverride=int(properties["TimeoutMinutes"]),
            environmentVariablesOverride=[
                {"name": "DOCKERFILE", "value": image["Dockerfile"], "type": "PLAINTEXT"},
                {"name": "IMAGE_REPOSITORY", "value": image["RepositoryUri"], "type": "PLAINTEXT"},
                {"name": "IMAGE_TAG", "value": image["Tag"], "type": "PLAINTEXT"},
                {"name": "KILELE_PLATFORM_IMAGE", "value": image["Name"], "type": "PLAINTEXT"},
            ],
        )
        ids.append(response["build"]["id"])
        logger.info("building %s as %s:%s (%s)", image["Name"], image["Repository"], image["Tag"], ids[-1])
    return ids


def builds_done(build_ids: list[str], codebuild: Any) -> bool:
    """True once every build SUCCEEDED; raises naming each failed one (status, log link)."""
    if not build_ids:
        return True
    builds = codebuild.batch_get_builds(ids=build_ids)["builds"]
    failed = [b for b in builds if b.get("buildStatus") in FAILED_STATUSES]
    if failed:
        raise RuntimeError("platform image build(s) failed: " + "; ".join(
            f"{b['id']} ended {b['buildStatus']} (log: {(b.get('logs') or {}).get('deepLink', 'none')})" for b in failed))
    missing = set(build_ids) - {b["id"] for b in builds}
    if missing:
        raise RuntimeError(f"CodeBuild no longer knows build(s) {sorted(missing)}")
    return all(b.get("buildStatus") == "SUCCEEDED" for b in builds)


def on_event(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    properties = event["ResourceProperties"]
    if event["RequestType"] == "Delete":
        return {"PhysicalResourceId": event["PhysicalResourceId"]}
    codebuild, ecr = _clients()
    ids = start_builds(properties, codebuild, ecr)
    return {"PhysicalResourceId": _physical_id(properties), "Data": {"BuildIds": ",".join(ids)}}


def is_complete(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    if event["RequestType"] == "Delete":
        return {"IsComplete": True}
    ids = [i for i in str((event.get("Data") or {}).get("BuildIds", "")).split(",") if i]
    codebuild, _ = _clients()
    return {"IsComplete": builds_done(ids, codebuild)}
