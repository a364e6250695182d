"""Where inference jobs are served: SageMaker endpoints running the inference image (ECR).

The API creates one endpoint per inference job itself (chalicelib/adapters/endpoints.py,
SageMakerEndpointRunner): model, endpoint config and endpoint all named after the job,
``kilele-{stage}-<job id prefix>``, with the job's bundle (``bundles/...`` in the data bucket) as
model data and target-tracking autoscaling registered through Application Auto Scaling. This
construct deploys what those calls need: the image repository, the role SageMaker runs the
endpoints with, and the grants for the functions that create, call and delete them.
"""
from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from kilele_infra.worker_compute import image_repository

from kilele_infra.image_contexts import content_tags

# Content tags (a hash of each image's build context, image_contexts.py) of
# containers/inference/Dockerfile and Dockerfile.gpu; the stack builds them (platform_images.py).
CPU_IMAGE_TAG = content_tags()["inference"]
GPU_IMAGE_TAG = content_tags()["inference-gpu"]

# Where InferenceJobService writes bundles (f"bundles/{job_id}/bundle.tar.gz"): all SageMaker
# may read from the data bucket.
BUNDLES_PREFIX = "bundles/"

# What Application Auto Scaling creates on the first RegisterScalableTarget for SageMaker.
AUTOSCALING_SERVICE = "sagemaker.application-autoscaling.amazonaws.com"
AUTOSCALING_ROLE_NAME = "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"


class Serving(Construct):
    """ECR repository ``kilele-{stage}-inference`` and the SageMaker execution role."""

    def __init__(
        self, scope: Construct, construct_id: str, *, stage: str, bucket: s3.IBucket, serverless: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        self.stage = stage
        self.serverless = serverless
        self.repository = image_repository(self, "InferenceRepository", stage, "inference")
        self.role = iam.Role(
            self, "SageMakerRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="Kilele inference endpoints: pull the inference image, read bundles, write logs and metrics",
        )
        # ecr:GetAuthorizationToken (any resource, as ECR requires) + the layer/image pulls of this repo.
        self.repository.grant_pull(self.role)
        bucket.grant_read(self.role, f"{BUNDLES_PREFIX}*")
        # The endpoints' container logs: /aws/sagemaker/Endpoints/<endpoint name> (the trailing *
        # also covers the log streams, log-group:<name>:log-stream:<stream>).
        self.role.add_to_policy(iam.PolicyStatement(
            actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            resources=[Stack.of(self).format_arn(
                service="logs", resource="log-group",
                resource_name=f"/aws/sagemaker/Endpoints/{self.name_pattern}",
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )],
        ))
        # PutMetricData has no resource-level permissions.
        self.role.add_to_policy(iam.PolicyStatement(actions=["cloudwatch:PutMetricData"], resources=["*"]))

    @property
    def name_pattern(self) -> str:
        """Every model, endpoint config and endpoint of this stage (SageMaker lowercases names in
        its ARNs; the endpoint names are ``kilele-{stage}-<uuid prefix>``)."""
        return f"kilele-{self.stage}-*".lower()

    def _arns(self, resource: str) -> str:
        return Stack.of(self).format_arn(service="sagemaker", resource=resource, resource_name=self.name_pattern)

    @property
    def endpoint_arns(self) -> str:
        return self._arns("endpoint")

    def environment(self) -> dict[str, str]:
        """What chalicelib.settings.Settings reads to build the SageMaker endpoint runner."""
        return {
            "KILELE_ENDPOINTS_URI": "sagemaker://",
            "KILELE_SAGEMAKER_IMAGE_URI": self.repository.repository_uri_for_tag(CPU_IMAGE_TAG),
            "KILELE_SAGEMAKER_GPU_IMAGE_URI": self.repository.repository_uri_for_tag(GPU_IMAGE_TAG),
            "KILELE_SAGEMAKER_ROLE_ARN": self.role.role_arn,
            # CPU inference jobs on serverless endpoints instead of instances (GPU jobs never).
            "KILELE_SAGEMAKER_SERVERLESS": "true" if self.serverless else "false",
            # Per-app Requests/Errors/Defaults/Latency as EMF log lines (namespace Kilele).
            "KILELE_CLOUDWATCH_METRICS": "true",
        }

    def grant_invoke(self, grantee: iam.IGrantable) -> None:
        """Call this stage's endpoints, and describe them (predict checks an endpoint that failed)."""
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["sagemaker:InvokeEndpoint", "sagemaker:DescribeEndpoint"],
            resource_arns=[self.endpoint_arns],
        )

    def grant_manage_endpoints(self, grantee: iam.IGrantable) -> None:
        """Create, describe and delete this stage's models, endpoint configs and endpoints, pass
        them the SageMaker role, and register their autoscaling."""
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=[
                "sagemaker:CreateModel", "sagemaker:DescribeModel", "sagemaker:DeleteModel",
                "sagemaker:CreateEndpointConfig", "sagemaker:DescribeEndpointConfig", "sagemaker:DeleteEndpointConfig",
                "sagemaker:CreateEndpoint", "sagemaker:DescribeEndpoint", "sagemaker:DeleteEndpoint",
            ],
            resource_arns=[self._arns("model"), self._arns("endpoint-config"), self.endpoint_arns],
        )
        self.grant_invoke(grantee)
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["iam:PassRole"],
            resource_arns=[self.role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        )
        self._grant_autoscaling(grantee)

    def _grant_autoscaling(self, grantee: iam.IGrantable) -> None:
        """What RegisterScalableTarget / PutScalingPolicy (target tracking) on an endpoint variant
        check the caller for, and DeleteEndpoint (which deregisters the variant)."""
        stack = Stack.of(self)
        # Scalable targets have no ARN before they are registered: Application Auto Scaling needs
        # "*"; the writes are narrowed to SageMaker targets by their service namespace.
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=[
                "application-autoscaling:RegisterScalableTarget",
                "application-autoscaling:PutScalingPolicy",
                "application-autoscaling:DeregisterScalableTarget",
            ],
            resource_arns=["*"],
            conditions={"StringEquals": {"application-autoscaling:service-namespace": "sagemaker"}},
        )
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=[
                "application-autoscaling:DescribeScalableTargets",
                "application-autoscaling:DescribeScalingPolicies",
                "application-autoscaling:DescribeScalingActivities",
                "cloudwatch:DescribeAlarms",
            ],
            resource_arns=["*"],
        )
        # Registering a variant also checks that the caller could resize it itself.
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["sagemaker:UpdateEndpointWeightsAndCapacities"],
            resource_arns=[self.endpoint_arns],
        )
        # Target tracking creates (and deregistering deletes) alarms named TargetTracking-...
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms"],
            resource_arns=[stack.format_arn(
                service="cloudwatch", resource="alarm", resource_name="TargetTracking-*",
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )],
        )
        # The first registration in the account creates the service-linked role.
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["iam:CreateServiceLinkedRole"],
            resource_arns=[stack.format_arn(
                service="iam", region="", resource="role",
                resource_name=f"aws-service-role/{AUTOSCALING_SERVICE}/{AUTOSCALING_ROLE_NAME}",
            )],
            conditions={"StringLike": {"iam:AWSServiceName": AUTOSCALING_SERVICE}},
        )
