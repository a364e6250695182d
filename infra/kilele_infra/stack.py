"""Kilele's AWS stack, composed of one construct per concern:

- ``Data`` (data.py): tables, buckets and queues of chalicelib/resources.py;
- ``Serving`` (serving.py): the inference image repository and the SageMaker execution role;
- ``Api`` (api.py): the Chalice API on Lambda behind API Gateway;
- ``Workflows`` (workflows.py): the workflow Lambdas and the state machines;
- ``WorkerCompute`` (worker_compute.py): the worker image repository and AWS Batch;
- ``ManagedImages`` (images.py): the CodeBuild project that builds managed images, its role and
  their repository;
- ``Functions`` (functions.py): the trial dispatcher, the Batch job-failed handler, the
  serving-requests consumer;
- the ``kilele-{stage}`` dashboard (dashboard.py) and the stack outputs, here.

What every function shares (code asset, environment, state machine ARNs) is in runtime.py.
"""
from __future__ import annotations

from aws_cdk import CfnElement, CfnOutput, Stack
from constructs import Construct

from chalicelib.settings import Settings

from .api import Api
from .dashboard import build_dashboard
from .events import Events, Schedules, grant_events_and_schedules
from .data import Data
from .dataset_checks import DatasetJobEvents, grant_dataset_checks
from .direct_transfers import direct_transfer_policy
from .firewall import ApiFirewall
from .iam_api import IamApi
from .image_runtimes import grant_image_runtimes
from .images import ManagedImages
from .image_events import ImageBuildEvents
from .platform_images import PlatformImages
from .platform_builds_on_demand import grant_platform_builds_on_demand
from .functions import Functions
from .naming import flat_logical_id, pascal, resource_name
from .runtime import FunctionFactory, StateMachineArns
from .serving import Serving
from .worker_compute import WorkerCompute
from .workflows import Workflows

# The constructs KileleStack leaves out of logical ids (see naming.py): their resources keep the
# ids they had when the stack created them itself. Serving and WorkerCompute were constructs
# already, so their ids include them, as they always did.
FLAT_CONSTRUCT_IDS = ("Data", "Api", "Workflows", "Functions")


class KileleStack(Stack):
    """One Kilele deployment (``stage``): tables, buckets, queues (not the local-only ones) and
    state machines from ``RESOURCES``, the Chalice API on Lambda behind API Gateway (one resource
    per Chalice route), one Lambda per workflow handler, the trials-queue dispatcher, AWS Batch
    for the worker image, SageMaker serving (inference image, execution role, the
    serving-requests consumer) and the ``kilele-{stage}`` dashboard."""

    def __init__(
        self, scope: Construct, construct_id: str, *, stage: str = "dev", sagemaker_serverless: bool = False,
        **kwargs,
    ) -> None:
        """``sagemaker_serverless``: serve CPU inference jobs on SageMaker serverless endpoints
        (``KILELE_SAGEMAKER_SERVERLESS``; ``cdk deploy -c sagemaker_serverless=true``)."""
        super().__init__(scope, construct_id, **kwargs)
        self.stage = stage
        self.data = Data(self, "Data", stage=stage)
        # Before the functions: every function's environment names the inference image and role.
        self.serving = Serving(self, "Serving", stage=stage, bucket=self.data.data_bucket, serverless=sagemaker_serverless)
        # The workflow Lambdas need the state machine ARNs (continue-as-new starts a new
        # execution) and the state machines need the Lambda ARNs: the Lambdas get ARNs built
        # from the machines' fixed names, so nothing refers back to the machines.
        state_machine_arns = StateMachineArns(self, stage)
        functions = FunctionFactory(
            stage=stage, data=self.data, serving=self.serving, state_machine_arns=state_machine_arns,
            max_trials_per_execution=Settings().max_trials_per_execution,
        )
        self.api = Api(
            self, "Api", stage=stage, data=self.data, serving=self.serving,
            state_machine_arns=state_machine_arns, functions=functions,
        )
        self.workflows = Workflows(
            self, "Workflows", stage=stage, data=self.data, state_machine_arns=state_machine_arns,
            functions=functions,
        )
        # Per-address rate limits (WAF) in front of the API stage.
        self.firewall = ApiFirewall(self, "ApiFirewall", stage=stage, api_stage=self.api.rest_api.deployment_stage)
        self.iam_api = IamApi(self, "IamApi", stage=stage, function=self.api.function,
                              web_acl_arn=self.firewall.web_acl.attr_arn)
        # IAM users of that API put large files straight into their own prefix of the bucket.
        self.direct_transfer_policy = direct_transfer_policy(self, stage, self.data.data_bucket)
        # The API is never updated to start executions of a machine that does not exist yet.
        self.api.depend_on(*self.workflows.state_machines.values())
        self.worker_compute = WorkerCompute(
            self, "WorkerCompute",
            stage=stage,
            bucket=self.data.data_bucket,
            state_machine_arns=list(state_machine_arns.arns.values()),
        )
        self.functions = Functions(
            self, "Functions", data=self.data, worker_compute=self.worker_compute, serving=self.serving,
            state_machine_arns=state_machine_arns, functions=functions,
        )
        # Large datasets are checked by a Batch job in the worker image (issue 13, finding 3).
        # A breach recorded by the CT workflow may start one (a retrain's dataset of labelled captured
        # traffic, issue 12 item 6); a job's end is recorded at once, and the retrain goes on.
        grant_dataset_checks(self.api.function, self.functions.batch_job_failed, self.data, self.worker_compute,
                             builders=[self.workflows.functions["record_stress_test"]])
        self.dataset_job_events = DatasetJobEvents(self, "DatasetJobEvents", data=self.data,
                                                   worker_compute=self.worker_compute,
                                                   state_machine_arns=state_machine_arns, functions=functions)
        # Managed images: the API starts their CodeBuild builds and reads their state and logs.
        self.images = ManagedImages(self, "ManagedImages", stage=stage, bucket=self.data.data_bucket,
                                    worker_repository=self.worker_compute.repository,
                                    inference_repository=self.serving.repository)
        # The managed-image workflow's poll step reads builds too (the API starts them).
        for function in (self.api.function, self.workflows.functions["poll_image_build"]):
            for key, value in self.images.environment().items():
                function.add_environment(key, value)
        self.images.grant_builds(self.api.function.role, "Api")
        self.images.grant_builds(self.workflows.functions["poll_image_build"].role, "PollImageBuild")
        # The platform images, built by the image project on deploy; nothing that names their
        # content tags (job definitions; the API, which creates SageMaker models) comes first.
        self.platform_images = PlatformImages(self, "PlatformImages", images=self.images, repositories={
            "worker": self.worker_compute.repository, "inference": self.serving.repository})
        for dependent in (*self.worker_compute.job_definitions, self.api.function):
            dependent.node.add_dependency(self.platform_images.resource)
        # CodeBuild's build-state events record a managed-image build's end as it happens.
        self.image_events = ImageBuildEvents(self, "ImageBuildEvents", data=self.data, images=self.images,
                                             functions=functions)
        # `kilele images build`: the API starts the same platform builds on demand (issue 13).
        grant_platform_builds_on_demand(self.platform_images, {
            "worker": self.worker_compute.repository, "inference": self.serving.repository},
            self.api.function, self.image_events.function)
        # User code runs in managed images: trials (Batch), endpoints (SageMaker), docker_image checks.
        grant_image_runtimes(self, stage, self.images, self.worker_compute, self.serving,
                             self.functions.dispatch_trials, self.api.function)
        # After the API: predictor URLs of inference jobs (and nothing else) need the API's URL.
        for function in (self.api.function, self.functions.serve_queue):
            function.add_environment("KILELE_PUBLIC_API_URL", self.api.public_url)
        build_dashboard(
            self, stage, self.api.rest_api.deployment_stage, self.api.function,
            {name: resource_name(stage, name) for name in self.data.tables},
            state_machines=self.workflows.state_machines,
            trials_queue=self.data.trials_queue,
            serving_queue=self.data.serving_queue,
            serving_function=self.functions.serve_queue,
        )
        # Events and schedules (issue 12), last: every Kilele function above gets their environment.
        self.events = Events(self, "Events", stage=stage)
        self.schedules = Schedules(self, "Schedules", stage=stage, functions=functions, data=self.data,
                                   state_machine_arns=state_machine_arns)
        grant_events_and_schedules(self, self.events, self.schedules,
                                   readers=[self.api.function, self.schedules.function])
        self._outputs()

    def _allocate_logical_id(self, cfn_element: CfnElement) -> str:
        """CDK's logical id, with the FLAT_CONSTRUCT_IDS constructs left out of the path."""
        return flat_logical_id(
            self.node.path, cfn_element.node.path, FLAT_CONSTRUCT_IDS,
            lambda: [construct.node.path for construct in self.node.find_all()],
        )

    def _outputs(self) -> None:
        CfnOutput(self, "ApiUrl", value=self.api.rest_api.url)
        CfnOutput(self, "EventBusName", value=self.events.bus.event_bus_name)
        CfnOutput(self, "AlertsTopicArn", value=self.events.alerts.topic_arn)
        CfnOutput(self, "ScheduleGroupName", value=self.schedules.group_name)
        # Read by the SDK's Client.from_stack (sdk/kilele/_aws.py): SigV4-signed calls go here.
        CfnOutput(self, "IamApiUrl", value=self.iam_api.rest_api.url)
        for name, policy in self.iam_api.invoke_policies.items():
            CfnOutput(self, f"{pascal(name)}PolicyArn", value=policy.managed_policy_arn)
        for name, bucket in self.data.buckets.items():
            CfnOutput(self, f"{pascal(name)}BucketName", value=bucket.bucket_name)
        for name, table in self.data.tables.items():
            CfnOutput(self, f"{pascal(name)}TableName", value=table.table_name)
        for name, state_machine in self.workflows.state_machines.items():
            CfnOutput(self, f"{pascal(name)}StateMachineArn", value=state_machine.state_machine_arn)
        CfnOutput(self, "WorkerRepositoryUri", value=self.worker_compute.repository.repository_uri)
        CfnOutput(self, "CpuJobQueueArn", value=self.worker_compute.cpu_queue.job_queue_arn)
        CfnOutput(self, "GpuJobQueueArn", value=self.worker_compute.gpu_queue.job_queue_arn)
        CfnOutput(self, "InferenceRepositoryUri", value=self.serving.repository.repository_uri)
        CfnOutput(self, "SageMakerRoleArn", value=self.serving.role.role_arn)
        CfnOutput(self, "ManagedImageRepositoryUri", value=self.images.repository.repository_uri)
