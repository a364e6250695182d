"""Managed images on AWS (issue 11): the CodeBuild project that builds them, its role and the
ECR repository they are pushed to.

The project runs containers/builder/buildspec.yml (verbatim, inline: NO_SOURCE): FROM the worker
or inference image, pip install the requirements, push ``kilele-{stage}-managed-images:<content
key>``, write the ``pip freeze`` to the data bucket under FREEZE_PREFIX. The API starts builds
and reads them (chalicelib/adapters/images/codebuild.py). The role may pull the two base images,
push to its own repository, put objects under its prefix and write its own log group: nothing else.
"""
from __future__ import annotations

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from chalicelib.adapters.images.codebuild import FREEZE_PREFIX

from .chalice_app import REPO_ROOT
from .serving import CPU_IMAGE_TAG as INFERENCE_IMAGE_TAG
from .worker_compute import CPU_IMAGE_TAG, image_repository

BUILDSPEC = REPO_ROOT / "containers" / "builder" / "buildspec.yml"
BUILD_TIMEOUT = Duration.minutes(60)


class ManagedImages(Construct):
    """ECR repository ``kilele-{stage}-managed-images``, CodeBuild project ``kilele-{stage}-images``
    (privileged: it runs docker build), its role and its log group."""

    def __init__(self, scope: Construct, construct_id: str, *, stage: str, bucket: s3.IBucket,
                 worker_repository: ecr.IRepository, inference_repository: ecr.IRepository) -> None:
        super().__init__(scope, construct_id)
        self.worker_repository = worker_repository
        self.inference_repository = inference_repository
        self.repository = image_repository(self, "ManagedImageRepository", stage, "managed-images")
        self.log_group = logs.LogGroup(self, "BuildLogs", log_group_name=f"/aws/codebuild/kilele-{stage}-images",
                                       retention=logs.RetentionDays.ONE_MONTH)
        self.role = iam.Role(
            self, "BuildRole", assumed_by=iam.ServicePrincipal("codebuild.amazonaws.com"),
            description="Kilele managed-image builds: pull the base images, push managed images, record pip freeze",
        )
        worker_repository.grant_pull(self.role)
        inference_repository.grant_pull(self.role)
        self.repository.grant_pull_push(self.role)
        bucket.grant_put(self.role, f"{FREEZE_PREFIX}*")
        self.log_group.grant_write(self.role)
        self.project_name = f"kilele-{stage}-images"
        self.project = codebuild.Project(
            self, "BuildProject",
            project_name=self.project_name,
            role=self.role,
            build_spec=codebuild.BuildSpec.from_object({"version": "0.2"}),  # replaced below, verbatim
            environment=codebuild.BuildEnvironment(
                build_image=codebuild.LinuxBuildImage.STANDARD_7_0,
                compute_type=codebuild.ComputeType.MEDIUM,
                privileged=True,
            ),
            environment_variables={
                "IMAGE_REPOSITORY": codebuild.BuildEnvironmentVariable(value=self.repository.repository_uri),
                "DATA_BUCKET": codebuild.BuildEnvironmentVariable(value=bucket.bucket_name),
            },
            logging=codebuild.LoggingOptions(cloud_watch=codebuild.CloudWatchLoggingOptions(log_group=self.log_group)),
            timeout=BUILD_TIMEOUT,
        )
        # The buildspec file as written (comments and all), not a re-serialisation of it.
        self.project.node.default_child.add_property_override("Source.BuildSpec", BUILDSPEC.read_text())

    def environment(self) -> dict[str, str]:
        """What the API's settings read (chalicelib.settings: image_builder_uri and the rest)."""
        return {
            "KILELE_IMAGE_BUILDER_URI": f"codebuild://{self.project_name}",
            "KILELE_IMAGE_REPOSITORY_URI": self.repository.repository_uri,
            "KILELE_IMAGE_BASE_WORKER_URI": self.worker_repository.repository_uri_for_tag(CPU_IMAGE_TAG),
            "KILELE_IMAGE_BASE_INFERENCE_URI": self.inference_repository.repository_uri_for_tag(INFERENCE_IMAGE_TAG),
        }

    def grant_builds(self, role: iam.IRole, grantee_id: str) -> None:
        """Start builds of the project, read their state and their logs. A policy of its own: the
        API role's default policy is near the size at which CDK spills statements into a managed
        policy (IAM's aggregate inline limit, 10,240 characters, still holds both)."""
        iam.Policy(self, f"{grantee_id}StartsAndFollowsBuilds", roles=[role], statements=[
            iam.PolicyStatement(actions=["codebuild:StartBuild", "codebuild:BatchGetBuilds"],
                                resources=[self.project.project_arn]),
            iam.PolicyStatement(actions=["logs:GetLogEvents"], resources=[Stack.of(self).format_arn(
                service="logs", resource="log-group", resource_name=f"{self.log_group.log_group_name}:log-stream:*",
                arn_format=ArnFormat.COLON_RESOURCE_NAME)]),
        ])
