"""Kilele's AWS stack: the resources of chalicelib/resources.py, the API, the train-job
machinery (workflow Lambdas, state machines, trial dispatch, AWS Batch), serving (SageMaker
endpoints, the queue API's consumer) and the dashboard."""
from __future__ import annotations

import importlib
import re
from pathlib import Path
from types import ModuleType
from typing import Optional

from aws_cdk import ArnFormat, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from chalice.app import CloudWatchEventConfig, SQSEventConfig
from constructs import Construct

from chalicelib import resources
from chalicelib.resources import RESOURCES, BucketSpec, Key, QueueSpec, StateMachineSpec, TableSpec
from chalicelib.settings import Settings
from chalicelib.workflows.handlers import FUNCTION_PLACEHOLDERS, HANDLERS
from chalicelib.workflows.render import WORKFLOWS_DIR, load_template, placeholders

from .bundling import RUNTIME, api_code
from .dashboard import build_dashboard
from .serving import Serving
from .worker_compute import WorkerCompute

REPO_ROOT = Path(__file__).resolve().parents[2]
API_HANDLER = "app.app"
# Chalice registers the workflow handlers as pure Lambda functions made from lambdas, so its own
# handler strings are `app.<lambda>`: each handler needs a module-level (event, context) entry
# point, `<WORKFLOW_ENTRY_MODULE>.<handler name>` (one per name in HANDLERS).
WORKFLOW_ENTRY_MODULE = "chalicelib.workflows.lambda_entry"
# Chalice event handlers (EventSourceHandler objects) are (event, context) callables in app.py.
DISPATCH_TRIALS_HANDLER = "app.dispatch_trials"
BATCH_JOB_FAILED_HANDLER = "app.batch_job_failed"
SERVE_QUEUE_ITEMS_HANDLER = "app.serve_queue_items"

# What Table.grant_read_write_data allows, less the stream reads nothing here does.
TABLE_DATA_ACTIONS = [
    "dynamodb:BatchGetItem", "dynamodb:BatchWriteItem", "dynamodb:ConditionCheckItem",
    "dynamodb:DeleteItem", "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem",
    "dynamodb:Query", "dynamodb:Scan", "dynamodb:UpdateItem",
]

WORKFLOW_MEMORY_MB = 1024
WORKFLOW_TIMEOUT = Duration.seconds(60)
# The queue API's consumer: below the serving-requests queue's visibility timeout (60 s), or a
# batch still being answered would be delivered again.
SERVE_QUEUE_TIMEOUT = Duration.seconds(50)

# ASL placeholders (besides the *FunctionArn ones of FUNCTION_PLACEHOLDERS) that name a queue.
QUEUE_PLACEHOLDERS = {"TrialsQueueUrl": resources.TRIALS_QUEUE.name}

ATTRIBUTE_TYPES = {
    "S": dynamodb.AttributeType.STRING,
    "N": dynamodb.AttributeType.NUMBER,
    "B": dynamodb.AttributeType.BINARY,
}

# What `chalice deploy` registers (chalice.app.APIGateway._DEFAULT_BINARY_TYPES), so binary
# bodies reach the app the same way behind this API.
BINARY_MEDIA_TYPES = [
    "application/octet-stream", "application/x-tar", "application/zip",
    "audio/basic", "audio/ogg", "audio/mp4", "audio/mpeg", "audio/wav", "audio/webm",
    "image/png", "image/jpg", "image/jpeg", "image/gif", "video/ogg", "video/mpeg", "video/webm",
]

THROTTLE_RATE = 100  # steady requests per second for the whole stage
THROTTLE_BURST = 200

# Every error the API answers has the product's shape, {"error": {"code", "message"}}, including
# the ones API Gateway produces itself. An unknown route (or an unknown method on a known route)
# is a 403 "Missing Authentication Token" from API Gateway: answer 404 like the local gateway.
JSON_CONTENT_TYPE = {"Content-Type": "'application/json'"}  # header values are quoted literals
NOT_FOUND_TEMPLATE = '{"error": {"code": "not_found", "message": "no such route"}}'
# $context.error.messageString is the message already quoted as a JSON string.
GATEWAY_ERROR_TEMPLATE = '{"error": {"code": "gateway", "message": $context.error.messageString}}'


def _pascal(name: str) -> str:
    """'api-keys' -> 'ApiKeys': construct ids, hence logical ids, must stay stable."""
    return "".join(part.capitalize() for part in re.split(r"[-_]", name))


def _env_name(name: str) -> str:
    """'train-worker' -> 'TRAIN_WORKER', as pydantic-settings reads KILELE_TRAIN_WORKER_..."""
    return name.upper().replace("-", "_")


def _attribute(key: Optional[Key]) -> Optional[dynamodb.Attribute]:
    return dynamodb.Attribute(name=key.name, type=ATTRIBUTE_TYPES[key.type]) if key else None


def chalice_app_module() -> ModuleType:
    """The repo root's app.py (the module the Lambda handler ``app.app`` names).

    Imported by name, as Lambda does; the repo root must come first on sys.path (infra/app.py and
    tests/infra put it there), or ``app`` could be infra/app.py itself.
    """
    module = importlib.import_module("app")
    if Path(module.__file__ or "").resolve() != REPO_ROOT / "app.py":
        raise RuntimeError(
            f"`import app` gave {module.__file__}, not {REPO_ROOT / 'app.py'}: "
            "put the repo root first on sys.path"
        )
    return module


def chalice_routes() -> dict[str, list[str]]:
    """Route path -> HTTP methods of the Chalice app, e.g. '/models/{model_id}' -> ['DELETE', 'GET']."""
    routes: dict[str, list[str]] = {}
    for path, entries in sorted(chalice_app_module().app.routes.items()):
        for method, entry in entries.items():
            # Both are configured on API Gateway by `chalice deploy` (a preflight OPTIONS method,
            # an authorizer); this stack does neither, so refuse rather than deploy them silently off.
            if entry.cors or entry.authorizer:
                raise NotImplementedError(f"{method} {path}: CORS and authorizers are not deployed by infra")
        routes[path] = sorted(entries)
    return routes


def chalice_event_source(handler: str, config_type: type) -> object:
    """The Chalice event source whose Lambda handler string is ``handler`` (e.g.
    'app.dispatch_trials'), checked to be of ``config_type``, so a renamed or re-typed handler in
    app.py fails synth instead of deploying a Lambda that cannot import its handler."""
    sources = {source.handler_string: source for source in chalice_app_module().app.event_sources}
    source = sources.get(handler)
    if not isinstance(source, config_type):
        raise RuntimeError(f"app.py registers no {config_type.__name__} handler {handler!r} (has {sorted(sources)})")
    return source


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
        self.tables = {spec.name: self._table(spec) for spec in RESOURCES.tables}
        self.buckets = {spec.name: self._bucket(spec) for spec in RESOURCES.buckets}
        self.queues = {spec.name: self._queue(spec) for spec in RESOURCES.queues if not spec.local_only}
        self.trials_queue = self.queues[resources.TRIALS_QUEUE.name]
        self.serving_queue = self.queues[resources.SERVING_REQUESTS_QUEUE.name]
        # Before the functions: every function's environment names the inference image and role.
        self.serving = Serving(
            self, "Serving", stage=stage, bucket=self.buckets[resources.DATA_BUCKET.name],
            serverless=sagemaker_serverless,
        )
        # Shown in the definition's comment and read by the workflow Lambdas: one value for both.
        self.max_trials_per_execution = Settings().max_trials_per_execution
        # The workflow Lambdas need the state machine ARNs (continue-as-new starts a new
        # execution) and the state machines need the Lambda ARNs: the Lambdas get ARNs built
        # from the machines' fixed names, so nothing refers back to the machines.
        self.state_machine_arns = {spec.name: self._state_machine_arn(spec.name) for spec in RESOURCES.state_machines}
        # One asset (bundled once) for every function: the repo's app.py + chalicelib/.
        self.code = api_code(REPO_ROOT)
        self.function = self._api_function()
        self.workflow_functions = {name: self._workflow_function(name) for name in HANDLERS}
        self.state_machines = {spec.name: self._state_machine(spec) for spec in RESOURCES.state_machines}
        for state_machine in self.state_machines.values():
            # Not a reference (the API uses the built ARN), only an order: the API is never
            # updated to start executions of a machine that does not exist yet.
            self.function.node.add_dependency(state_machine)
        self.worker_compute = WorkerCompute(
            self, "WorkerCompute",
            stage=stage,
            bucket=self.buckets[resources.DATA_BUCKET.name],
            trial_tables=[self.tables[resources.TRIALS.name], self.tables[resources.TRAIN_JOBS.name]],
            state_machine_arns=list(self.state_machine_arns.values()),
        )
        self.dispatch_function = self._dispatch_function()
        self.batch_job_failed_function = self._batch_job_failed_function()
        self.serve_queue_function = self._serve_queue_function()
        self.api = self._rest_api(self.function)
        # After the API: predictor URLs of inference jobs (and nothing else) need the API's URL.
        for function in (self.function, self.serve_queue_function):
            function.add_environment("KILELE_PUBLIC_API_URL", self._public_api_url())
        build_dashboard(
            self, stage, self.api.deployment_stage, self.function,
            {name: self.resource_name(name) for name in self.tables},
            state_machines=self.state_machines,
            trials_queue=self.trials_queue,
            serving_queue=self.serving_queue,
            serving_function=self.serve_queue_function,
        )
        self._outputs()

    def resource_name(self, logical_name: str) -> str:
        """Same rule as chalicelib.settings.Settings.resource_name."""
        return f"kilele-{self.stage}-{logical_name}"

    def _table(self, spec: TableSpec) -> dynamodb.Table:
        table = dynamodb.Table(
            self, f"{_pascal(spec.name)}Table",
            table_name=self.resource_name(spec.name),
            partition_key=_attribute(spec.hash_key),
            sort_key=_attribute(spec.range_key),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=spec.ttl_attribute,
            removal_policy=RemovalPolicy.RETAIN,  # user data outlives the stack
        )
        for index in spec.indexes:
            table.add_global_secondary_index(
                index_name=index.name,
                partition_key=_attribute(index.hash_key),
                sort_key=_attribute(index.range_key),
                projection_type=dynamodb.ProjectionType.ALL,
            )
        return table

    def _bucket(self, spec: BucketSpec) -> s3.Bucket:
        # No bucket_name: names are global, so CloudFormation picks one and the app gets it
        # from the environment.
        return s3.Bucket(
            self, f"{_pascal(spec.name)}Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            versioned=True,
            enforce_ssl=True,
            removal_policy=RemovalPolicy.RETAIN,
            # Browsers upload datasets straight to S3 with presigned PUT/POST; ETag is exposed so
            # multipart uploads can collect part ids.
            cors=[s3.CorsRule(
                allowed_methods=[s3.HttpMethods.PUT, s3.HttpMethods.POST],
                allowed_origins=["*"],
                allowed_headers=["*"],
                exposed_headers=["ETag"],
                max_age=3000,
            )],
            lifecycle_rules=[s3.LifecycleRule(abort_incomplete_multipart_upload_after=Duration.days(7))],
        )

    def _queue(self, spec: QueueSpec) -> sqs.Queue:
        dead_letters = sqs.Queue(
            self, f"{_pascal(spec.name)}DeadLetterQueue",
            queue_name=self.resource_name(f"{spec.name}-dlq"),
            retention_period=Duration.days(14),
            enforce_ssl=True,
        )
        return sqs.Queue(
            self, f"{_pascal(spec.name)}Queue",
            queue_name=self.resource_name(spec.name),
            visibility_timeout=Duration.seconds(spec.visibility_timeout_seconds),
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=5, queue=dead_letters),
            enforce_ssl=True,
        )

    def _environment(self, service: str) -> dict[str, str]:
        """What every Kilele function reads through chalicelib.settings.Settings."""
        environment = {
            "KILELE_STAGE": self.stage,
            "POWERTOOLS_SERVICE_NAME": service,
            "KILELE_TRIALS_QUEUE_URL": self.trials_queue.queue_url,
            "KILELE_MAX_TRIALS_PER_EXECUTION": str(self.max_trials_per_execution),
        }
        for name, bucket in self.buckets.items():
            # "data" -> KILELE_DATA_BUCKET_NAME, read by Settings.data_bucket_name.
            environment[f"KILELE_{_env_name(name)}_BUCKET_NAME"] = bucket.bucket_name
        for name, arn in self.state_machine_arns.items():
            # "train-worker" -> KILELE_TRAIN_WORKER_STATE_MACHINE_ARN.
            environment[f"KILELE_{_env_name(name)}_STATE_MACHINE_ARN"] = arn
        # Every function builds the same services (chalicelib.wiring): with sagemaker:// none of
        # them falls back to the local endpoint runner. Only the API and the serving-requests
        # consumer are granted anything on the endpoints.
        environment.update(self.serving.environment())
        return environment

    def _public_api_url(self) -> str:
        """The stage's base URL, as RestApi.url gives it but built from the RestApi id and the
        stage name: RestApi.url refers to the Stage, which depends on the Deployment, which
        depends on every Method, which refers to the API function -- a cycle once the function's
        environment holds the URL. The RestApi itself does not depend on the function."""
        return f"https://{self.api.rest_api_id}.execute-api.{self.region}.{self.url_suffix}/{self.stage}"

    def _function(
        self, construct_id: str, *, handler: str, environment: dict[str, str],
        timeout: Duration, memory_size: int = 1024,
    ) -> lambda_.Function:
        return lambda_.Function(
            self, construct_id,
            runtime=RUNTIME,
            architecture=lambda_.Architecture.X86_64,  # the bundled wheels are x86_64
            handler=handler,
            code=self.code,
            memory_size=memory_size,
            timeout=timeout,
            tracing=lambda_.Tracing.ACTIVE,
            environment=environment,
            log_group=logs.LogGroup(self, f"{construct_id}Logs", retention=logs.RetentionDays.ONE_MONTH),
        )

    def _api_function(self) -> lambda_.Function:
        function = self._function(
            "ApiFunction", handler=API_HANDLER, environment=self._environment("kilele-api"),
            timeout=Duration.seconds(30),
        )
        self._grant_tables(function)
        for bucket in self.buckets.values():
            bucket.grant_read_write(function)
        for queue in self.queues.values():
            # Includes the serving-requests queue: the queue API sends items and reads its
            # backlog (sqs:SendMessage, sqs:GetQueueAttributes, sqs:GetQueueUrl).
            queue.grant_send_messages(function)
            queue.grant_consume_messages(function)
        self._grant_executions(function)
        # Inference jobs: create/delete endpoints (and their autoscaling); predict invokes them.
        self.serving.grant_manage_endpoints(function)
        return function

    def _workflow_function(self, name: str) -> lambda_.Function:
        """The Lambda behind the task states that name handler ``name`` (e.g. propose_trial)."""
        function = self._function(
            f"{_pascal(name)}Function",
            handler=f"{WORKFLOW_ENTRY_MODULE}.{name}",
            environment=self._environment("kilele-workflows"),
            memory_size=WORKFLOW_MEMORY_MB,
            timeout=WORKFLOW_TIMEOUT,
        )
        self._grant_tables(function)
        for bucket in self.buckets.values():
            bucket.grant_read_write(function)
        self._grant_executions(function)
        return function

    def _grant_tables(self, grantee: iam.IGrantable) -> None:
        """Read and write items of every table and query its indexes, in one statement.

        Table.grant_read_write_data per table writes two statements per table (items, streams):
        with nine tables and the other grants the role's inline policy passed IAM's 10 KB limit and
        CDK split it into an overflow managed policy."""
        arns: list[str] = []
        for table in self.tables.values():
            arns += [table.table_arn, f"{table.table_arn}/index/*"]
        iam.Grant.add_to_principal(grantee=grantee, actions=TABLE_DATA_ACTIONS, resource_arns=arns)

    def _state_machine_arn(self, name: str) -> str:
        return self.format_arn(
            service="states", resource="stateMachine", resource_name=self.resource_name(name),
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

    def _execution_arns(self, name: str) -> str:
        return self.format_arn(
            service="states", resource="execution", resource_name=f"{self.resource_name(name)}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

    def _grant_executions(self, grantee: iam.IGrantable) -> None:
        """Start executions of Kilele's state machines, stop and describe them."""
        names = list(self.state_machine_arns)
        if not names:
            return
        iam.Grant.add_to_principal(
            grantee=grantee, actions=["states:StartExecution"],
            resource_arns=[self.state_machine_arns[name] for name in names],
        )
        iam.Grant.add_to_principal(
            grantee=grantee, actions=["states:StopExecution", "states:DescribeExecution"],
            resource_arns=[self._execution_arns(name) for name in names],
        )

    def _grant_task_failure(self, grantee: iam.IGrantable) -> None:
        if self.state_machine_arns:
            iam.Grant.add_to_principal(
                grantee=grantee, actions=["states:SendTaskFailure"],
                resource_arns=list(self.state_machine_arns.values()),
            )

    def _state_machine(self, spec: StateMachineSpec) -> sfn.StateMachine:
        """``chalicelib/workflows/<template>.asl.json`` with every ``${...}`` placeholder filled in
        by CloudFormation (DefinitionSubstitutions), as render.render_aws does in Python."""
        name = self.resource_name(spec.name)
        needed = placeholders(load_template(spec.template))
        values: dict[str, str] = {
            placeholder: self.workflow_functions[handler].function_arn
            for placeholder, handler in FUNCTION_PLACEHOLDERS.items()
        }
        values.update({p: self.queues[q].queue_url for p, q in QUEUE_PLACEHOLDERS.items()})
        values["MaxTrialsPerExecution"] = str(self.max_trials_per_execution)
        missing = needed - set(values)
        if missing:
            # CloudFormation would deploy the literal ${...} and the machine would fail at run time.
            raise ValueError(f"{spec.template}.asl.json: no value for placeholders {sorted(missing)}")
        construct_id = f"{_pascal(spec.name)}StateMachine"
        log_group = logs.LogGroup(
            self, f"{construct_id}Logs",
            # The /aws/vendedlogs/ prefix keeps the account's CloudWatch Logs resource policy small.
            log_group_name=f"/aws/vendedlogs/states/{name}",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,  # a fixed name: a retained group would block re-creation
        )
        state_machine = sfn.StateMachine(
            self, construct_id,
            state_machine_name=name,
            definition_body=sfn.DefinitionBody.from_file(str(WORKFLOWS_DIR / f"{spec.template}.asl.json")),
            definition_substitutions={p: values[p] for p in sorted(needed)},
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            tracing_enabled=True,
        )
        for placeholder, handler in FUNCTION_PLACEHOLDERS.items():
            if placeholder in needed:
                self.workflow_functions[handler].grant_invoke(state_machine)
        for placeholder, queue in QUEUE_PLACEHOLDERS.items():
            if placeholder in needed:
                self.queues[queue].grant_send_messages(state_machine)
        return state_machine

    def _dispatch_function(self) -> lambda_.Function:
        """Consumes the trials queue: submits each trial message as a Batch job."""
        config = chalice_event_source(DISPATCH_TRIALS_HANDLER, SQSEventConfig)
        function = self._function(
            "DispatchTrialsFunction",
            handler=DISPATCH_TRIALS_HANDLER,
            environment={**self._environment("kilele-dispatch"), **self.worker_compute.environment()},
            timeout=WORKFLOW_TIMEOUT,  # below the trials queue's visibility timeout
        )
        function.add_event_source(event_sources.SqsEventSource(self.trials_queue, batch_size=config.batch_size))
        self.worker_compute.grant_submit(function)
        self._grant_task_failure(function)
        return function

    def _batch_job_failed_function(self) -> lambda_.Function:
        """Fails the task token of a worker's Batch job that ended FAILED (killed, OOM, host lost)."""
        config = chalice_event_source(BATCH_JOB_FAILED_HANDLER, CloudWatchEventConfig)
        function = self._function(
            "BatchJobFailedFunction",
            handler=BATCH_JOB_FAILED_HANDLER,
            environment={**self._environment("kilele-dispatch"), **self.worker_compute.environment()},
            timeout=WORKFLOW_TIMEOUT,
        )
        pattern = config.event_pattern
        events.Rule(
            self, "BatchJobFailedRule",
            description="Kilele: a trial's Batch job FAILED -> fail its Step Functions task token",
            event_pattern=events.EventPattern(
                source=pattern["source"],
                detail_type=pattern["detail-type"],
                # Chalice's pattern (status FAILED), narrowed to this stage's worker queues.
                detail={
                    **pattern.get("detail", {}),
                    "jobQueue": [queue.job_queue_arn for queue in self.worker_compute.job_queues],
                },
            ),
            targets=[targets.LambdaFunction(function)],
        )
        self._grant_task_failure(function)
        return function

    def _serve_queue_function(self) -> lambda_.Function:
        """Consumes the serving-requests queue (the queue API): predicts each batch of items
        through the apps' endpoints and writes the results to the serving-results table."""
        config = chalice_event_source(SERVE_QUEUE_ITEMS_HANDLER, SQSEventConfig)
        visibility = resources.SERVING_REQUESTS_QUEUE.visibility_timeout_seconds
        if SERVE_QUEUE_TIMEOUT.to_seconds() >= visibility:
            raise ValueError(
                f"{SERVE_QUEUE_ITEMS_HANDLER}: timeout must be below the queue's visibility timeout ({visibility} s)"
            )
        function = self._function(
            "ServeQueueItemsFunction",
            handler=SERVE_QUEUE_ITEMS_HANDLER,
            environment=self._environment("kilele-serving"),
            timeout=SERVE_QUEUE_TIMEOUT,
        )
        # Whole batches: the handler returns normally only once every result is written, and
        # raises (SQS delivers the batch again) otherwise. No ReportBatchItemFailures.
        function.add_event_source(event_sources.SqsEventSource(
            self.serving_queue, batch_size=config.batch_size, report_batch_item_failures=False,
        ))
        self._grant_tables(function)  # apps, inference-jobs, app-metrics, serving-results
        self.serving.grant_invoke(function)
        return function

    def _rest_api(self, function: lambda_.IFunction) -> apigw.RestApi:
        access_logs = logs.LogGroup(self, "ApiAccessLogs", retention=logs.RetentionDays.THREE_MONTHS)
        api = apigw.RestApi(
            self, "RestApi",
            rest_api_name=f"kilele-{self.stage}",
            binary_media_types=BINARY_MEDIA_TYPES,
            # Access logging needs the account-level API Gateway -> CloudWatch role.
            cloud_watch_role=True,
            deploy_options=apigw.StageOptions(
                stage_name=self.stage,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False, http_method=True, ip=True, protocol=True, request_time=True,
                    resource_path=True, response_length=True, status=True, user=False,
                ),
                tracing_enabled=True,
                metrics_enabled=True,
                throttling_rate_limit=THROTTLE_RATE,
                throttling_burst_limit=THROTTLE_BURST,
            ),
        )
        self._add_routes(api, function)
        self._add_gateway_responses(api)
        # Throttles only requests that carry an API Gateway key, i.e. none today; it is here so
        # per-client keys can be attached later. The stage throttling above is what protects now.
        api.add_usage_plan(
            "UsagePlan",
            name=f"kilele-{self.stage}",
            throttle=apigw.ThrottleSettings(rate_limit=THROTTLE_RATE, burst_limit=THROTTLE_BURST),
            api_stages=[apigw.UsagePlanPerApiStage(api=api, stage=api.deployment_stage)],
        )
        return api

    @staticmethod
    def _add_routes(api: apigw.RestApi, function: lambda_.IFunction) -> None:
        """One API Gateway resource per Chalice route and one method per route method, as
        `chalice deploy` does: Chalice dispatches on the event's ``resourcePath`` (which must be
        the route itself, e.g. ``/models/{model_id}/file``) and reads ``pathParameters``."""
        # scope_permission_to_method=False: a single Lambda permission for the whole API instead of
        # two per method (method + test-invoke), which would grow the function's resource policy
        # towards its 20 KB limit as routes are added.
        integration = apigw.LambdaIntegration(function, proxy=True, scope_permission_to_method=False)
        for path, methods in chalice_routes().items():
            resource = api.root.resource_for_path(path)
            for method in methods:
                # The app authenticates every call itself (x-api-key or Authorization: Bearer), so
                # methods must NOT set api_key_required: API Gateway would reject the app's own
                # keys. Left unrequired, API Gateway passes the x-api-key header through untouched.
                resource.add_method(method, integration)

    @staticmethod
    def _add_gateway_responses(api: apigw.RestApi) -> None:
        api.add_gateway_response(
            "NotFoundResponse",
            type=apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN,
            status_code="404",
            response_headers=JSON_CONTENT_TYPE,
            templates={"application/json": NOT_FOUND_TEMPLATE},
        )
        for construct_id, response_type in (
            ("Default4xxResponse", apigw.ResponseType.DEFAULT_4_XX),
            ("Default5xxResponse", apigw.ResponseType.DEFAULT_5_XX),
        ):
            # No status_code: the default responses keep the status of the error they stand for.
            api.add_gateway_response(
                construct_id,
                type=response_type,
                response_headers=JSON_CONTENT_TYPE,
                templates={"application/json": GATEWAY_ERROR_TEMPLATE},
            )

    def _outputs(self) -> None:
        CfnOutput(self, "ApiUrl", value=self.api.url)
        for name, bucket in self.buckets.items():
            CfnOutput(self, f"{_pascal(name)}BucketName", value=bucket.bucket_name)
        for name, table in self.tables.items():
            CfnOutput(self, f"{_pascal(name)}TableName", value=table.table_name)
        for name, state_machine in self.state_machines.items():
            CfnOutput(self, f"{_pascal(name)}StateMachineArn", value=state_machine.state_machine_arn)
        CfnOutput(self, "WorkerRepositoryUri", value=self.worker_compute.repository.repository_uri)
        CfnOutput(self, "CpuJobQueueArn", value=self.worker_compute.cpu_queue.job_queue_arn)
        CfnOutput(self, "GpuJobQueueArn", value=self.worker_compute.gpu_queue.job_queue_arn)
        CfnOutput(self, "InferenceRepositoryUri", value=self.serving.repository.repository_uri)
        CfnOutput(self, "SageMakerRoleArn", value=self.serving.role.role_arn)
