"""The platform images built by the stack (issue 13): the worker and inference images, CPU and
GPU, built from ``containers/`` by the image project (shared with managed images) on deploy.

- The build context (the files the four Dockerfiles' ``.dockerignore`` files let through, from
  image_contexts.py) is staged and uploaded as one S3 asset, hashed by content.
- A custom resource (CDK's Provider framework; ``platform_image_provider/handler.py``) starts one
  CodeBuild build per image whose content tag is not in its repository yet
  (``containers/builder/platform-buildspec.yml``) and waits for them, up to ``TOTAL_TIMEOUT``; a
  failed build fails the deployment, saying which build and where its log is.
- The job definitions and the API (which creates SageMaker models) depend on it, so nothing names
  a tag before its image exists; they name content tags (worker_compute.py, serving.py), never
  ``latest``.

An unchanged context is a no-op deploy (same tags, same physical id); a changed one builds only
the images whose tag changed.
"""
from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
from pathlib import Path

from aws_cdk import AssetHashType, CustomResource, Duration
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import custom_resources as cr
from constructs import Construct

from .bundling import RUNTIME
from .image_contexts import PLATFORM_IMAGES, REPO_ROOT, context_files, content_tags
from .images import ManagedImages

PLATFORM_BUILDSPEC = REPO_ROOT / "containers" / "builder" / "platform-buildspec.yml"
BUILD_TIMEOUT_MINUTES = 120  # a GPU image (a CUDA base of several GB) builds in well under this
TOTAL_TIMEOUT = Duration.hours(2)  # the Provider framework's longest wait
POLL_INTERVAL = Duration.seconds(30)
PROVIDER_CODE = Path(__file__).resolve().parent / "platform_image_provider"


def stage_context() -> Path:
    """A directory holding exactly the union of the four images' build contexts, and the
    platform buildspec (at ``containers/builder/``: builds started on demand by the API name it
    there, ``kilele images build``; Docker never sends it, no .dockerignore lets it through)."""
    staged = Path(tempfile.mkdtemp(prefix="kilele-image-context-"))
    atexit.register(shutil.rmtree, staged, True)
    for relative in sorted({f for image in PLATFORM_IMAGES for f in context_files(image)}
                           | {PLATFORM_BUILDSPEC.relative_to(REPO_ROOT).as_posix()}):
        target = staged / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / relative, target)
    return staged


class PlatformImages(Construct):
    """The build context asset, the provider's two Lambdas and the custom resource whose
    completion means every platform image's content tag is in its repository."""

    def __init__(self, scope: Construct, construct_id: str, *, images: ManagedImages,
                 repositories: dict[str, ecr.IRepository]) -> None:
        super().__init__(scope, construct_id)
        self.tags = content_tags()
        self.context = s3_assets.Asset(
            self, "BuildContext", path=str(stage_context()),
            # The tags already hash every byte of the images' contexts; the buildspec beside them is
            # the one file of the asset no tag covers. One short hash of both: the asset's key is
            # in the API's environment (KILELE_PLATFORM_IMAGE_SOURCE), which Lambda caps at 4 KB.
            asset_hash_type=AssetHashType.CUSTOM,
            asset_hash=hashlib.sha256("-".join([*(self.tags[i.name] for i in PLATFORM_IMAGES),
                                                PLATFORM_BUILDSPEC.read_text()]).encode()).hexdigest()[:32],
        )
        # Platform builds run with a role of their own (StartBuild's serviceRoleOverride): the
        # project's role, which runs managed-image builds (users' pip requirements), can push
        # managed images only, never the worker or inference images every job runs in.
        self.role = iam.Role(
            self, "BuildRole", assumed_by=iam.ServicePrincipal("codebuild.amazonaws.com"),
            description="Kilele platform image builds: read the build context, push the worker and inference images",
        )
        self.context.grant_read(self.role)
        for repository in repositories.values():
            repository.grant_pull_push(self.role)
        images.log_group.grant_write(self.role)

        on_event = self._function("StartBuildsFunction", "handler.on_event")
        is_complete = self._function("WaitForBuildsFunction", "handler.is_complete")
        on_event.add_to_role_policy(iam.PolicyStatement(actions=["codebuild:StartBuild"],
                                                        resources=[images.project.project_arn]))
        on_event.add_to_role_policy(iam.PolicyStatement(
            actions=["ecr:DescribeImages"], resources=[r.repository_arn for r in repositories.values()]))
        on_event.add_to_role_policy(iam.PolicyStatement(
            actions=["iam:PassRole"], resources=[self.role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "codebuild.amazonaws.com"}}))
        is_complete.add_to_role_policy(iam.PolicyStatement(actions=["codebuild:BatchGetBuilds"],
                                                           resources=[images.project.project_arn]))
        provider = cr.Provider(
            self, "Provider", on_event_handler=on_event, is_complete_handler=is_complete,
            query_interval=POLL_INTERVAL, total_timeout=TOTAL_TIMEOUT,
        )
        self.resource = CustomResource(
            self, "Builds", service_token=provider.service_token,
            resource_type="Custom::KilelePlatformImages",
            properties={
                "Project": images.project_name,
                "ServiceRole": self.role.role_arn,
                "SourceLocation": f"{self.context.s3_bucket_name}/{self.context.s3_object_key}",
                "Buildspec": PLATFORM_BUILDSPEC.read_text(),
                "TimeoutMinutes": str(BUILD_TIMEOUT_MINUTES),
                "Images": [{
                    "Name": image.name, "Dockerfile": image.dockerfile,
                    "Repository": repositories[image.repository].repository_name,
                    "RepositoryUri": repositories[image.repository].repository_uri,
                    "Tag": self.tags[image.name],
                } for image in PLATFORM_IMAGES],
            },
        )

    def _function(self, construct_id: str, handler: str) -> lambda_.Function:
        return lambda_.Function(
            self, construct_id, runtime=RUNTIME, handler=handler,
            code=lambda_.Code.from_asset(str(PROVIDER_CODE), exclude=["__pycache__"]),
            timeout=Duration.seconds(60), memory_size=256,
            log_group=logs.LogGroup(self, f"{construct_id}Logs", retention=logs.RetentionDays.ONE_MONTH),
        )

    def image_uri(self, repositories: dict[str, ecr.IRepository], name: str) -> str:
        """The content-tagged URI of platform image ``name``."""
        image = next(i for i in PLATFORM_IMAGES if i.name == name)
        return repositories[image.repository].repository_uri_for_tag(self.tags[name])
