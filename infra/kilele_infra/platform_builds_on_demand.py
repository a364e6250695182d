"""The platform images built on demand (issue 13; ``kilele images build``): what the API needs
to start the same builds the deploy starts (platform_images.py), and what the image-build
events Lambda needs to know them when they end.

- Settings (chalicelib.settings): the content tags (``name=tag,...``), the build context in S3
  and the platform builds' role; the repositories come from the base image URIs already set.
- The API may pass that role to CodeBuild (only to CodeBuild) and ask ECR whether a tag is
  there (DescribeImages on the worker and inference repositories); it starts and reads builds of
  the image project with the grant managed images already have (images.py ``grant_builds``).
"""
from __future__ import annotations

from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_

from .image_contexts import PLATFORM_IMAGES
from .platform_images import PlatformImages


def platform_build_environment(platform_images: PlatformImages) -> dict[str, str]:
    """What chalicelib.settings reads to build and recognise the platform images."""
    return {
        "KILELE_PLATFORM_IMAGE_TAGS": ",".join(f"{i.name}={platform_images.tags[i.name]}" for i in PLATFORM_IMAGES),
        "KILELE_PLATFORM_IMAGE_SOURCE": f"{platform_images.context.s3_bucket_name}/{platform_images.context.s3_object_key}",
        "KILELE_PLATFORM_IMAGE_ROLE_ARN": platform_images.role.role_arn,
    }


def grant_platform_builds_on_demand(platform_images: PlatformImages, repositories: dict[str, ecr.IRepository],
                                    api: lambda_.Function, image_events: lambda_.Function) -> None:
    """The settings of both functions and the API's grants (see the module's docstring)."""
    for function in (api, image_events):
        for key, value in platform_build_environment(platform_images).items():
            function.add_environment(key, value)
    api.add_to_role_policy(iam.PolicyStatement(
        actions=["iam:PassRole"], resources=[platform_images.role.role_arn],
        conditions={"StringEquals": {"iam:PassedToService": "codebuild.amazonaws.com"}}))
    api.add_to_role_policy(iam.PolicyStatement(
        actions=["ecr:DescribeImages"], resources=[r.repository_arn for r in repositories.values()]))


__all__ = ["grant_platform_builds_on_demand", "platform_build_environment"]
