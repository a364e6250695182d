"""Where trials run on AWS: the worker image (ECR) on AWS Batch, CPU on Fargate, GPU on EC2.

The trials queue's dispatcher Lambda submits one Batch job per trial message (see
chalicelib/adapters/trial_dispatch.py); the job answers Step Functions with the message's task
token itself, so its role may send task responses.

Two roles, so that a run reads only its inputs and writes only its outputs: the job role (the
container's) may answer task tokens and assume the trial role, nothing else; the trial role
holds the data bucket's grants by prefix, and the worker assumes it with a session policy
naming its run's keys (containers/worker/kilele_worker/aws.py): what a session may do is what
both allow.
"""
from __future__ import annotations

from typing import Sequence

from aws_cdk import Duration, RemovalPolicy, Size, Stack
from aws_cdk import aws_batch as batch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from .image_contexts import content_tags

# Content tags (a hash of each image's build context, image_contexts.py) of
# containers/worker/Dockerfile and Dockerfile.gpu; the stack builds them (platform_images.py).
CPU_IMAGE_TAG = content_tags()["worker"]
GPU_IMAGE_TAG = content_tags()["worker-gpu"]

# The data bucket's prefixes the worker reads and writes (chalicelib/services: models.py,
# datasets.py, stress_tests.py's UPLOAD_PREFIX; trial_messages.py, stress_messages.py). A
# scheduled continuous test of an app's traffic reads its captured queries and labels
# (chalicelib/capture_format.py; the run's session policy narrows them to the app's folders).
WORKER_READS = ("models/", "datasets/", "stress-inputs/", "capture/", "ground-truth/")
# dataset-checks/: a large dataset's check job writes its verdict there (dataset_checks.py);
# dataset-builds/: the file of a dataset it builds (labelled captured traffic, issue 12 item 6).
WORKER_WRITES = ("trials/", "describe/", "stress/", "dataset-checks/", "dataset-builds/")

#: The worker's setting naming the trial role (containers/worker/kilele_worker/settings.py).
TRIAL_ROLE_ARN_ENV = "KILELE_TRIAL_ROLE_ARN"

CPU_JOB_VCPUS = 2
# Headroom above the worker's own per-trial limit (Settings.trial_memory_limit_mb, 4 GiB), so the
# model hits that limit (OutOfMemory, with logs) before the container is OOM-killed.
CPU_JOB_MEMORY = Size.gibibytes(8)
GPU_INSTANCE_TYPE = "g4dn.xlarge"  # 4 vCPUs, 16 GiB, one NVIDIA T4
GPU_JOB_VCPUS = 4
# What ECS leaves of a g4dn.xlarge's 16 GiB after its own reservation is ~15.3 GiB; asking for
# more would leave GPU jobs RUNNABLE forever.
GPU_JOB_MEMORY = Size.gibibytes(14)
CPU_MAX_VCPUS = 64
GPU_MAX_VCPUS = 16  # four g4dn.xlarge at most; min 0, so an idle queue costs nothing



def image_repository(scope: Construct, construct_id: str, stage: str, name: str) -> ecr.Repository:
    """The ECR repository of one of Kilele's images (``kilele-<stage>-<name>``)."""
    return ecr.Repository(
        scope, construct_id,
        repository_name=f"kilele-{stage}-{name}",
        image_scan_on_push=True,
        removal_policy=RemovalPolicy.RETAIN,  # pushed images outlive the stack, like user data
        lifecycle_rules=[ecr.LifecycleRule(
            description="drop untagged images (old pushes of the tags) after 14 days",
            tag_status=ecr.TagStatus.UNTAGGED,
            max_image_age=Duration.days(14),
        )],
    )

class WorkerCompute(Construct):
    """ECR repository ``kilele-{stage}-worker``, a small public VPC, Batch compute environments,
    the CPU and GPU job queues and the worker's job definitions."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        bucket: s3.IBucket,
        state_machine_arns: Sequence[str],
    ) -> None:
        super().__init__(scope, construct_id)
        self.repository = image_repository(self, "WorkerRepository", stage, "worker")
        # Public subnets only, no NAT gateway (the cheapest VPC that reaches ECR, S3, DynamoDB and
        # Step Functions): Fargate tasks get a public IP, EC2 instances get one from the subnet.
        self.vpc = ec2.Vpc(
            self, "Vpc",
            max_azs=2,
            nat_gateways=0,
            subnet_configuration=[ec2.SubnetConfiguration(
                name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24,
            )],
        )
        subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC)
        cpu_environment = batch.FargateComputeEnvironment(
            self, "CpuComputeEnvironment", vpc=self.vpc, vpc_subnets=subnets, maxv_cpus=CPU_MAX_VCPUS,
        )
        # Containers must not reach the instance's metadata (its role's credentials): IMDSv2 only,
        # with a hop limit of 1, which a container behind the bridge network is one hop past.
        # (Fargate has no instance metadata; the task's own credentials endpoint needs a URI only
        # the worker's environment holds, and the model process does not get it.)
        self.gpu_launch_template = ec2.LaunchTemplate(
            self, "GpuLaunchTemplate",
            require_imdsv2=True,
            http_tokens=ec2.LaunchTemplateHttpTokens.REQUIRED,
            http_put_response_hop_limit=1,
        )
        gpu_environment = batch.ManagedEc2EcsComputeEnvironment(
            self, "GpuComputeEnvironment",
            launch_template=self.gpu_launch_template,
            vpc=self.vpc,
            vpc_subnets=subnets,
            instance_types=[ec2.InstanceType(GPU_INSTANCE_TYPE)],
            use_optimal_instance_classes=False,  # only the GPU instance type above
            minv_cpus=0,
            maxv_cpus=GPU_MAX_VCPUS,
            images=[batch.EcsMachineImage(image_type=batch.EcsMachineImageType.ECS_AL2023_NVIDIA)],
        )
        self.cpu_queue = batch.JobQueue(
            self, "CpuJobQueue",
            job_queue_name=f"kilele-{stage}-trials-cpu",
            compute_environments=[batch.OrderedComputeEnvironment(compute_environment=cpu_environment, order=1)],
        )
        self.gpu_queue = batch.JobQueue(
            self, "GpuJobQueue",
            job_queue_name=f"kilele-{stage}-trials-gpu",
            compute_environments=[batch.OrderedComputeEnvironment(compute_environment=gpu_environment, order=1)],
        )

        self.job_role = iam.Role(
            self, "JobRole",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description="Kilele trial worker: task-token answers, and the trial role for its run's S3 keys",
        )
        self.job_role.add_to_policy(iam.PolicyStatement(
            actions=["states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"],
            resources=list(state_machine_arns),
        ))
        # The data bucket through this role only, in sessions the worker narrows to one run
        # (sts:TagSession: the sessions carry the run's id, which CloudTrail shows).
        self.trial_role = iam.Role(
            self, "TrialRole",
            assumed_by=iam.ArnPrincipal(self.job_role.role_arn).with_session_tags(),
            max_session_duration=Duration.hours(1),  # role chaining allows no more; the worker refreshes
            description="Kilele trial run: the worker's prefixes of the data bucket, narrowed per run by a session policy",
        )
        self.job_role.add_to_policy(iam.PolicyStatement(
            actions=["sts:AssumeRole", "sts:TagSession"], resources=[self.trial_role.role_arn],
        ))
        # By prefix: what a worker reads (model files, datasets, stress-test uploads; a trial's
        # parameters for stress tests of trials) and where it writes (its trial's, description's
        # or stress test's folder). Never bundles/ or anything else. Object reads and writes
        # only: no listing, no deleting.
        self.trial_role.add_to_policy(iam.PolicyStatement(
            actions=["s3:GetObject"],
            resources=[bucket.arn_for_objects(f"{prefix}*") for prefix in WORKER_READS + WORKER_WRITES],
        ))
        self.trial_role.add_to_policy(iam.PolicyStatement(
            actions=["s3:PutObject", "s3:AbortMultipartUpload"],
            resources=[bucket.arn_for_objects(f"{prefix}*") for prefix in WORKER_WRITES],
        ))

        log_group = logs.LogGroup(self, "WorkerLogs", retention=logs.RetentionDays.ONE_MONTH)
        # The image's ENTRYPOINT is `tini -- kilele-worker run`; the message comes from the
        # environment the dispatcher sets per job (KILELE_TRIAL_MESSAGE). No command here.
        environment = {"AWS_DEFAULT_REGION": Stack.of(self).region,
                       TRIAL_ROLE_ARN_ENV: self.trial_role.role_arn}
        self.cpu_job_definition = batch.EcsJobDefinition(
            self, "CpuJobDefinition",
            job_definition_name=f"kilele-{stage}-worker",
            container=batch.EcsFargateContainerDefinition(
                self, "CpuContainer",
                image=ecs.ContainerImage.from_ecr_repository(self.repository, CPU_IMAGE_TAG),
                cpu=CPU_JOB_VCPUS,
                memory=CPU_JOB_MEMORY,
                assign_public_ip=True,  # no NAT: the public IP is how the task reaches AWS APIs
                job_role=self.job_role,
                environment=environment,
                logging=ecs.LogDriver.aws_logs(stream_prefix="cpu", log_group=log_group),
            ),
        )
        self.gpu_job_definition = batch.EcsJobDefinition(
            self, "GpuJobDefinition",
            job_definition_name=f"kilele-{stage}-worker-gpu",
            container=batch.EcsEc2ContainerDefinition(
                self, "GpuContainer",
                image=ecs.ContainerImage.from_ecr_repository(self.repository, GPU_IMAGE_TAG),
                cpu=GPU_JOB_VCPUS,
                memory=GPU_JOB_MEMORY,
                gpu=1,
                job_role=self.job_role,
                environment=environment,
                logging=ecs.LogDriver.aws_logs(stream_prefix="gpu", log_group=log_group),
            ),
        )

    @property
    def job_queues(self) -> list[batch.JobQueue]:
        return [self.cpu_queue, self.gpu_queue]

    @property
    def job_definitions(self) -> list[batch.EcsJobDefinition]:
        return [self.cpu_job_definition, self.gpu_job_definition]

    def environment(self) -> dict[str, str]:
        """What chalicelib.settings.Settings reads to submit jobs (BatchTrialDispatcher)."""
        return {
            "KILELE_BATCH_CPU_JOB_QUEUE": self.cpu_queue.job_queue_arn,
            "KILELE_BATCH_GPU_JOB_QUEUE": self.gpu_queue.job_queue_arn,
            "KILELE_BATCH_JOB_DEFINITION": self.cpu_job_definition.job_definition_arn,
            "KILELE_BATCH_GPU_JOB_DEFINITION": self.gpu_job_definition.job_definition_arn,
        }

    def grant_submit(self, grantee: iam.IGrantable) -> None:
        """batch:SubmitJob on the worker's queues and job definitions, and batch:TagResource for
        the jobs' tags (SubmitJob with ``tags`` needs it)."""
        # One statement rather than JobDefinition.grant_submit_job per (definition, queue) pair.
        # Job definition ARNs carry their revision, exactly what the dispatcher submits.
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["batch:SubmitJob"],
            resource_arns=[d.job_definition_arn for d in self.job_definitions]
            + [q.job_queue_arn for q in self.job_queues],
        )
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["batch:TagResource"],
            resource_arns=[Stack.of(self).format_arn(service="batch", resource="job", resource_name="*")],
        )
