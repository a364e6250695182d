"""Kilele's AWS stack: the resources of chalicelib/resources.py, the API and its dashboard."""
from __future__ import annotations

import importlib
import re
from pathlib import Path
from types import ModuleType
from typing import Optional

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from chalicelib.resources import RESOURCES, BucketSpec, Key, QueueSpec, TableSpec

from .bundling import RUNTIME, api_code
from .dashboard import build_dashboard

REPO_ROOT = Path(__file__).resolve().parents[2]
API_HANDLER = "app.app"

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


class KileleStack(Stack):
    """One Kilele deployment (``stage``): tables, buckets and queues from ``RESOURCES``, the
    Chalice API on Lambda behind API Gateway (one resource per Chalice route), and the
    ``kilele-{stage}`` dashboard."""

    def __init__(self, scope: Construct, construct_id: str, *, stage: str = "dev", **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.stage = stage
        self.tables = {spec.name: self._table(spec) for spec in RESOURCES.tables}
        self.buckets = {spec.name: self._bucket(spec) for spec in RESOURCES.buckets}
        self.queues = {spec.name: self._queue(spec) for spec in RESOURCES.queues if not spec.local_only}
        self.function = self._api_function()
        self.api = self._rest_api(self.function)
        build_dashboard(
            self, stage, self.api.deployment_stage, self.function,
            {name: self.resource_name(name) for name in self.tables},
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

    def _api_function(self) -> lambda_.Function:
        environment = {"KILELE_STAGE": self.stage, "POWERTOOLS_SERVICE_NAME": "kilele-api"}
        for name, bucket in self.buckets.items():
            # "data" -> KILELE_DATA_BUCKET_NAME, read by Settings.data_bucket_name.
            environment[f"KILELE_{name.upper().replace('-', '_')}_BUCKET_NAME"] = bucket.bucket_name
        function = lambda_.Function(
            self, "ApiFunction",
            runtime=RUNTIME,
            architecture=lambda_.Architecture.X86_64,  # the bundled wheels are x86_64
            handler=API_HANDLER,
            code=api_code(REPO_ROOT),
            memory_size=1024,
            timeout=Duration.seconds(30),
            tracing=lambda_.Tracing.ACTIVE,
            environment=environment,
            log_group=logs.LogGroup(self, "ApiFunctionLogs", retention=logs.RetentionDays.ONE_MONTH),
        )
        for table in self.tables.values():
            table.grant_read_write_data(function)
        for bucket in self.buckets.values():
            bucket.grant_read_write(function)
        for queue in self.queues.values():
            queue.grant_send_messages(function)
            queue.grant_consume_messages(function)
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
