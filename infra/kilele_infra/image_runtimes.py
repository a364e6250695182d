"""What running user code in managed images (issue 11 item 3) needs of the stack's roles.

- The trials' dispatcher (``dispatch_trials``) makes a job definition of the worker's per image a
  trial names (chalicelib/adapters/trial_dispatch/batch_images.py: Batch cannot override a
  container job's image) and submits to it: batch:DescribeJobDefinitions (a Describe action:
  no resource-level permission), batch:RegisterJobDefinition and batch:SubmitJob on the
  definitions named ``kilele-<stage>-worker*-img-*``, and iam:PassRole of the roles those
  definitions carry over from the worker's (the job role and the execution role).
- The worker jobs' execution role pulls managed images (their ECR repository), as SageMaker's
  role does for endpoints serving in one.
- The API checks a model's docker_image / a stress test's custom_image in the stack's ECR
  registry (chalicelib/adapters/images/registry.py): ecr:DescribeImages on its repositories.
"""
from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_

from .images import ManagedImages
from .serving import Serving
from .worker_compute import WorkerCompute


def grant_image_runtimes(stack: Stack, stage: str, images: ManagedImages, worker_compute: WorkerCompute,
                         serving: Serving, dispatch: lambda_.Function, api: lambda_.Function) -> None:
    """The grants above (see the module doc)."""
    image_definitions = stack.format_arn(service="batch", resource="job-definition",
                                         resource_name=f"kilele-{stage}-worker*-img-*")
    dispatch.add_to_role_policy(iam.PolicyStatement(
        actions=["batch:RegisterJobDefinition", "batch:SubmitJob"], resources=[image_definitions]))
    dispatch.add_to_role_policy(iam.PolicyStatement(actions=["batch:DescribeJobDefinitions"], resources=["*"]))
    passed = [worker_compute.job_role.role_arn]
    for definition in worker_compute.job_definitions:
        execution_role = definition.container.execution_role
        if execution_role is not None:
            passed.append(execution_role.role_arn)
            images.repository.grant_pull(execution_role)
    dispatch.add_to_role_policy(iam.PolicyStatement(actions=["iam:PassRole"], resources=passed))
    images.repository.grant_pull(serving.role)
    api.add_to_role_policy(iam.PolicyStatement(
        actions=["ecr:DescribeImages"],
        resources=[stack.format_arn(service="ecr", resource="repository", resource_name="*")]))


__all__ = ["grant_image_runtimes"]
